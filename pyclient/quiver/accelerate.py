"""quiver.accelerate: run a pandas (or Arrow) UDF's batches on a quiver node instead of in-process.

    import quiver
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")                    # outside: Spark sees the function's own signature
    @quiver.accelerate(retries=3)            # inside: ships each batch to the local node
    def price(spot: pd.Series, vol: pd.Series) -> pd.Series:
        return pd.Series([monte_carlo(s, v) for s, v in zip(spot, vol)])

The decorated function keeps its name, signature and type hints, so Spark infers
the UDF type as usual. Each call (one Arrow batch in Spark) converts the
arguments to Arrow (quiver._convert, which keeps what Spark handed the function),
sends them to the node, which cuts them into tasks and runs them on every free
worker, and converts the result back, with the input's index. Forms:

    Series/DataFrame, ...  -> Series/DataFrame   (DataFrames are struct columns)
    Iterator[Series] / Iterator[Tuple[Series, ...]] -> Iterator[Series]
                                                   (each input batch is one call)
    pa.Array, ...          -> pa.Array           (arrow_udf; no pandas on the way)
    Iterator[pa.Array]     -> Iterator[pa.Array]
    Iterator[pa.RecordBatch] -> Iterator[pa.RecordBatch]  (mapInArrow; only per-row
                                                   transformations: each output batch
                                                   must have its input's row count)
    a class                -> __init__ once per node worker, __call__ per task; the
                              wrapper has __call__'s signature without self

Placing accelerate *outside* a pyspark UDF (``quiver.accelerate(pandas_udf(...)(f))``)
also works: it returns an equivalent UDF and takes the result type from it.

Result type. ``returns`` (a Spark DDL string, a pyarrow or pyspark type) fixes
it. Without it the wrapper runs the function once locally, in this process, on
the first row of a batch (a few rows if that result is all null) and uses the
Arrow type of that result; it does so once per distinct set of argument types,
since pandas results often follow their inputs (an int column with nulls
arrives as float64). A result that later does not fit the inferred type is
computed locally instead, and the type is widened. Pass ``returns`` to skip the
local run (e.g. for a class whose constructor loads a large model). For the Arrow
forms leave ``returns`` out or pass a pyarrow type: a Spark DDL "timestamp" means
the pandas side's naive wall-clock time, not the zoned arrays arrow_udf returns.

Registration and connections. The function is cloudpickled and registered on
first use in each process, under a content-addressed name; each process keeps
one Client per address (keyed by pid too, so forked Spark workers never share a
gRPC channel), reused across batches and tasks.

When no node is reachable (nor can be started, see quiver.local), with
``fallback="local"`` (default) the function runs in this process, with one
warning per process, and the node is tried again every 200 batches; with
``fallback="error"`` the call raises quiver.Unavailable.

Cheap functions skip the detour by measurement: after each remote batch the
node's reported time in the function (``work_ms``) is compared with the call's
wall time; when running the batch here would have been faster for 3 batches in
a row, the function runs in this process from then on, and the node is tried
again every 200 batches. Passing ``rows_per_task`` turns this off, and so does
the environment variable ``QUIVER_ADAPTIVE=0`` (tests, benchmarks).
"""

from __future__ import annotations

import collections.abc
import functools
import hashlib
import inspect
import itertools
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle
import pandas as pd
import pyarrow as pa

from ._convert import arrow_to_pandas, pandas_to_arrow
from .errors import FunctionNotFound, OverCapacity, UDFError, Unavailable
from .local import run_dir
from ._forms import (
    _ARROW_ARRAYS,
    _PANDAS_OBJS,
    _ArrowIterAdapter,
    _RecordBatchAdapter,
    _not_per_row,
    _short_name,
    _result_type,
    _to_arrow,
    _widen_type,
    _widen_array,
    _has_null_type,
    _is_result_type_error,
    _length,
    _head,
    _slice,
    _head_item,
    _slice_item,
    _concat,
    _concat_batches,
    _pickled_by_value,
)

__all__ = ["accelerate"]

CHEAP_STREAK = 3       # remote batches in a row that would have been faster here
REPROBE_EVERY = 200    # batches run here before trying the node again
PROBE_ROWS = (1, 16)   # rows of the local runs that infer the result type

_FALLBACKS = ("local", "error")
_ON_ERRORS = ("raise", "null")


@dataclass(frozen=True)
class _Options:
    returns: Any = None
    rows_per_task: int | None = None
    retries: int | None = 3
    on_error: str = "raise"
    fallback: str = "local"
    address: str | None = None
    token: str | None = None


def accelerate(fn=None, *, returns=None, rows_per_task: int | None = None, retries: int | None = 3,
               on_error: str = "raise", fallback: str = "local", address: str | None = None,
               token: str | None = None):
    """Decorate a pandas/Arrow UDF (or a class) so its batches run on a quiver node.

    Usable bare (``@quiver.accelerate``) or with options:

    returns        result type (Spark DDL string, pyarrow or pyspark type); default:
                   inferred by running the function locally on the first row
    rows_per_task  rows per task on the node; default: the node chooses
    retries        retries of a task whose worker died (default 3)
    on_error       "raise" (default): a failing row fails the call; "null": its
                   result is null (and a RuntimeWarning says why)
    fallback       "local" (default): run in this process, with a warning, when no
                   node is reachable; "error": raise quiver.Unavailable
    address, token the node; default $QUIVER_ADDRESS / $QUIVER_TOKEN, else the
                   machine's node (started if needed, see quiver.connect)
    """
    if isinstance(fn, (str, pa.DataType)) and returns is None:  # @accelerate("double")
        fn, returns = None, fn
    if rows_per_task is not None and int(rows_per_task) < 1:
        raise ValueError("quiver.accelerate: rows_per_task must be at least 1")
    if retries is not None and int(retries) < 0:
        raise ValueError("quiver.accelerate: retries must be 0 or more")
    if on_error not in _ON_ERRORS:
        raise ValueError(f"quiver.accelerate: on_error must be 'raise' or 'null', not {on_error!r}")
    if fallback not in _FALLBACKS:
        raise ValueError(f"quiver.accelerate: fallback must be 'local' or 'error', not {fallback!r}")
    if returns is not None:
        _result_type(returns)  # fail at decoration time on a bad type
    opts = _Options(returns, None if rows_per_task is None else int(rows_per_task),
                    None if retries is None else int(retries), on_error, fallback, address, token)

    def decorate(obj):
        if _is_spark_udf(obj):
            return _accelerate_spark_udf(obj, opts)
        if not callable(obj):
            raise TypeError(f"quiver.accelerate: expected a function or a class, "
                            f"not {type(obj).__name__}")
        return _make_wrapper(obj, _Accelerated(obj, opts))

    return decorate if fn is None else decorate(fn)


# Wrapping.

def _make_wrapper(obj, impl: _Accelerated):
    """A plain function that calls impl and looks like obj (or obj.__call__ for a class)."""

    def wrapper(*args, **kwargs):
        return impl(args, kwargs)

    if isinstance(obj, type):
        call = obj.__call__
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(wrapper, attr, getattr(obj, attr, None))
        wrapper.__annotations__ = dict(getattr(call, "__annotations__", {}))
        wrapper.__wrapped__ = call  # typing.get_type_hints resolves names in its module
    else:
        functools.update_wrapper(wrapper, obj)
    wrapper.__signature__ = impl.signature
    wrapper.__quiver__ = impl
    return wrapper


def _is_spark_udf(obj) -> bool:
    return callable(obj) and all(hasattr(obj, a) for a in ("func", "returnType", "evalType"))


def _accelerate_spark_udf(udf, opts: _Options):
    """accelerate placed outside a pyspark UDF: an equivalent UDF around the accelerated function."""
    from pyspark.sql.udf import _create_udf
    from pyspark.util import PythonEvalType

    # The type as given (a DDL string needs no SparkContext until Spark parses it).
    return_type = getattr(getattr(udf, "_unwrapped", None), "_returnType", None) or udf.returnType
    pandas_types = (PythonEvalType.SQL_SCALAR_PANDAS_UDF, PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF)
    if opts.returns is None and udf.evalType in pandas_types:
        opts = replace(opts, returns=return_type)
    inner = _make_wrapper(udf.func, _Accelerated(udf.func, opts))
    return _create_udf(inner, returnType=return_type, evalType=udf.evalType,
                       name=getattr(udf, "__name__", None), deterministic=udf.deterministic)


# Connections: one Client per address, token and process.

class _Node:
    """This process's connection to one node, and whether it is down."""

    def __init__(self, address: str | None, token: str | None):
        self.address = address
        self.token = token
        self.client = None
        self.down: str | None = None  # why it is unreachable; None when it answers
        self.skipped = 0              # batches run here since it went down

    def get(self):
        """The Client, connecting (or starting a node) if needed; None while down."""
        if self.down is not None:
            self.skipped += 1
            if self.skipped < REPROBE_EVERY:
                return None
            self.down, self.skipped = None, 0  # try again
            if self.client is not None:
                try:
                    self.client.close()
                except Exception:
                    pass
                self.client = None
        if self.client is None:
            from .client import connect
            client = None
            try:
                client = connect(self.address, token=self.token)
                client.health()  # connecting is lazy: find out now, before any work
            except Unavailable as e:
                if client is not None:
                    client.close()
                self.mark_down(e)
                return None
            self.client = client
        return self.client

    def mark_down(self, err: Exception) -> None:
        self.down = str(getattr(err, "message", err)) or type(err).__name__
        self.skipped = 0

    def where(self) -> str:
        if self.client is not None:
            return self.client.address
        return self.address or os.environ.get("QUIVER_ADDRESS") or "the local node"


_nodes: dict[tuple, _Node] = {}
_nodes_lock = threading.Lock()
_warned_fallback = False


def _node_for(opts: _Options) -> _Node:
    token = opts.token or os.environ.get("QUIVER_TOKEN") or None
    where = opts.address or os.environ.get("QUIVER_ADDRESS") or ("default", run_dir())
    key = (where, token, os.getpid())
    with _nodes_lock:
        node = _nodes.get(key)
        if node is None:
            node = _nodes[key] = _Node(opts.address or os.environ.get("QUIVER_ADDRESS") or None, token)
        return node


def _warn_fallback(node: _Node, fn_name: str) -> None:
    global _warned_fallback
    if _warned_fallback:
        return
    _warned_fallback = True
    warnings.warn(f"quiver.accelerate: no quiver node reachable at {node.where()} ({node.down}); "
                  f"running {fn_name} in this process. Start a node (`quiver start`), set "
                  "QUIVER_ADDRESS, or pass fallback='error' to fail instead. "
                  "(Warned once per process.)", RuntimeWarning, stacklevel=4)


# Forms of a call.

_PANDAS, _ARROW, _PANDAS_ITER, _ARROW_ITER, _BATCHES = "pandas", "arrow", "pandas_iter", "arrow_iter", "batches"


def _form_of(values) -> str | None:
    if values and all(isinstance(v, _PANDAS_OBJS) for v in values):
        return _PANDAS
    if values and all(isinstance(v, _ARROW_ARRAYS) for v in values):
        return _ARROW
    return None


def _item_form(item) -> tuple[str, list] | None:
    """The form of one item of an input iterator, and its values (the arguments)."""
    if isinstance(item, pa.RecordBatch):
        return _BATCHES, list(item.columns)
    values = list(item) if isinstance(item, tuple) else [item]
    form = _form_of(values)
    if form == _PANDAS:
        return _PANDAS_ITER, values
    if form == _ARROW:
        return _ARROW_ITER, values
    return None


def _is_stream(x) -> bool:
    return isinstance(x, collections.abc.Iterator) and not isinstance(x, (*_PANDAS_OBJS, *_ARROW_ARRAYS))


_MISSING = object()


class _Accelerated:
    """The state behind one accelerated function, per process."""

    def __init__(self, obj, opts: _Options):
        self.fn = obj
        self.opts = opts
        self.is_class = isinstance(obj, type)
        self.explicit = _result_type(opts.returns) if opts.returns is not None else None
        self._init_runtime()

    def __getstate__(self):
        return {"fn": self.fn, "opts": self.opts, "is_class": self.is_class, "explicit": self.explicit}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    def _init_runtime(self):
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._returns: dict[tuple, pa.DataType] = {}   # argument types -> inferred result type
        self._names: dict[tuple, str] = {}             # (node, kind, result type, ...) -> registered name
        self._instance = None                          # the local instance of a class
        self._streak = 0                               # remote batches in a row that were cheap
        self._local_batches = -1                       # >= 0 while running here because it is cheap
        self._warned_convert = False
        self.remote_batches = 0                        # batches sent to the node (for tests, metrics)
        self.local_batches = 0                         # batches run in this process

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        if self.is_class:
            sig = inspect.signature(self.fn.__call__)
            params = list(sig.parameters.values())[1:]  # without self
            return sig.replace(parameters=params)
        return inspect.signature(self.fn)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or getattr(self.fn, "__name__", None) or repr(self.fn)

    def _check_fork(self):
        if self._pid != os.getpid():
            self._init_runtime()

    # Entry.

    def __call__(self, args: tuple, kwargs: dict):
        self._check_fork()
        if kwargs:
            try:
                bound = self.signature.bind(*args, **kwargs)
            except TypeError:
                return self._target()(*args, **kwargs)  # let the function say what is wrong
            if bound.kwargs:  # **kwargs parameters: nothing to ship positionally
                return self._target()(*args, **kwargs)
            args = bound.args
        if len(args) == 1 and _is_stream(args[0]):
            if self.is_class:
                raise TypeError(f"quiver.accelerate: class {self.name} was called with an iterator; "
                                "a class's __call__ takes Series (or Arrays) and returns one per "
                                "call. For an iterator UDF, decorate a function")
            return self._stream(args[0])
        values = list(args)
        form = _form_of(values)
        if form is None:
            return self._target()(*args)  # scalars or other objects: not a batch
        return self._batch(form, values, None)

    def _target(self):
        """What to call in this process: the function, or the class's one local instance."""
        if not self.is_class:
            return self.fn
        with self._lock:
            if self._instance is None:
                self._instance = self.fn()
            return self._instance

    # Iterators: each input batch is one call.

    def _stream(self, it):
        it = iter(it)
        for item in it:
            got = _item_form(item)
            if got is None:
                raise TypeError(f"quiver.accelerate: {self.name} got an iterator of "
                                f"{type(item).__name__}; expected pandas Series/DataFrames, "
                                "tuples of them, pyarrow Arrays or RecordBatches")
            form, values = got
            node = _node_for(self.opts)
            here = self._cheap_here()
            if not here and node.get() is None and self.opts.fallback == "local":
                _warn_fallback(node, self.name)
                here = True
            if here:
                yield from self._local_stream(itertools.chain([item], it))
                return
            yield self._batch(form, values, item)

    def _local_stream(self, items):
        """The rest of a stream in this process: the function sees one iterator, as in Spark."""

        def counted():
            for x in items:
                self.local_batches += 1
                if self._local_batches >= 0:
                    self._local_batches += 1
                yield x

        yield from self.fn(counted())

    # One batch.

    def _cheap_here(self) -> bool:
        """Whether the function is cheap enough to run here (see _observe); re-probes the node
        every REPROBE_EVERY batches."""
        if self._local_batches < 0:
            return False
        if self._local_batches < REPROBE_EVERY:
            return True
        self._local_batches = -1           # re-probe: one remote batch decides
        self._streak = CHEAP_STREAK - 1
        return False

    def _batch(self, form: str, values: list, item):
        """Run one batch: on the node when it answers, else here (as the options say)."""
        n = len(values[0])
        if n == 0 or self._cheap_here():
            return self._local(form, values, item)
        node = _node_for(self.opts)
        client = node.get()
        if client is None:
            return self._unreachable(node, form, values, item)
        try:
            arrays = [_widen_array(_to_arrow(form, v)) for v in values]
        except (TypeError, ValueError, pa.ArrowException) as e:
            if not self._warned_convert:
                self._warned_convert = True
                warnings.warn(f"quiver.accelerate: cannot send the arguments of {self.name} to the "
                              f"node ({e}); running it in this process", RuntimeWarning, stacklevel=3)
            return self._local(form, values, item)
        key = (form, tuple(a.type for a in arrays),
               tuple(item.schema.names) if form == _BATCHES else None)
        returns, local_result = self._returns_for(key, form, values, item)
        if returns is None:
            return local_result if local_result is not _MISSING else self._local(form, values, item)
        batch = pa.RecordBatch.from_arrays(arrays, names=[f"_{i}" for i in range(len(arrays))])
        for attempt in range(2):
            try:
                name = self._register(client, node, form, returns, item)
                start = time.perf_counter()
                out = client.call(name, batch, rows_per_task=self.opts.rows_per_task,
                                  retries=self.opts.retries, on_error=self.opts.on_error)
                wall = time.perf_counter() - start
            except FunctionNotFound:
                if attempt:
                    raise
                self._forget(node)  # the node restarted: register again
                continue
            except Unavailable as e:
                node.mark_down(e)
                return self._unreachable(node, form, values, item)
            except OverCapacity:
                if self.opts.fallback == "error":
                    raise
                return self._local(form, values, item)
            except UDFError as e:
                if self.explicit is None and _is_result_type_error(e):
                    return self._widen_result(key, form, values, item, returns)
                raise
            break
        self.remote_batches += 1
        self._observe(client, wall)
        return self._from_arrow(form, out, values)

    def _unreachable(self, node: _Node, form, values, item):
        if self.opts.fallback == "error":
            raise Unavailable(f"quiver.accelerate: no quiver node reachable at {node.where()} "
                              f"({node.down}) for {self.name}. Start one (`quiver start`), set "
                              "QUIVER_ADDRESS, or use fallback='local' to run in-process instead")
        _warn_fallback(node, self.name)
        return self._local(form, values, item)

    def _observe(self, client, wall_s: float) -> None:
        """Go local after CHEAP_STREAK batches whose work here would have beaten the round trip."""
        if self.opts.rows_per_task is not None or os.environ.get("QUIVER_ADAPTIVE", "1") == "0":
            return
        info = getattr(client, "last_call_info", None) or {}
        work_ms = info.get("work_ms")
        if not work_ms:  # None, or 0.0 from a node that reports nothing
            return
        self._streak = self._streak + 1 if work_ms < wall_s * 1e3 else 0
        if self._streak >= CHEAP_STREAK:
            self._local_batches = 0

    # Registration.

    def _remote_fn(self, form: str, item):
        """(object to register, node kind) for a form."""
        if form == _BATCHES:
            return _RecordBatchAdapter(self.fn, tuple(item.schema.names)), "arrow"
        if form == _ARROW_ITER:
            return _ArrowIterAdapter(self.fn), "arrow"
        if form == _ARROW:
            return self.fn, "arrow"
        if form == _PANDAS_ITER:
            return self.fn, "iterator"
        return self.fn, "class" if self.is_class else "series"

    def _register(self, client, node: _Node, form: str, returns: pa.DataType, item) -> str:
        fnobj, kind = self._remote_fn(form, item)
        names = tuple(item.schema.names) if form == _BATCHES else None
        key = (id(node), kind, str(returns), names, form)
        name = self._names.get(key)
        if name is not None:
            return name
        with self._lock:
            name = self._names.get(key)
            if name is None:
                with _pickled_by_value(self.fn):
                    digest = hashlib.sha256(cloudpickle.dumps((fnobj, kind, str(returns)))).hexdigest()
                    base = re.sub(r"[^A-Za-z0-9_.]+", "_", _short_name(self.fn))[:64] or "fn"
                    name = client.register(fnobj, name=f"{base}-{digest[:16]}", returns=returns, kind=kind)
                self._names[key] = name
        return name

    def _forget(self, node: _Node) -> None:
        with self._lock:
            for k in [k for k in self._names if k[0] == id(node)]:
                del self._names[k]

    # The result type.

    def _returns_for(self, key, form, values, item):
        """(result type, _MISSING) or, when it cannot be inferred yet, (None, local result or _MISSING).

        Runs the function here on 1, then a few rows; if those results still
        hold a null type, on the whole batch, whose result then is the answer.
        """
        if self.explicit is not None:
            return self.explicit, _MISSING
        t = self._returns.get(key)
        if t is not None:
            return t, _MISSING
        with self._lock:
            t = self._returns.get(key)
            if t is not None:
                return t, _MISSING
            n = len(values[0])
            for rows in PROBE_ROWS:
                rows = min(rows, n)
                part = [_head(v, rows) for v in values]
                try:
                    result = self._local_once(form, part, _head_item(item, rows) if item is not None else None)
                except Exception:
                    # The function fails here too: run the batch here, so the caller sees
                    # exactly what the plain function does (or on_error="null" semantics).
                    return None, _MISSING
                t = self._infer(form, result, rows)
                if not _has_null_type(t):
                    self._returns[key] = t
                    return t, _MISSING
                if rows == n:
                    break
            result = self._local(form, values, item)
            t = self._infer(form, result, n)
            if not _has_null_type(t):
                self._returns[key] = t
            return None, result

    def _infer(self, form: str, result, rows: int) -> pa.DataType:
        """The widened Arrow type of a local result, checking it is one row per input row."""
        got = _length(result)
        if got != rows:
            if form == _BATCHES:
                raise _not_per_row(self.name, got, rows)
            raise ValueError(f"quiver.accelerate: {self.name} returned {got} rows for {rows} input "
                             "rows; a vectorized UDF must return one row per input row")
        if form == _BATCHES:
            return _widen_type(pa.struct(list(result.schema)))
        if isinstance(result, _ARROW_ARRAYS):
            return _widen_type(result.type)
        return _widen_type(pandas_to_arrow(result).type)

    def _widen_result(self, key, form, values, item, old: pa.DataType):
        """The node could not convert a result to the inferred type: run here, widen the type."""
        result = self._local(form, values, item)
        try:
            new = self._infer(form, result, len(values[0]))
            merged = pa.unify_schemas([pa.schema([("r", old)]), pa.schema([("r", new)])],
                                      promote_options="permissive").field(0).type
        except (pa.ArrowException, TypeError, ValueError):
            merged = None
        with self._lock:
            if merged is not None and not _has_null_type(merged):
                self._returns[key] = merged
            else:
                self._returns.pop(key, None)
        return result

    # Running here.

    def _local(self, form, values, item):
        """One batch in this process, with on_error semantics."""
        self.local_batches += 1
        if self._local_batches >= 0:
            self._local_batches += 1
        if self.opts.on_error != "null":
            return self._local_once(form, values, item)
        try:
            return self._local_once(form, values, item)
        except Exception:
            return self._local_rows(form, values, item)

    def _local_once(self, form, values, item):
        if form == _PANDAS or form == _ARROW:
            return self._target()(*values)
        parts = list(self.fn(iter([item])))
        if form == _BATCHES:
            return _concat_batches(parts, item.schema)
        return _concat(parts)

    def _local_rows(self, form, values, item):
        """on_error="null" here: evaluate row by row; rows that fail become null."""
        n = len(values[0])
        results, errors = [], []
        for i in range(n):
            part = [_slice(v, i, 1) for v in values]
            try:
                results.append(self._local_once(form, part, _slice_item(item, i, 1)))
            except Exception as e:
                results.append(None)
                errors.append(f"{type(e).__name__}: {e}")
        done = [r for r in results if r is not None]
        if done:
            t = self._infer(form, done[0], 1)
        else:
            t = self.explicit or pa.null()
        arrays = []
        for r in results:
            if r is None:
                arrays.append(pa.nulls(1, t))
            elif form == _BATCHES:
                arrays.append(pa.StructArray.from_arrays(r.columns, fields=list(t)))
            else:
                arrays.append(_widen_array(r if isinstance(r, _ARROW_ARRAYS) else pandas_to_arrow(r, t)).cast(t))
        out = pa.concat_arrays(arrays) if arrays else pa.nulls(0, t)
        if errors:
            warnings.warn(f"quiver.accelerate: {self.name}: {len(errors)} row(s) failed and are "
                          f"null; first: {errors[0]}", RuntimeWarning, stacklevel=4)
        return self._from_arrow(form, out, values)

    def _from_arrow(self, form: str, out: pa.Array, values):
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        if form == _BATCHES:
            return pa.RecordBatch.from_struct_array(out)
        if form in (_ARROW, _ARROW_ITER):
            return out
        result = arrow_to_pandas(out)
        index = values[0].index
        if len(index) == len(result):
            result.index = index
        if isinstance(result, pd.Series):
            result.name = None  # not the node's internal function name
        return result


# Remote adapters: Arrow-native iterator forms as "arrow" functions on the node.
