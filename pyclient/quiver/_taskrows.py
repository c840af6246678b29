"""The worker's side of the task API: running the rows of a "task" function.

A task function's input is one large_binary column whose rows are each the
cloudpickle of (args, kwargs) or (args, kwargs, store) of one task
(quiver.tasks makes them). Both the worker runtime (quiver.worker) and the
driver side import this module; it imports neither.

ObjectRef arguments are read through the objects layer: quiver.objects
installs its reader here when it is imported, which unpickling a payload
that holds an ObjectRef does first. ``store`` is a quiver.objects.StoreResult,
unpickled the same way: calling it keeps the value on this worker's node.
"""

from __future__ import annotations

import pickle
import time
from typing import Callable

import pyarrow as pa

from . import _concurrent
from ._concurrent import is_async, run_all
from ._util import user_traceback

__all__ = ["RESULT_TYPE", "run_task_rows", "install_ref_reader"]

RESULT_TYPE = pa.large_binary()
_SKIP = frozenset({__file__, _concurrent.__file__})

_ref_types: tuple = ()   # the ObjectRef class, once quiver.objects is imported
_read_ref: Callable | None = None


def install_ref_reader(ref_type: type, read: Callable) -> None:
    """Resolve arguments of ref_type with read(ref) (quiver.objects calls this)."""
    global _ref_types, _read_ref
    _ref_types, _read_ref = (ref_type,), read


def run_task_rows(fn: Callable, column: pa.Array, concurrency: int = 1) -> tuple[pa.Array, float]:
    """Run fn once per row of column (each the pickle of (args, kwargs[, store])), up
    to concurrency rows at once (threads; awaited on an event loop for an async fn).

    Returns a large_binary array with one pickled outcome per row, in row order,
    and the milliseconds spent in fn (added up over the rows). Never raises for a
    row: each row's failure is its own ("err", type, message, traceback, lost
    object id or None) outcome, and leaves the other rows alone.
    """
    out, ms = run_task_payloads(fn, column.to_pylist(), concurrency)
    return pa.array(out, type=RESULT_TYPE), ms


def run_task_payloads(fn: Callable, payloads: list, concurrency: int = 1) -> tuple[list, float]:
    """run_task_rows over a list of payloads: a list of pickled outcomes, and the ms in fn."""
    if is_async(fn):
        async def call(payload):
            args, kwargs, store = _arguments(payload)
            start = time.perf_counter()
            value = await fn(*args, **kwargs)
            return _ok(value, store, start)
    else:
        def call(payload):
            args, kwargs, store = _arguments(payload)
            start = time.perf_counter()
            value = fn(*args, **kwargs)
            return _ok(value, store, start)

    outcomes = run_all(call, payloads, concurrency, is_async(fn))
    out, ms = [], 0.0
    for o in outcomes:
        if o.error is None:
            row, fn_ms = o.value
            ms += fn_ms
        else:
            e = o.error
            ms += o.ms
            row = _pickle(("err", type(e).__name__, str(e), user_traceback(e, _SKIP),
                           getattr(e, "object_id", None)))
        out.append(row)
    return out, ms


def _arguments(payload: bytes):
    args, kwargs, *store = pickle.loads(payload)
    return [_resolve(a) for a in args], {k: _resolve(v) for k, v in kwargs.items()}, store


def _ok(value, store: list, start: float):
    """A row's pickled ("ok", value) (None once stored) and the ms in fn since start."""
    ms = (time.perf_counter() - start) * 1e3
    if store:
        store[0](value)
        value = None
    try:
        return _pickle(("ok", value)), ms
    except Exception as e:
        raise TypeError(f"cannot pickle the result ({type(value).__name__}): {e}") from e


def _pickle(outcome) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)


def _resolve(value):
    if isinstance(value, _ref_types):
        return _read_ref(value)
    return value
