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
    Iterator[pa.RecordBatch] -> Iterator[pa.RecordBatch]  (mapInArrow)
    Iterator[pd.DataFrame] -> Iterator[pd.DataFrame]      (mapInPandas)
                                                   map forms of any output length: each
                                                   input frame's rows run as tasks, each
                                                   task through the function on its own
                                                   (quiver._accel.mapform says what the
                                                   function must allow)
    a class                -> __init__ once per node worker, __call__ per task; the
                              wrapper has __call__'s signature without self

Placing accelerate *outside* a pyspark UDF (``quiver.accelerate(pandas_udf(...)(f))``)
also works: it returns an equivalent UDF and takes the result type from it. Over a
row-at-a-time ``@udf`` (classic or ``useArrow=True``) it returns an Arrow UDF whose
rows run as tasks on the node with Spark's row semantics (quiver._accel.rows).

Result type. ``returns`` (a Spark DDL string, a pyarrow or pyspark type) fixes
it. Without it the wrapper runs the function once locally, in this process, on
the first row of a batch (a few rows if that result is all null) and uses the
Arrow type of that result; it does so once per distinct set of argument types,
since pandas results often follow their inputs (an int column with nulls
arrives as float64). A result that later does not fit the inferred type is
computed locally instead, and the type is widened. Pass ``returns`` to skip the
local run (e.g. for a class whose constructor loads a large model). A pandas
result that no Arrow type holds faithfully (values of mixed kinds, a DataFrame
whose column labels are not strings) travels pickled and reaches Spark exactly
as the function returned it (quiver._accel.pickled). For the Arrow
forms leave ``returns`` out or pass a pyarrow type: a Spark DDL "timestamp" means
the pandas side's naive wall-clock time, not the zoned arrays arrow_udf returns.

Task context. In a Spark task, each call carries Spark's TaskContext to the
node, where ``pyspark.TaskContext.get()`` and ``quiver.task_context()`` return
it (quiver._taskcontext).

Registration and connections. The function is cloudpickled and registered on
first use in each process, under a content-addressed name; batches go over
this process's shared connection to the node (quiver._wire.conn.shared: one
per address, token and pid, so forked Spark workers never share a gRPC
channel), reused across batches and tasks.

When no node is reachable (nor can be started, see quiver._wire.local), with
``fallback="local"`` (default) the function runs in this process, with one
warning per process, and the node is tried again every 200 batches; with
``fallback="error"`` the call raises quiver.Unavailable.

Cheap functions skip the detour by measurement: after each remote batch what
the node reports the batch would have cost as one call (``solo_ms``: its
``work_ms`` when it ran as one task, else the function's fitted cost of its
rows) is compared with the call's wall time; when running the batch here would
have been faster for 3 batches in a row, the function runs in this process from
then on, and the node is tried again every 200 batches. The switch is one per function and process: the
copies Spark unpickles for each task share it, so a later task (or query) in
the same Python worker starts from what the earlier ones measured. Passing
``rows_per_task`` turns this off, and so does the environment variable
``QUIVER_ADAPTIVE=0`` (tests, benchmarks).

Modules: this one is the decorator and the per-process state; where a batch
runs is decided by quiver._accel.policy (pure), its switch shared per process
by quiver._accel.switches, the result type by
quiver._accel.infer, the forms by quiver._accel.forms, and conversions by
quiver._convert.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import os
import pickle
import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pyarrow as pa

from .. import _options
from .._convert import pandas_to_arrow
from .._taskcontext import headers as task_headers
from .._util import concat_parts
from ..errors import FunctionNotFound, OverCapacity, UDFError, Unavailable
from . import policy
from .forms import (
    _ARROW,
    _ARROW_ARRAYS,
    _PANDAS,
    _PANDAS_ITER,
    _fn_name,
    _form_of,
    _from_arrow,
    _is_result_type_error,
    _is_stream,
    _item_form,
    _pickled_by_value,
    _remote_fn,
    _result_type,
    _short_name,
    _slice,
    _slice_item,
    _to_arrow,
    _widen_array,
)
from . import mapform, rows
from .infer import MISSING, ResultTypes
from .nodes import _Node, _node_for, _warn_fallback
from .pickled import CARRIER, PICKLED, PickledResult, unpickle
from .switches import switch_for

__all__ = ["accelerate"]


@dataclass(frozen=True)
class _Options:
    returns: Any = None
    rows_per_task: int | None = None
    retries: int | None = _options.default("retries")
    on_error: str = _options.default("on_error")
    fallback: str = _options.default("fallback")
    address: str | None = None
    token: str | None = None
    concurrency: int | None = None

    @functools.cached_property
    def headers(self) -> tuple:
        """The call's option headers, made once."""
        return _options.call_headers({"rows_per_task": self.rows_per_task, "retries": self.retries,
                                      "on_error": self.on_error})


def accelerate(fn=None, *, returns=None, rows_per_task: int | None = None,
               retries: int | None = _options.default("retries"),
               on_error: str = _options.default("on_error"),
               fallback: str = _options.default("fallback"), address: str | None = None,
               token: str | None = None, concurrency: int | None = None):
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
    concurrency    for functions that wait (HTTP, a database): rows each node worker
                   runs at once, on threads (an async def's awaited together); a row
                   UDF's rows, else slices of a task's batch (README, "concurrency")
    """
    if isinstance(fn, (str, pa.DataType)) and returns is None:  # @accelerate("double")
        fn, returns = None, fn
    checked = _options.check("quiver.accelerate", rows_per_task=rows_per_task, retries=retries,
                             on_error=on_error, fallback=fallback, concurrency=concurrency)
    if returns is not None:
        _result_type(returns)  # fail at decoration time on a bad type
    opts = _Options(returns, address=address, token=token, **checked)

    def decorate(obj):
        if rows.is_spark_udf(obj):
            return rows.accelerate_spark_udf(obj, opts, _Accelerated, _make_wrapper)
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


class _Accelerated:
    """The state behind one accelerated function, per process."""

    def __init__(self, obj, opts: _Options):
        self.fn = obj
        self.opts = opts
        self.is_class = isinstance(obj, type)
        self.explicit = _result_type(opts.returns) if opts.returns is not None else None
        self.uid = os.urandom(8).hex()  # names this function in every process its copies reach
        self._init_runtime()

    def __getstate__(self):
        return {"fn": self.fn, "opts": self.opts, "is_class": self.is_class, "explicit": self.explicit,
                "uid": self.uid}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("uid", os.urandom(8).hex())
        self._init_runtime()

    def _init_runtime(self):
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self.types = ResultTypes(self.name, self.explicit)  # the inferred result types
        self._names: dict[tuple, str] = {}             # (node, kind, result type, ...) -> registered name
        self._instance = None                          # the local instance of a class
        self.adaptive = switch_for(self.uid)            # the cheap-function switch (switches.py)
        self._warned_convert = False
        self.remote_batches = 0                        # batches sent to the node (for tests, metrics)
        self.local_batches = 0                         # batches run in this process
        self.last_work_ms = None                       # what the node reported for the last remote batch
        self.map_row_ms = None                         # a map function's cost per row here (mapform)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        if self.is_class:
            sig = inspect.signature(self.fn.__call__)
            params = list(sig.parameters.values())[1:]  # without self
            return sig.replace(parameters=params)
        return inspect.signature(self.fn)

    @property
    def name(self) -> str:
        return _fn_name(self.fn)

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
            here = self.adaptive.here()
            if not here and node.get() is None and policy.fallback(self.opts.fallback) == policy.LOCAL:
                _warn_fallback(node, self.name)
                here = True
            if here:
                yield from self._local_stream(itertools.chain([item], it))
                return
            if form in mapform.FORMS:  # mapInPandas, mapInArrow: frames of any length
                yield from mapform.map_frames(self, form, item)
            else:
                yield self._batch(form, values, item)

    def _local_stream(self, items):
        """The rest of a stream in this process: the function sees one iterator, as in Spark."""

        def counted():
            for x in items:
                self._ran_here()
                yield x

        yield from self.fn(counted())

    # One batch.

    def _batch(self, form: str, values: list, item):
        """Run one batch: on the node when it answers, else here (as the options say)."""
        n = len(values[0])
        if n == 0 or self.adaptive.here():
            return self._local(form, values, item)
        node = _node_for(self.opts)
        conn = node.get()
        if conn is None:
            return self._unreachable(node, form, values, item)
        try:
            arrays = [_widen_array(_to_arrow(form, v)) for v in values]
        except (TypeError, ValueError, pa.ArrowException) as e:
            if not self._warned_convert:
                self._warned_convert = True
                warnings.warn(f"quiver.accelerate: cannot send the arguments of {self.name} to the "
                              f"node ({e}); running it in this process", RuntimeWarning, stacklevel=3)
            return self._local(form, values, item)
        key = (form, tuple(a.type for a in arrays), None)
        returns, local_result = self.types.for_batch(key, form, values, item, self._local_once, self._local)
        if returns is None:
            return local_result if local_result is not MISSING else self._local(form, values, item)
        batch = pa.RecordBatch.from_arrays(arrays, names=[f"_{i}" for i in range(len(arrays))])
        for attempt in range(2):
            try:
                name = self._register(node, form, returns, item)
                start = time.perf_counter()
                chunks, _, info = conn.exchange(name, batch.schema, (batch,),
                                                conn.call_options(self.opts.headers + task_headers()))
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
                if policy.fallback(self.opts.fallback) == policy.RAISE:
                    raise
                return self._local(form, values, item)
            except UDFError as e:
                if self.explicit is None and _is_result_type_error(e):
                    return self.types.widen(key, form, values, item, returns, self._local)
                raise
            break
        self.remote_batches += 1
        self._observe(info, wall)
        if returns is PICKLED:
            return unpickle(chunks[0], values[0].index)
        return _from_arrow(form, chunks[0], values)

    def _unreachable(self, node: _Node, form, values, item):
        if policy.fallback(self.opts.fallback) == policy.RAISE:
            raise Unavailable(f"quiver.accelerate: no quiver node reachable at {node.where()} "
                              f"({node.down}) for {self.name}. Start one (`quiver start`), set "
                              "QUIVER_ADDRESS, or use fallback='local' to run in-process instead")
        _warn_fallback(node, self.name)
        return self._local(form, values, item)

    def _observe(self, info: dict, wall_s: float, here_ms: float | None = None) -> None:
        """Tell the cheap-function switch how the batch went (unless it is off): what it
        would have cost here (here_ms, else the node's solo_ms: its rows as one call)
        against its wall time."""
        self.last_work_ms = info.get("work_ms")
        if self.measuring():
            solo = info.get("solo_ms") or self.last_work_ms
            self.adaptive.observe(solo if here_ms is None else here_ms, wall_s * 1e3)

    def measuring(self) -> bool:
        """Whether the cheap-function switch is on (rows_per_task or QUIVER_ADAPTIVE=0 turn it off)."""
        return self.opts.rows_per_task is None and os.environ.get("QUIVER_ADAPTIVE", "1") != "0"

    # Registration.

    def _register(self, node: _Node, form: str, returns: pa.DataType, item) -> str:
        if form in mapform.FORMS:
            fnobj, kind = mapform.remote_fn(self.fn, form, item)
            names = mapform.frame_key(form, item)
        else:
            fnobj, kind = _remote_fn(self.fn, self.is_class, form, item)
            names = None
        key = (id(node), kind, str(returns), names, form)
        if returns is PICKLED:  # no Arrow type: the node returns the results pickled
            fnobj, kind, returns = PickledResult(self.fn, is_class=self.is_class,
                                                 iterator=form == _PANDAS_ITER), "series", CARRIER
        name = self._names.get(key)
        if name is not None:
            return name
        with self._lock:
            name = self._names.get(key)
            if name is None:
                with _pickled_by_value(self.fn):
                    digest = hashlib.sha256(cloudpickle.dumps((fnobj, kind, str(returns)))).hexdigest()
                    base = re.sub(r"[^A-Za-z0-9_.]+", "_", _short_name(self.fn))[:64] or "fn"
                    name = node.functions.register(fnobj, name=f"{base}-{digest[:16]}", returns=returns,
                                                   kind=kind, concurrency=self._concurrency(kind))
                self._names[key] = name
        return name

    def _concurrency(self, kind: str) -> int | None:
        return None if kind == "table" else self.opts.concurrency  # map forms: one task at a time

    def _forget(self, node: _Node) -> None:
        with self._lock:
            for k in [k for k in self._names if k[0] == id(node)]:
                node.functions.forget(self._names.pop(k))

    # Running here.

    def _ran_here(self) -> None:
        self.local_batches += 1
        self.adaptive.ran_here()

    def _local(self, form, values, item):
        """One batch in this process, with on_error semantics."""
        self._ran_here()
        if self.opts.on_error != "null":
            return self._local_once(form, values, item)
        try:
            return self._local_once(form, values, item)
        except Exception:
            return self._local_rows(form, values, item)

    def _local_once(self, form, values, item):
        if form == _PANDAS or form == _ARROW:
            return self._target()(*values)
        return concat_parts(list(self.fn(iter([item]))))

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
            t = self.types.infer(form, done[0], 1)
        else:
            t = self.explicit or pa.null()
        if t is PICKLED:
            return unpickle(pa.array([None if r is None else pickle.dumps(r) for r in results], CARRIER),
                            values[0].index)
        arrays = []
        for r in results:
            if r is None:
                arrays.append(pa.nulls(1, t))
            else:
                arrays.append(_widen_array(r if isinstance(r, _ARROW_ARRAYS) else pandas_to_arrow(r, t)).cast(t))
        out = pa.concat_arrays(arrays) if arrays else pa.nulls(0, t)
        if errors:
            warnings.warn(f"quiver.accelerate: {self.name}: {len(errors)} row(s) failed and are "
                          f"null; first: {errors[0]}", RuntimeWarning, stacklevel=4)
        return _from_arrow(form, out, values)
