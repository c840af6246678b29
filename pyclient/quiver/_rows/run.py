"""RowUDF: a Spark row UDF's function run over Arrow columns, one call per row, as Spark runs it.

    rows = RowUDF(fn, return_type, arrow=False, conf={...})
    out = rows(*arrays)          # Arrow columns in, one Arrow column of rows' results out

Two modes, as the UDF's eval type says:

- classic (SQL_BATCHED_UDF): arguments and results as quiver._rows.classic
  describes (pyspark's fromInternal/toInternal, the JVM's makeFromJava).
- Arrow-optimized (SQL_ARROW_BATCHED_UDF, ``useArrow=True``): exactly
  pyspark's worker code for it, called here: ArrowTableToRowsConversion's
  converters for the arguments, LocalDataToArrowConversion's for the results,
  then ``pa.array(results, type)`` or, when Arrow refuses, an inferred array
  cast to the type (unsafely unless spark.sql.execution.pandas.convertToArrowArraySafely).

The function is wrapped in pyspark's ``fail_on_stopiteration``, as Spark does.
An exception from a row propagates unchanged (its type and message reach Spark).
With ``concurrency`` N (accelerate's option; a worker sets what its LOAD said)
the rows run N at a time on threads, or, for an ``async def`` function,
awaited together on an event loop (quiver._concurrent), results in row order;
a failing row raises once all rows have ended.

Time zones. Spark hands a row UDF naive datetimes in the local zone of its
Python worker (and reads naive results in that zone); the Spark side records
that process's ``TZ`` in ``tz`` before each call, and a run in a process whose
``TZ`` differs (a node's worker) switches to it for the call.

Settings. ``conf`` holds the session settings that change these conversions,
read on the driver when Spark pickles the UDF (see ``CONF``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time

import pyarrow as pa

from .._concurrent import is_async, run_all, values_or_raise

__all__ = ["RowUDF", "CONF"]

# Session setting -> (RowUDF.conf key, default), as pyspark's worker reads them.
CONF = {
    "spark.sql.execution.pyspark.binaryAsBytes": ("binary_as_bytes", "true"),
    "spark.sql.execution.pandas.convertToArrowArraySafely": ("safecheck", "false"),
    "spark.sql.execution.pythonUDF.pandas.intToDecimalCoercionEnabled": ("int_to_decimal", "false"),
}


class RowUDF:
    """A row function with its Spark return type and mode; picklable, callable on Arrow columns."""

    quiver_row_wise = True  # a worker tells it its concurrency (quiver.worker._slices)
    concurrency = 1         # rows called at once (threads; an async def's awaited together)

    def __init__(self, fn, return_type, *, arrow: bool, conf: dict | None = None):
        self.fn = fn
        self.return_type = return_type  # a pyspark DataType (a DDL string until the driver parses it)
        self.arrow = arrow
        self.conf = dict(conf or {})
        self.tz = os.environ.get("TZ")
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            value = getattr(fn, attr, None)
            if value is not None:
                setattr(self, attr, value)
        self._prepared = None

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_prepared"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def flag(self, name: str) -> bool:
        """A boolean setting by its short name ("safecheck"): the session's, else Spark's default."""
        key, default = next((k, d) for k, (short, d) in CONF.items() if short == name)
        return str(self.conf.get(key, default)).lower() == "true"

    def arrow_type(self) -> pa.DataType:
        """The Arrow type of the results (Spark's, timestamps in UTC)."""
        from pyspark.sql.pandas.types import to_arrow_type
        return to_arrow_type(self.return_type, timezone="UTC")

    def __call__(self, *arrays) -> pa.Array:
        arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
        with _local_zone(self.tz):
            prepared = self._prepared or self._prepare()
            return prepared(arrays)

    def _prepare(self):
        from pyspark.util import fail_on_stopiteration

        fn = fail_on_stopiteration(self.fn)
        self._prepared = (self._arrow_mode if self.arrow else self._classic_mode)(fn)
        return self._prepared

    def _call_rows(self, fn, columns) -> list:
        """fn's results for the rows of columns, in order, concurrency rows at once; a
        failed row's exception (the first, in row order) once every row has ended."""
        rows = list(zip(*columns))
        if self.concurrency <= 1 and not is_async(self.fn):
            return [fn(*row) for row in rows]
        return values_or_raise(run_all(lambda row: fn(*row), rows, self.concurrency, is_async(self.fn)))

    def _classic_mode(self, fn):
        from pyspark.sql.pandas.types import from_arrow_type

        from .classic import column_values, result_converter

        convert = result_converter(self.return_type)
        out_type = self.arrow_type()

        def run(arrays):
            columns = [column_values(a, from_arrow_type(a.type)) for a in arrays]
            results = [convert(r) for r in self._call_rows(fn, columns)]
            return pa.array(results, type=out_type)
        return run

    def _arrow_mode(self, fn):
        from pyspark.sql.conversion import ArrowTableToRowsConversion, LocalDataToArrowConversion
        from pyspark.sql.pandas.types import from_arrow_type

        binary_as_bytes, safe = self.flag("binary_as_bytes"), self.flag("safecheck")
        result_conv = LocalDataToArrowConversion._create_converter(
            self.return_type, none_on_identity=True, int_to_decimal_coercion_enabled=self.flag("int_to_decimal"))
        out_type = self.arrow_type()

        def column(a):
            conv = ArrowTableToRowsConversion._create_converter(
                from_arrow_type(a.type), none_on_identity=True, binary_as_bytes=binary_as_bytes)
            values = ArrowTableToRowsConversion._to_pylist(a)
            return values if conv is None else [conv(v) for v in values]

        def run(arrays):
            columns = [column(a) for a in arrays]
            results = self._call_rows(fn, columns)
            converted = results if result_conv is None else [result_conv(r) for r in results]
            try:
                return pa.array(converted, type=out_type)
            except pa.lib.ArrowInvalid:
                return pa.array(converted).cast(target_type=out_type, safe=safe)
        return run


@contextlib.contextmanager
def _local_zone(tz: str | None):
    """This process's local time zone is that of TZ=tz for the block (nothing to do when it is already)."""
    mine = os.environ.get("TZ")
    if mine == tz:
        yield
        return
    _set_tz(tz)
    try:
        yield
    finally:
        _set_tz(mine)


def _set_tz(tz: str | None) -> None:
    if tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = tz
    time.tzset()
