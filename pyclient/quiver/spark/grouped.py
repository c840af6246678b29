"""Grouped map and grouped aggregate forms whose groups run in parallel on a quiver node.

    import quiver.spark as qs

    # df.groupBy("store").applyInPandas(fit, "store long, coef double"), accelerated:
    out = qs.apply_in_pandas(df.groupBy("store"), fit, "store long, coef double")
    out = qs.apply_in_arrow(df.groupBy("store"), fit_arrow, schema)
    # df.groupBy("store").agg(mean_udf(df.v), total(df.v, df.w)), accelerated:
    out = qs.agg(df.groupBy("store"), (mean_udf, df.v), (total, "v", "w"))

Spark hands a grouped-map function one group at a time, in one Python process
per partition; a partition that holds most of the groups runs them one after
another. These helpers plan the same query through Spark's map form instead:

    df.select(*, key expressions)              the keys as columns
      .repartition(keys)                       the groups' shuffle (as groupBy's)
      .sortWithinPartitions(keys)              each group's rows together
      .mapInArrow(PartitionRunner, schema)     quiver.spark._partition

and the partition function cuts its sorted input into groups and submits
each group whole, as Arrow, as a task to the node, so a partition's groups run
on all the node's workers at once. Each group is run by pyspark's own
conversion and verification code with the session's settings
(quiver.spark._group), so results and errors are Spark's: empty results and
partitions, null keys (one group), the key-taking two-argument form,
iterator forms chosen from type hints, columns matched by name (by position
when the labels are not strings), output converted to the declared schema,
the function's own exception type and message.

Options (quiver._options): ``fallback`` ("local": without a node the groups
run in Spark's Python worker, with one warning; "error": raise
quiver.Unavailable), ``retries`` (when a node worker dies), ``address`` and
``token`` (default $QUIVER_ADDRESS / $QUIVER_TOKEN, else the machine's node).

Only groupBy groupings (not rollup, cube or pivot) are planned this way.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .. import _options
from ._group import AGG, ARROW, ARROW_ITER, PANDAS, PANDAS_ITER, Plan
from ._partition import NodeOptions, PartitionRunner

__all__ = ["apply_in_pandas", "apply_in_arrow", "agg"]

KEY_PREFIX = "__quiver_key_"


def apply_in_pandas(grouped, fn: Callable, schema, *, fallback: str = _options.default("fallback"),
                    retries: int | None = _options.default("retries"), address: str | None = None,
                    token: str | None = None):
    """``grouped.applyInPandas(fn, schema)`` with a partition's groups run in parallel on the node.

    fn takes a pandas DataFrame (or the key tuple and the DataFrame) and returns
    a DataFrame; with type hints Iterator[pd.DataFrame] -> Iterator[pd.DataFrame]
    it takes and yields DataFrames, as in Spark. schema: a StructType or DDL string.
    """
    from pyspark.sql.pandas.typehints import infer_group_pandas_eval_type_from_func
    from pyspark.util import PythonEvalType

    eval_type = _infer(infer_group_pandas_eval_type_from_func, fn) or PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF
    form = PANDAS_ITER if eval_type == PythonEvalType.SQL_GROUPED_MAP_PANDAS_ITER_UDF else PANDAS
    return _grouped_map(grouped, fn, schema, eval_type, form,
                        _node_options("apply_in_pandas", fallback, retries, address, token))


def apply_in_arrow(grouped, fn: Callable, schema, *, fallback: str = _options.default("fallback"),
                   retries: int | None = _options.default("retries"), address: str | None = None,
                   token: str | None = None):
    """``grouped.applyInArrow(fn, schema)`` with a partition's groups run in parallel on the node.

    fn takes a pyarrow Table (or the key tuple of pyarrow scalars and the Table)
    and returns a Table; with type hints Iterator[pa.RecordBatch] ->
    Iterator[pa.RecordBatch] it takes and yields batches, as in Spark.
    """
    from pyspark.sql.pandas.typehints import infer_group_arrow_eval_type_from_func
    from pyspark.util import PythonEvalType

    eval_type = _infer(infer_group_arrow_eval_type_from_func, fn) or PythonEvalType.SQL_GROUPED_MAP_ARROW_UDF
    form = ARROW_ITER if eval_type == PythonEvalType.SQL_GROUPED_MAP_ARROW_ITER_UDF else ARROW
    return _grouped_map(grouped, fn, schema, eval_type, form,
                        _node_options("apply_in_arrow", fallback, retries, address, token))


def agg(grouped, *calls, fallback: str = _options.default("fallback"),
        retries: int | None = _options.default("retries"), address: str | None = None,
        token: str | None = None, **named):
    """``grouped.agg(udf(cols...), ...)`` for pandas aggregate UDFs (Series -> scalar),
    with a partition's groups run in parallel on the node.

    Each aggregate is a tuple ``(udf, col, ...)`` of a pandas_udf of the
    grouped-aggregate kind and its argument columns (names or Columns):
    positional ones are named as Spark names ``udf(cols...)``, keyword ones
    (``mean=(mean_udf, "v")``) take the keyword as their name. The result has
    the grouping columns, then one column per aggregate: the same columns,
    types and rows as grouped.agg.
    """
    from pyspark.sql import Column
    from pyspark.sql import functions as F
    from pyspark.util import PythonEvalType

    opts = _node_options("agg", fallback, retries, address, token)
    if not calls and not named:
        raise TypeError("quiver.spark.agg: no aggregates; pass (udf, column, ...) tuples")
    items = [(None, c) for c in calls] + list(named.items())
    df, keys = _frame_and_keys(grouped)
    columns, fns, spark_cols = [], [], []
    for name, call in items:
        if not isinstance(call, tuple) or not call or not callable(call[0]):
            raise TypeError(f"quiver.spark.agg: each aggregate is a tuple (udf, column, ...), "
                            f"not {type(call).__name__}")
        udf, args = call[0], call[1:]
        if getattr(udf, "evalType", None) != PythonEvalType.SQL_GROUPED_AGG_PANDAS_UDF:
            raise TypeError(f"quiver.spark.agg: {getattr(udf, '__name__', udf)!r} is not a grouped "
                            "aggregate pandas_udf (pd.Series, ... -> scalar)")
        args = [a if isinstance(a, Column) else F.col(a) for a in args]
        offsets = []
        for a in args:
            offsets.append(len(columns))
            columns.append(a.alias(f"_{len(columns)}"))
        fns.append((udf.func, tuple(offsets)))
        col = udf(*args)
        spark_cols.append(col if name is None else col.alias(name))
    out_schema = grouped.agg(*spark_cols).schema  # Spark's own names and types, by analysis only
    plan = Plan(AGG, tuple(fns), 1, out_schema, len(keys), _runner_conf(df.sparkSession))
    return _run(df, columns, keys, plan, out_schema, opts)


def _grouped_map(grouped, fn, schema, eval_type, form: str, opts: NodeOptions):
    from pyspark.sql.pandas.functions import pandas_udf

    df, keys = _frame_and_keys(grouped)
    udf = pandas_udf(fn, returnType=schema, functionType=eval_type)  # Spark's checks of the schema
    return_type = udf.returnType
    num_args = len(inspect.getfullargspec(fn).args)
    plan = Plan(form, fn, num_args, return_type, len(keys), _runner_conf(df.sparkSession))
    return _run(df, ["*"], keys, plan, return_type, opts)  # every column, any name


def _run(df, values: list, keys: list, plan: Plan, schema, opts: NodeOptions):
    """The map-form plan: values and key columns, the groups' shuffle, sorted, mapInArrow."""
    key_names = [f"{KEY_PREFIX}{i}" for i in range(len(keys))]
    keyed = df.select(*values, *[k.alias(n) for k, n in zip(keys, key_names)])
    if key_names:
        keyed = keyed.repartition(*key_names).sortWithinPartitions(*key_names)
    else:
        keyed = keyed.repartition(1)  # no keys: one group of every row
    return keyed.mapInArrow(_partition_function(PartitionRunner(plan, opts)), schema)


def _partition_function(runner: PartitionRunner):
    def run_groups(batches):
        return runner(batches)

    return run_groups


def _frame_and_keys(grouped):
    """The grouped DataFrame and its grouping expressions as Columns."""
    df = getattr(grouped, "_df", None)
    if df is None:
        raise TypeError(f"quiver.spark: expected a GroupedData (df.groupBy(...)), not {type(grouped).__name__}")
    cols = getattr(grouped, "_grouping_cols", None)  # Spark Connect keeps them
    if cols is not None:
        kind = str(getattr(grouped, "_group_type", "groupby")).lower()
        if kind != "groupby":
            raise TypeError(f"quiver.spark: only groupBy groupings are supported, not {kind}")
        return df, list(cols)
    return df, _classic_keys(grouped)


def _classic_keys(grouped) -> list:
    """Classic PySpark keeps the grouping in the JVM: its expressions, as Columns."""
    from pyspark.sql import Column

    jgd = grouped._jgd
    text = jgd.toString()
    kind = text.rstrip("]").rpartition("type: ")[2]
    if kind != "GroupBy":
        raise TypeError(f"quiver.spark: only groupBy groupings are supported, not {kind.lower()}")
    jvm = grouped.session._jvm
    exprs = jgd.groupingExprs()
    node = jvm.org.apache.spark.sql.classic.ExpressionColumnNode
    return [Column(jvm.org.apache.spark.sql.Column(node.apply(exprs.apply(i))))
            for i in range(exprs.size())]


def _infer(infer, fn):
    """Spark's eval type from fn's type hints (None: no hints), as applyInPandas/applyInArrow do."""
    import warnings

    try:
        return infer(fn)
    except Exception as e:  # Spark warns and uses the plain form
        warnings.warn(f"Cannot infer the eval type from type hints: {e}", UserWarning, stacklevel=3)
        return None


def _node_options(where: str, fallback, retries, address, token) -> NodeOptions:
    checked = _options.check(f"quiver.spark.{where}", fallback=fallback, retries=retries)
    return NodeOptions(checked["fallback"], checked["retries"], address, token)


def _runner_conf(session) -> dict[str, Any]:
    """The session settings Spark's Python worker reads for these forms (pyspark.worker.RunnerConf)."""
    def get(key: str, default: str | None = None) -> str | None:
        try:
            return session.conf.get(key)  # the effective value: set, or Spark's default
        except Exception:  # a key this Spark does not know
            return default

    def flag(key: str, default: str) -> bool:
        return (get(key, default) or default).lower() == "true"

    return {
        "timezone": get("spark.sql.session.timeZone", None),
        "assign_cols_by_name": flag("spark.sql.legacy.execution.pandas.groupedMap.assignColumnsByName",
                                    "true"),
        "use_large_var_types": flag("spark.sql.execution.arrow.useLargeVarTypes", "false"),
        "safecheck": flag("spark.sql.execution.pandas.convertToArrowArraySafely", "false"),
        "int_to_decimal_coercion_enabled": flag(
            "spark.sql.execution.pythonUDF.pandas.intToDecimalCoercionEnabled", "false"),
        "prefer_int_ext_dtype": flag("spark.sql.execution.pythonUDF.pandas.preferIntExtensionDtype",
                                     "false"),
        "max_records_per_batch": int(get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")),
    }
