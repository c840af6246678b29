"""A task's record and its future: what quiver.tasks' Dispatcher queues, sends
and settles, and how a result row settles a future."""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import reprlib

from . import _retry
from .errors import QuiverError, UDFError
from .objects import ObjectRef, ref_args

__all__ = ["_Task", "TaskFuture", "_resolve"]

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlevel = 2


class _Task:
    """One submission: where it goes, its pickled arguments and its future;
    or one small object to put (obj_id set, payload its pickle)."""

    __slots__ = ("name", "payload", "future", "fn", "args", "kwargs", "alone", "started",
                 "reregistered", "resent", "recovered", "retries", "obj_id")

    def __init__(self, name, payload, future, fn, args, kwargs, retries=None):
        self.name = name
        self.retries = retries  # the node's retries for this task; None: its default
        self.payload = payload
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.alone = False  # True once its shared request failed: it runs as its own request
        self.started = False  # its future is running
        self.reregistered = False
        self.resent = False
        self.recovered = False  # a lost argument was made again for it
        self.obj_id = None  # a put: the object's id

    @property
    def key(self) -> tuple:
        """Its queue: tasks of one function and one retries setting share requests."""
        return (self.name, self.retries)

    def label(self) -> str:
        if self.obj_id is not None:
            return f"put of object {self.obj_id}"
        fn = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        parts = [_short.repr(a) for a in self.args or ()]
        parts += [f"{k}={_short.repr(v)}" for k, v in (self.kwargs or {}).items()]
        return f"task {fn}({', '.join(parts)})"

    def done(self) -> None:
        self.payload = self.args = self.kwargs = None


class TaskFuture(cf.Future):
    """A task's Future. ``result()`` and ``exception()`` without a timeout read
    the session's answers in the calling thread while nobody else does (see
    quiver._wire.session), which saves a thread hand-off per round trip: the
    connection's session, or the session of the worker lease the task went to
    (quiver._leases) while it is there."""

    def __init__(self, conn):
        super().__init__()
        self._conn = conn

    def _help(self) -> None:
        while not self.done():
            waiter = self._conn  # the connection, or the session of the lease it went to
            waiter.wait_until(lambda: self.done() or self._conn is not waiter)

    def result(self, timeout=None):
        if timeout is None:
            self._help()
        return super().result(timeout)

    def exception(self, timeout=None):
        if timeout is None:
            self._help()
        return super().exception(timeout)


def _resolve(t: _Task, row, can_recover: bool) -> ObjectRef | None:
    """Settle t's future from its result row. If the task failed because an
    argument object made by a task was lost (and can_recover), leave it
    unsettled and return that argument (once per task), for the dispatcher
    to make it again."""
    try:
        if row is None:
            raise QuiverError("the node returned no result")
        outcome = pickle.loads(row)
    except Exception as e:
        t.future.set_exception(QuiverError(f"quiver: {t.label()}: cannot read its result here: "
                                           f"{type(e).__name__}: {e}"))
        t.done()
        return None
    if outcome[0] == "ok":
        t.future.set_result(outcome[1])
    else:
        _, etype, message, tb, *lost_id = outcome
        err = UDFError(f"{t.label()} raised {etype}: {message}\n\nRemote traceback:\n{tb}")
        err.remote_type, err.remote_message, err.remote_traceback = etype, message, tb
        err.remote_object_id = lost_id[0] if lost_id else None  # an ObjectLost's object
        if can_recover and not t.recovered:
            lost = _retry.lost_argument(ref_args(t.args, t.kwargs), err)
            if lost is not None:
                t.recovered = True
                return lost
        t.future.set_exception(err)
    t.done()
    return None
