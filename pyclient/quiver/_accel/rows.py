"""accelerate over a row-at-a-time Spark UDF: an Arrow UDF whose batches' rows run on the node.

    slow = udf(lambda s: expensive(s), "double")        # classic, or useArrow=True
    fast = quiver.accelerate(slow)                      # same name, returnType, determinism
    df.select(fast("x")); spark.udf.register("fast", fast)

Spark runs a classic ``@udf`` (SQL_BATCHED_UDF) or an Arrow-optimized one
(SQL_ARROW_BATCHED_UDF) one row at a time in one Python process per task. The
accelerated UDF is a scalar Arrow UDF (SQL_SCALAR_ARROW_UDF, which
``spark.udf.register`` and SQL take like any scalar UDF): Spark hands it
Arrow batches (spark.sql.execution.arrow.maxRecordsPerBatch rows), each batch
is one call to the node, the node cuts it into row ranges that run as tasks
on its workers, and each task calls the function once per row with Spark's
conversions of that mode (quiver._rows.run), so results, nulls and errors
are the plain UDF's. The options (``on_error``, ``fallback``, ...) are
accelerate's; a batch that runs in this process (fallback, cheap functions)
runs the same code here.

Which mode applies is the UDF's eval type: Spark fixed it when the UDF was made
(``useArrow``, else spark.sql.execution.pythonUDF.arrow.enabled). The settings
that change conversions (quiver._rows.run.CONF) are those Spark would send its
Python workers, read on the driver when Spark pickles the UDF for a query. A UDF without arguments is
returned unchanged: there are no rows to spread.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

from .._rows.run import CONF, RowUDF

__all__ = ["is_row_udf", "accelerate_row_udf"]

SQL_BATCHED_UDF, SQL_ARROW_BATCHED_UDF, SQL_SCALAR_ARROW_UDF = 100, 101, 250


def is_row_udf(udf) -> bool:
    return getattr(udf, "evalType", None) in (SQL_BATCHED_UDF, SQL_ARROW_BATCHED_UDF)


def accelerate_row_udf(udf, return_type, opts, accelerated):
    """The accelerated equivalent of a row UDF whose return type is return_type (as
    given); ``accelerated(fn, opts)`` is the decorator's per-process state for a
    function (it calls ``state(args, kwargs)``)."""
    import inspect

    from pyspark.sql.udf import _create_udf
    from pyspark.util import PythonEvalType

    assert PythonEvalType.SQL_SCALAR_ARROW_UDF == SQL_SCALAR_ARROW_UDF
    fn = udf.func
    try:
        params = inspect.signature(fn).parameters.values()
        takes_args = any(p.kind != p.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):
        takes_args = True
    if not takes_args:
        warnings.warn(f"quiver.accelerate: {udf.__name__} takes no arguments; it stays a plain "
                      "UDF (no rows to spread)", RuntimeWarning, stacklevel=3)
        return udf
    rows = RowUDF(fn, return_type, arrow=udf.evalType == SQL_ARROW_BATCHED_UDF)
    rows.concurrency = opts.concurrency or 1  # here too, when a batch runs in this process
    call = _SparkSide(rows, opts, accelerated)
    return _create_udf(call, returnType=return_type, evalType=SQL_SCALAR_ARROW_UDF,
                       name=getattr(udf, "__name__", None), deterministic=udf.deterministic)


class _SparkSide:
    """What Spark calls with a batch's Arrow columns; returns the batch's result column."""

    def __init__(self, rows: RowUDF, opts, accelerated):
        self.rows = rows
        self.opts = opts
        self.accelerated = accelerated
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            if attr in rows.__dict__:
                setattr(self, attr, rows.__dict__[attr])
        self._state = None

    @property
    def __signature__(self):
        return self.rows.__signature__

    def __getstate__(self):
        _resolve(self.rows)  # on the driver, as Spark pickles the UDF for a query
        state = dict(self.__dict__)
        state["_state"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __call__(self, *args, **kwargs):
        state = self._state
        if state is None:
            _resolve(self.rows)
            state = self._state = self.accelerated(self.rows, replace(self.opts, returns=self.rows.arrow_type()))
        self.rows.tz = os.environ.get("TZ")  # this Spark worker's local zone, for the rows wherever they run
        return state(args, kwargs)


def _resolve(rows: RowUDF) -> None:
    """Parse a DDL return type and read the session settings, where a session is (the driver)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    session = SparkSession._instantiatedSession
    if session is None:
        if isinstance(rows.return_type, str):
            raise RuntimeError(f"quiver.accelerate: {rows.__dict__.get('__name__', 'the UDF')}'s return "
                               f"type {rows.return_type!r} is DDL that only a SparkSession can parse")
        return
    if isinstance(rows.return_type, str):
        from pyspark.sql.types import _parse_datatype_string
        rows.return_type = _parse_datatype_string(rows.return_type)
    rows.conf = _runner_conf(session)


def _runner_conf(session) -> dict:
    """The settings Spark sends its Python workers for Arrow UDFs (ArrowPythonRunner's map: it
    resolves defaults that depend on other settings, e.g. safe casts under ANSI mode)."""
    try:
        jconf = session._jsparkSession.sessionState().conf()
        runner = session._jvm.org.apache.spark.sql.execution.python.ArrowPythonRunner
        sent = runner.getPythonRunnerConfMap(jconf)
    except Exception:  # noqa: BLE001  (Spark Connect, another Spark version: the session's values)
        sent = None
    conf = {}
    for key, (_, default) in CONF.items():
        try:
            if sent is not None:
                value = sent.get(key)
                conf[key] = value.get() if value.isDefined() else default
            else:
                conf[key] = session.conf.get(key) or default
        except Exception:  # noqa: BLE001  (a setting this Spark does not have: its default)
            conf[key] = default
    return conf


def is_spark_udf(obj) -> bool:
    """Whether obj is a pyspark UDF object (of any eval type)."""
    return callable(obj) and all(hasattr(obj, a) for a in ("func", "returnType", "evalType"))


def accelerate_spark_udf(udf, opts, accelerated, make_wrapper):
    """accelerate placed outside a pyspark UDF: an equivalent UDF around the accelerated
    function (accelerated and make_wrapper are the decorator's)."""
    from pyspark.sql.udf import _create_udf
    from pyspark.util import PythonEvalType

    # The type as given (a DDL string needs no SparkContext until Spark parses it).
    return_type = getattr(getattr(udf, "_unwrapped", None), "_returnType", None) or udf.returnType
    if is_row_udf(udf):  # @udf: its rows become tasks
        return accelerate_row_udf(udf, return_type, opts, accelerated)
    pandas_types = (PythonEvalType.SQL_SCALAR_PANDAS_UDF, PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF)
    if opts.returns is None and udf.evalType in pandas_types:
        opts = replace(opts, returns=return_type)
    inner = make_wrapper(udf.func, accelerated(udf.func, opts))
    return _create_udf(inner, returnType=return_type, evalType=udf.evalType,
                       name=getattr(udf, "__name__", None), deterministic=udf.deterministic)
