"""Objects made by tasks, and how they are made again when lost.

    ref = client.remote(simulate, seed=1)     # an ObjectRef: the result stays on the node
    total = client.submit(summarize, ref)      # the worker reads it there, not via the driver
    client.get(ref)                            # the value

``remote`` runs fn like ``submit``, but the worker stores the result on its
node as a pickled object under an id the client chose, and the client keeps
the ref's lineage: fn and its arguments. Objects live on the node, not in a
worker, so a worker that dies loses none (its task is retried and stores the
same result). A node that stops loses its objects; when a client later reads
one made by a task (get, or a task that takes it as an argument), the client
runs the task again under the same id, first making again any argument
object that was lost too. Objects from ``put`` have no lineage: reading a
lost one raises ObjectLost. Recomputation assumes tasks are deterministic,
as retries already do.

Layer: above quiver.tasks. A ``Lineages`` holds a Dispatcher (and through it
a connection) and installs itself as the dispatcher's ``recover`` hook, so
that a task whose argument object was lost makes it again first.
"""

from __future__ import annotations

import secrets
from typing import Callable

from ._retry import MAX_RECOMPUTE_DEPTH, lost_argument
from .errors import ObjectLost, UDFError
from .objects import ObjectRef, ref_args
from .tasks import Dispatcher

__all__ = ["Lineage", "Lineages", "has_lineage"]


class Lineage:
    """The task that makes a ref's object, and its future while it runs."""

    __slots__ = ("fn", "args", "kwargs", "future", "retries", "concurrency")

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, future, retries: int | None = None,
                 concurrency: int | None = None):
        self.fn, self.args, self.kwargs, self.future, self.retries = fn, args, kwargs, future, retries
        self.concurrency = concurrency

    def wait(self, ref: ObjectRef) -> None:
        """The ref's task has finished and stored its result; raises its error."""
        self.future.result()

    def refs(self) -> list[ObjectRef]:
        """The ObjectRef arguments (those a worker resolves)."""
        return ref_args(self.args, self.kwargs)


class Lineages:
    """Objects made by tasks on one dispatcher's node, and making them again."""

    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher
        dispatcher.recover = self.recompute

    def remote(self, fn: Callable, args: tuple, kwargs: dict, retries: int | None = None,
               concurrency: int | None = None) -> ObjectRef:
        """Run fn(*args, **kwargs) on a worker, keeping the result on the node."""
        conn = self.dispatcher.conn
        ref = ObjectRef(secrets.token_hex(16), "pickle", conn.address, conn=conn)
        future = self.dispatcher.submit(fn, args, kwargs, store=ref.id, retries=retries,
                                        concurrency=concurrency)
        ref._lineage = ref._put = Lineage(fn, args, kwargs, future, retries, concurrency)
        return ref

    def recompute(self, ref: ObjectRef, depth: int = 0) -> None:
        """Run ref's task again under its id; raises ObjectLost if it has no lineage."""
        lineage: Lineage | None = getattr(ref, "_lineage", None)
        if lineage is None:
            raise ObjectLost(f"object {ref.id} is lost and came from put, not a task: it cannot be "
                             "made again", ref.id)
        if depth > MAX_RECOMPUTE_DEPTH:
            raise ObjectLost(f"object {ref.id} is lost, and so are more than {MAX_RECOMPUTE_DEPTH} "
                             "objects it was made from", ref.id)
        tried: set[str] = set()
        while True:
            future = self.dispatcher.submit(lineage.fn, lineage.args, lineage.kwargs, store=ref.id,
                                            retries=lineage.retries,
                                            concurrency=lineage.concurrency)
            try:
                future.result()
                return
            except UDFError as e:
                lost = lost_argument(lineage.refs(), e)
                if lost is None or lost.id in tried:
                    raise
                tried.add(lost.id)
                self.recompute(lost, depth + 1)


def has_lineage(ref: ObjectRef) -> bool:
    """Whether ref was made by a task (Client.remote), so that it can be made again."""
    return ref._lineage is not None
