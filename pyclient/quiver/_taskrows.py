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

from ._util import user_traceback

__all__ = ["RESULT_TYPE", "run_task_rows", "install_ref_reader"]

RESULT_TYPE = pa.large_binary()
_SKIP = frozenset({__file__})

_ref_types: tuple = ()   # the ObjectRef class, once quiver.objects is imported
_read_ref: Callable | None = None


def install_ref_reader(ref_type: type, read: Callable) -> None:
    """Resolve arguments of ref_type with read(ref) (quiver.objects calls this)."""
    global _ref_types, _read_ref
    _ref_types, _read_ref = (ref_type,), read


def run_task_rows(fn: Callable, column: pa.Array) -> tuple[pa.Array, float]:
    """Run fn once per row of column (each the pickle of (args, kwargs[, store])).

    Returns a large_binary array with one pickled outcome per row, and the
    milliseconds spent in fn. Never raises for a row: each row's failure is
    its own ("err", type, message, traceback, lost object id or None) outcome.
    """
    import cloudpickle

    out = []
    ms = 0.0
    for payload in column.to_pylist():
        start = None
        try:
            args, kwargs, *store = pickle.loads(payload)
            args = [_resolve(a) for a in args]
            kwargs = {k: _resolve(v) for k, v in kwargs.items()}
            start = time.perf_counter()
            value = fn(*args, **kwargs)
            ms += (time.perf_counter() - start) * 1e3
            start = None
            if store:
                store[0](value)
                value = None
            try:
                row = cloudpickle.dumps(("ok", value), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                raise TypeError(f"cannot pickle the result ({type(value).__name__}): {e}") from e
        except BaseException as e:  # noqa: BLE001  (sys.exit in a task is that task's error)
            if isinstance(e, KeyboardInterrupt):
                raise
            if start is not None:
                ms += (time.perf_counter() - start) * 1e3
            row = cloudpickle.dumps(("err", type(e).__name__, str(e), user_traceback(e, _SKIP),
                                     getattr(e, "object_id", None)))
        out.append(row)
    return pa.array(out, type=RESULT_TYPE), ms


def _resolve(value):
    if isinstance(value, _ref_types):
        return _read_ref(value)
    return value
