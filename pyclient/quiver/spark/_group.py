"""One group of a grouped map or grouped aggregate, run the way Spark's Python worker runs it.

A ``Plan`` says what to run on a group: the form (``PANDAS``, ``PANDAS_ITER``,
``ARROW``, ``ARROW_ITER`` for groupBy().applyInPandas/applyInArrow, ``AGG``
for pandas aggregate UDFs in groupBy().agg, ``COGROUP_PANDAS`` and
``COGROUP_ARROW`` for cogroup().applyInPandas/applyInArrow), the user's function(s), the
declared type and the session's settings that Spark's worker reads. A group
arrives as an Arrow table whose last ``nkeys`` columns are the grouping keys
and whose other columns are the values (the DataFrame's columns, or the
aggregates' arguments). ``run_group`` returns the group's output batches,
with the declared schema's Arrow types, exactly as Spark's worker would make
them: it calls pyspark's own conversion and verification helpers
(pyspark.sql.conversion, pyspark.worker) with the same arguments as the
worker's SQL_GROUPED_MAP_PANDAS_UDF, ..._PANDAS_ITER_UDF, ..._ARROW_UDF,
..._ARROW_ITER_UDF and SQL_GROUPED_AGG_PANDAS_UDF paths (pyspark 4.x).

A cogrouped pair is one group of the union of both sides that
quiver.spark.cogrouped plans: its first column says which side a row comes from
(0 left, 1 right), the next two hold the row of the left or the right side as a
struct (the side's columns, then its own grouping keys; the other struct is
null). ``run_group`` cuts the pair back into its two sides, each a table of its
DataFrame's columns and keys (no rows when the key is the other side's only),
and does what the worker's SQL_COGROUPED_MAP_PANDAS_UDF and
SQL_COGROUPED_MAP_ARROW_UDF paths do: the function gets both sides (and,
taking three arguments, the key, from the left side unless it has no rows).

``GroupTask`` is the task a node's worker runs for one group: Arrow IPC in,
Arrow IPC out, and a failure answered as the exception itself (pickled), so
that the Spark side raises the function's own exception type and message.
"""

from __future__ import annotations

import io
import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PANDAS", "PANDAS_ITER", "ARROW", "ARROW_ITER", "AGG", "COGROUP_PANDAS", "COGROUP_ARROW",
           "Plan", "GroupTask", "run_group", "to_ipc", "from_ipc", "raise_remote"]

PANDAS, PANDAS_ITER, ARROW, ARROW_ITER, AGG = "pandas", "pandas_iter", "arrow", "arrow_iter", "agg"
COGROUP_PANDAS, COGROUP_ARROW = "cogroup_pandas", "cogroup_arrow"


@dataclass(frozen=True)
class Plan:
    """What to run on each group (picklable: it travels to Spark's and the node's workers).

    form        one of PANDAS, PANDAS_ITER, ARROW, ARROW_ITER, AGG, COGROUP_PANDAS, COGROUP_ARROW
    fn          the grouped-map function; for AGG a tuple of (function, argument
                column indices) per aggregate
    num_args    the function's positional parameters (one more than its frames: it takes the key)
    return_type the declared pyspark StructType (for AGG: the output's, keys first)
    nkeys       grouping keys: the group table's last nkeys columns
    conf        the session settings Spark's worker reads (see grouped._runner_conf)
    """

    form: str
    fn: Any
    num_args: int
    return_type: Any
    nkeys: int
    conf: dict = field(default_factory=dict)


def run_group(plan: Plan, table: pa.Table) -> list[pa.RecordBatch]:
    """The output batches of one group (declared Arrow types, flat columns)."""
    if plan.form == AGG:
        return [_aggregate(plan, table)]
    if plan.form in (COGROUP_PANDAS, COGROUP_ARROW):
        left, right = _side(table, 0), _side(table, 1)
        return (_cogroup_arrow if plan.form == COGROUP_ARROW else _cogroup_pandas)(plan, left, right)
    if plan.form in (ARROW, ARROW_ITER):
        return _arrow(plan, table)
    return _pandas(plan, table)


def _pandas(plan: Plan, table: pa.Table) -> list[pa.RecordBatch]:
    import pandas as pd
    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.types import StructField, StructType
    from pyspark.util import fail_on_stopiteration
    from pyspark.worker import verify_pandas_result

    conf = plan.conf
    nvalues = table.num_columns - plan.nkeys
    fn = fail_on_stopiteration(plan.fn)
    output_schema = StructType([StructField("_0", plan.return_type)])

    def series(data):
        return ArrowBatchTransformer.to_pandas(data, timezone=conf["timezone"],
                                               prefer_int_ext_dtype=conf["prefer_int_ext_dtype"])

    names = plan.return_type.names

    def convert(result) -> pa.RecordBatch:
        verify_pandas_result(result, plan.return_type, conf["assign_cols_by_name"],
                             truncate_return_schema=False)
        # Columns already named as the schema, in its order, match by position
        # too: the same arrays without pyspark's reordering copy.
        by_name = conf["assign_cols_by_name"] and list(result.columns) != names
        return _flat(_to_arrow([result], output_schema, conf, by_name=by_name))

    if plan.form == PANDAS:
        all_series = series(table.combine_chunks())
        value_df = pd.concat(all_series[:nvalues], axis=1)
        if plan.num_args == 1:
            result = fn(value_df)
        else:
            result = fn(tuple(s.iloc[0] for s in all_series[nvalues:]), value_df)
        return [convert(result)]

    batches = table.to_batches(max_chunksize=conf["max_records_per_batch"]) or \
        table.combine_chunks().to_batches()
    first = series(batches[0])

    def frames():
        yield pd.concat(first[:nvalues], axis=1)
        for b in batches[1:]:
            yield pd.concat(series(b)[:nvalues], axis=1)

    if plan.num_args == 1:
        result = fn(frames())
    else:
        result = fn(tuple(s.iloc[0] for s in first[nvalues:]), frames())
    return [convert(df) for df in result]


def _arrow(plan: Plan, table: pa.Table) -> list[pa.RecordBatch]:
    from collections.abc import Iterator

    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.pandas.types import to_arrow_type
    from pyspark.util import fail_on_stopiteration
    from pyspark.worker import verify_return_type

    conf = plan.conf
    nvalues = table.num_columns - plan.nkeys
    fn = fail_on_stopiteration(plan.fn)
    schema = pa.schema(list(to_arrow_type(plan.return_type, timezone="UTC",
                                          prefers_large_types=conf["use_large_var_types"])))
    key = tuple(table.column(i)[0] for i in range(nvalues, table.num_columns))
    values = table.select(range(nvalues))

    def enforce(result):
        return ArrowBatchTransformer.enforce_schema(result, schema, arrow_cast=False,
                                                    reorder_by_name=conf["assign_cols_by_name"])

    if plan.form == ARROW:
        result = fn(values) if plan.num_args == 1 else fn(key, values)
        verify_return_type(result, pa.Table)
        return enforce(result).to_batches()
    batches = iter(values.to_batches(max_chunksize=conf["max_records_per_batch"]))
    result = fn(batches) if plan.num_args == 1 else fn(key, batches)
    return [enforce(b) for b in verify_return_type(result, Iterator[pa.RecordBatch])]


def _aggregate(plan: Plan, table: pa.Table) -> pa.RecordBatch:
    import pandas as pd
    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.pandas.types import to_arrow_type
    from pyspark.sql.types import StructField, StructType
    from pyspark.util import fail_on_stopiteration

    conf = plan.conf
    nvalues = table.num_columns - plan.nkeys
    table = table.combine_chunks()
    all_series = ArrowBatchTransformer.to_pandas(table.select(range(nvalues)), timezone=conf["timezone"],
                                                 prefer_int_ext_dtype=conf["prefer_int_ext_dtype"])
    results = [fail_on_stopiteration(fn)(*[all_series[o] for o in offsets]) for fn, offsets in plan.fn]
    key_fields = plan.return_type.fields[:plan.nkeys]
    agg_fields = plan.return_type.fields[plan.nkeys:]
    output_schema = StructType([StructField(f"_{i}", f.dataType) for i, f in enumerate(agg_fields)])
    aggregates = _to_arrow([pd.Series([r]) for r in results], output_schema, conf)
    keys = [table.column(nvalues + i).chunk(0).slice(0, 1).cast(
        to_arrow_type(f.dataType, timezone="UTC", prefers_large_types=conf["use_large_var_types"]))
        for i, f in enumerate(key_fields)]
    return pa.RecordBatch.from_arrays(keys + aggregates.columns, names=plan.return_type.names)


# Cogrouped pairs.

def _side(table: pa.Table, side: int) -> pa.Table:
    """One side's rows: its columns, then its keys, named as in its DataFrame."""
    rows = table.filter(pc.equal(table.column(0), side))
    column = rows.column(1 + side)
    struct = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    return pa.Table.from_arrays(struct.flatten(), names=names)  # non-null structs: exact fields


def _cogroup_pandas(plan: Plan, left: pa.Table, right: pa.Table) -> list[pa.RecordBatch]:
    """cogroup().applyInPandas on one pair: both sides as DataFrames of every column."""
    import pandas as pd
    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.types import StructField, StructType
    from pyspark.util import fail_on_stopiteration
    from pyspark.worker import verify_pandas_result

    conf = plan.conf
    fn = fail_on_stopiteration(plan.fn)

    def frame_and_keys(side: pa.Table):
        series = ArrowBatchTransformer.to_pandas(side, timezone=conf["timezone"],
                                                 prefer_int_ext_dtype=conf["prefer_int_ext_dtype"])
        nvalues = side.num_columns - plan.nkeys
        return pd.concat(series[:nvalues], axis=1), series[nvalues:]

    left_df, left_keys = frame_and_keys(left)
    right_df, right_keys = frame_and_keys(right)
    if plan.num_args == 2:
        result = fn(left_df, right_df)
    else:
        key_series = left_keys if not left_df.empty else right_keys
        result = fn(tuple(s.iloc[0] for s in key_series), left_df, right_df)
    verify_pandas_result(result, plan.return_type, conf["assign_cols_by_name"], truncate_return_schema=False)
    output_schema = StructType([StructField("_0", plan.return_type)])
    return [_flat(_to_arrow([result], output_schema, conf))]


def _cogroup_arrow(plan: Plan, left: pa.Table, right: pa.Table) -> list[pa.RecordBatch]:
    """cogroup().applyInArrow on one pair: both sides as Tables of every column."""
    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.pandas.types import to_arrow_type
    from pyspark.util import fail_on_stopiteration
    from pyspark.worker import verify_return_type

    conf = plan.conf
    fn = fail_on_stopiteration(plan.fn)
    schema = pa.schema(list(to_arrow_type(plan.return_type, timezone="UTC",
                                          prefers_large_types=conf["use_large_var_types"])))

    def values_and_keys(side: pa.Table):
        nvalues = side.num_columns - plan.nkeys
        return side.select(range(nvalues)), side.select(range(nvalues, side.num_columns))

    left_values, left_keys = values_and_keys(left)
    right_values, right_keys = values_and_keys(right)
    if plan.num_args == 2:
        result = fn(left_values, right_values)
    else:
        key_table = left_keys if left_keys.num_rows > 0 else right_keys
        result = fn(tuple(c[0] for c in key_table.columns), left_values, right_values)
    verify_return_type(result, pa.Table)
    result = ArrowBatchTransformer.enforce_schema(result, schema, arrow_cast=False,
                                                  reorder_by_name=conf["assign_cols_by_name"])
    return result.to_batches()


def _to_arrow(data: list, schema, conf: dict, by_name: bool | None = None) -> pa.RecordBatch:
    from pyspark.sql.conversion import PandasToArrowConversion

    return PandasToArrowConversion.convert(
        data, schema, timezone=conf["timezone"], safecheck=conf["safecheck"], arrow_cast=True,
        prefers_large_types=conf["use_large_var_types"],
        assign_cols_by_name=conf["assign_cols_by_name"] if by_name is None else by_name,
        int_to_decimal_coercion_enabled=conf["int_to_decimal_coercion_enabled"])


def _flat(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Spark's grouped-map result is one struct column; a map form yields its fields."""
    from pyspark.sql.conversion import ArrowBatchTransformer

    return ArrowBatchTransformer.flatten_struct(batch)


# The node's side: Arrow IPC in, Arrow IPC out.

def to_ipc(batches, schema: pa.Schema) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for b in batches:
            writer.write(b)
    return sink.getvalue()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class GroupTask:
    """Runs one group on a node's worker: IPC bytes of the group table in;
    ("ok", IPC bytes of the output batches, seconds it took) or ("err", pickled exception or
    None, type name, message, traceback) out. Given a list of groups' bytes,
    it runs them in order and answers the list of their outcomes, up to and
    including the first "err" (Spark stops at the first group that fails)."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def __call__(self, data: bytes | list[bytes]):
        if isinstance(data, list):
            out = []
            for d in data:
                out.append(self._one(d))
                if out[-1][0] != "ok":
                    break
            return out
        return self._one(data)

    def _one(self, data: bytes):
        table = from_ipc(data)
        start = time.perf_counter()
        try:
            out = run_group(self.plan, table)
            schema = out[0].schema if out else pa.schema([])
            return "ok", to_ipc(out, schema), time.perf_counter() - start
        except Exception as e:  # the group's failure travels back as its exception
            return ("err", _pickled(e), type(e).__name__, str(e),
                    "".join(traceback.format_exception(e)))


def _pickled(e: BaseException) -> bytes | None:
    """The exception pickled, when it comes back as the same type and message: as
    itself, or else as its class, args and attributes (exceptions such as
    pyspark's, whose constructor cannot take their args again)."""
    import cloudpickle

    for value in (e, (_rebuilt, (type(e), e.args, dict(vars(e))))):
        try:
            data = cloudpickle.dumps(value)
            back = _loaded(data)
        except Exception:
            continue
        if type(back) is type(e) and str(back) == str(e):
            return data
    return None


def _loaded(data: bytes) -> BaseException:
    value = pickle.loads(data)
    if isinstance(value, tuple):
        rebuild, args = value
        return rebuild(*args)
    return value


def _rebuilt(cls: type, args: tuple, state: dict) -> BaseException:
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


def raise_remote(outcome: tuple, where: str) -> None:
    """Raise a GroupTask's "err" outcome here: the function's own exception
    (type and message), its remote traceback as a note; a UDFError naming
    the type when the exception could not travel."""
    from ..errors import UDFError

    _, data, etype, message, tb = outcome
    err: BaseException | None = None
    if data is not None:
        try:
            err = _loaded(data)
        except Exception:
            err = None
    if err is None:
        err = UDFError(f"{etype}: {message}")
        err.remote_type, err.remote_message, err.remote_traceback = etype, message, tb
    err.add_note(f"(raised {where}; remote traceback:)\n{tb.rstrip()}")
    raise err
