"""Worker leases: a synchronous task goes straight to a worker the node lent.

A task submitted while nothing else of its dispatcher is in flight is likely
awaited at once (``client.submit(f, x).result()``). Through the node, its round
trip crosses three processes; with a lease it crosses two. Over the lane
(quiver._wire.lane), a dispatcher asks the node for a lease on the task's
function (session op ``lease``); the node hands over an idle worker's socket,
or says none is idle. The dispatcher then sends such tasks to the worker
directly, in the lane's framing, while the lease lasts: the worker ends it
after ``idle_ms`` without a request or ``max_ms`` in all (the node's own
tasks wait for it that long at most), and the dispatcher stops using it a
little before. A task whose lease broke under it (ended, or the worker died)
goes through the node instead: a request the worker never read never ran.
docs/worker-protocol.md ("Leases") has the worker's side. $QUIVER_LEASES=0
turns leases off (every task goes through the node).
"""

from __future__ import annotations

import os
import socket
import time

from ._wire.lane import LaneWire
from ._wire.session import Session
from .errors import QuiverError

__all__ = ["Lease", "Leases"]

MARGIN_S = 0.002    # stop using a lease this long before the worker would end it
BACKOFF_S = 0.05    # after the node had no idle worker, ask again no sooner than this


class Lease:
    """One leased worker, for one function: a session over its socket."""

    def __init__(self, fd: int, name: str, idle_ms: float, max_ms: float):
        self.session = Session(None, LaneWire(socket.socket(fileno=fd)))
        self.name = name
        now = time.monotonic()
        self._until = now + max_ms / 1e3 - MARGIN_S
        self._idle = idle_ms / 1e3 - MARGIN_S
        self.last = now

    def usable(self, name: str) -> bool:
        now = time.monotonic()
        return (name == self.name and self.session.broken is None and now < self._until
                and now - self.last < self._idle)

    def close(self) -> None:
        """End it without waiting (the caller may be its own reading thread)."""
        self.session.close(wait=False)


class Leases:
    """A dispatcher's lease: at most one at a time, asked for when a task needs one."""

    def __init__(self, conn):
        self._conn = conn
        self._lease: Lease | None = None
        self._not_before = 0.0

    def get(self, name: str) -> Lease | None:
        """A usable lease for function name, or None (then send through the node)."""
        lease = self._lease
        if lease is not None and lease.usable(name):
            return lease
        self.drop(lease)
        if (time.monotonic() < self._not_before or os.environ.get("QUIVER_LEASES", "1") == "0"
                or not self._conn.on_lane()):
            return None
        try:
            _, answer = self._conn.ask({"op": "lease", "fn": name})
        except QuiverError:
            self._not_before = time.monotonic() + 1.0
            return None
        fd = answer.get("fd")
        if not answer.get("lease") or fd is None:
            self._not_before = time.monotonic() + BACKOFF_S
            return None
        self._lease = Lease(fd, name, float(answer.get("idle_ms", 0)), float(answer.get("max_ms", 0)))
        return self._lease

    def drop(self, lease: Lease | None) -> None:
        """Stop using lease (if it is the current one) and end it."""
        if lease is None:
            return
        if self._lease is lease:
            self._lease = None
        lease.close()

    def close(self) -> None:
        self.drop(self._lease)
