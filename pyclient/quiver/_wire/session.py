"""A connection's session: one long-lived stream for many small requests.

A task, a small put or get costs a few microseconds of node work, far less
than opening a gRPC stream, so a Connection (quiver._wire.conn) keeps one DoExchange open (descriptor
CMD "session", docs/protocol.md "Sessions") and sends each request as one
batch of a large_binary column with JSON app_metadata {"op", "req", ...}. The
node answers each request with one batch carrying the same "req", in the
order requests finish, not the order they were sent.

Reading. Whoever reads the stream settles the callbacks of the answers it
reads. A thread that waits for an answer (``call``, a task future's
``result()``) reads the stream itself while nobody else does: a lone request
then costs no thread hand-off, which is most of a round trip's time in
Python. A background reader thread takes over when requests are in flight
and no waiting thread has claimed the stream for a short grace period
(futures nobody waits on, callbacks, ``concurrent.futures.wait``).

Transports. The stream is a Flight DoExchange (``FlightWire``) or, for a
client on the node's unix socket, the node's same-host lane
(quiver._wire.lane): the same requests and answers, framed without gRPC.

Writing. Requests are written by the threads that make them, one at a time;
readers never write, so a node that stops reading (its window of requests
is full) can always drain its answers. When the stream breaks (the node
stopped or restarted), every request waiting on it fails with the error and
the connection opens a new session for the next request.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from typing import Callable

import pyarrow as pa
import pyarrow.flight as flight

from ..errors import QuiverError, Unavailable, from_code, translate

__all__ = ["Session", "SessionError", "NotSent", "FlightWire", "COMMAND", "SCHEMA"]

COMMAND = b"session"
SCHEMA = pa.schema([pa.field("payload", pa.large_binary())])
_EMPTY = pa.RecordBatch.from_arrays([pa.array([], type=pa.large_binary())], schema=SCHEMA)
GRACE_S = 0.002  # how long the background reader leaves the stream to a waiting thread

# A callback gets (batch, metadata dict) for an answer, or (None, QuiverError).
Callback = Callable[[pa.RecordBatch | None, "dict | QuiverError"], None]

_local = threading.local()  # .reading: this thread is settling answers


class SessionError(QuiverError):
    """A request's own failure, as the node answered it: ``code`` is the gRPC
    status code's name ("NotFound", "FailedPrecondition", ...)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class NotSent(Unavailable):
    """The request did not go out: the stream had ended (the node stopped,
    restarted or is draining). Sending it on a new session is safe."""


class FlightWire:
    """A session's stream as a Flight DoExchange: ``write`` a request,
    ``read`` an answer as (batch, metadata bytes)."""

    stamps = None  # objects read over Flight are not kept (quiver._wire.lane.Stamps)

    def __init__(self, conn):
        try:
            self._writer, self._reader = conn.flight.do_exchange(
                flight.FlightDescriptor.for_command(COMMAND), conn.plain)
            self._writer.begin(SCHEMA)
        except (pa.ArrowException, flight.FlightError) as e:
            raise translate(e) from e

    def write(self, batch: pa.RecordBatch | None, meta: bytes) -> None:
        self._writer.write_with_metadata(_EMPTY if batch is None else batch, pa.py_buffer(meta))

    def read(self) -> tuple[pa.RecordBatch, dict]:
        chunk = self._reader.read_chunk()
        raw = b"" if chunk.app_metadata is None else chunk.app_metadata.to_pybytes()
        try:
            return chunk.data, json.loads(raw)
        except ValueError:
            raise QuiverError(f"quiver: the node sent a session answer whose app_metadata is not JSON: "
                              f"{raw[:200]!r}") from None

    def finish(self) -> None:
        self._writer.done_writing()

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.close()


_BROKEN = (pa.ArrowException, flight.FlightError, OSError, QuiverError)


def _broken(e: BaseException) -> QuiverError:
    if isinstance(e, OSError):
        return Unavailable(f"quiver: the session's connection broke: {e}")
    return translate(e)


class Session:
    """One session stream of a Connection. Safe to use from any thread."""

    def __init__(self, conn, wire=None):
        self._wire = wire if wire is not None else FlightWire(conn)
        self.stamps = self._wire.stamps  # objects kept after a get, or None
        self._wlock = threading.Lock()            # one writer at a time
        self._cond = threading.Condition()        # guards what follows
        self._waiting: dict[int, Callback] = {}   # requests sent, not answered
        self._next = 1
        self._since = 0.0                         # when _waiting last became non-empty
        self._busy = False                        # a thread is reading the stream
        self._helpers = 0                         # threads in wait_until that would read it
        self._sleepers = 0                        # threads blocked in wait_until
        self._parked = False                      # the background reader waits for a change
        self._ended = False                       # the stream has ended: nothing more to read
        self.broken: QuiverError | None = None    # set once the stream failed or was closed
        self._thread = threading.Thread(target=self._background, name="quiver-session", daemon=True)
        self._thread.start()

    # Requests.

    def request(self, meta: dict, callback: Callback, batch: pa.RecordBatch | None = None) -> None:
        """Send one request; callback runs with its answer, on whichever thread
        reads it. Raises NotSent if the stream has ended (nothing is sent)."""
        with self._cond:
            if self.broken is not None:
                raise NotSent(self.broken.message)
            req = self._next
            self._next += 1
            meta["req"] = req
            if not self._waiting:
                self._since = time.monotonic()
                if self._parked or self._sleepers:  # something to read again
                    self._cond.notify_all()
            self._waiting[req] = callback
        try:
            with self._wlock:
                self._wire.write(batch, json.dumps(meta).encode())
        except _BROKEN as e:
            err = _broken(e)
            with self._cond:
                sent = self._waiting.pop(req, None) is None  # answered already: it went out
                self.broken = self.broken or err
                self._cond.notify_all()
            if not sent:
                raise NotSent(err.message) from e

    def wait_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until done() is true, reading the stream meanwhile when nobody
        else does; False if timeout (seconds) passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        helps = deadline is None and not getattr(_local, "reading", False)
        with self._cond:
            self._helpers += helps
        try:
            while True:
                with self._cond:
                    while True:
                        if done():
                            return True
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            return False
                        if helps and not self._busy and self._waiting and not self._ended:
                            self._busy = True
                            break
                        self._sleepers += 1
                        self._cond.wait(0.05 if left is None else min(left, 0.05))
                        self._sleepers -= 1
                try:
                    self._read_one()
                finally:
                    self._release()
        finally:
            with self._cond:
                self._helpers -= helps
                if helps and self._waiting and not self._busy:
                    self._cond.notify_all()  # the background reader takes over

    def close(self, wait: bool = True) -> None:
        """End the stream; requests still waiting fail. wait=False does not wait
        for the reading thread (it may be the caller's own): the wire is aborted
        instead (a read in progress ends), and closed when it is collected."""
        with self._cond:
            if self.broken is None:
                self.broken = QuiverError("quiver: the client is closed")
            self._cond.notify_all()
        try:
            with self._wlock:
                self._wire.finish()
        except Exception:  # noqa: BLE001  a stream that broke already
            pass
        try:
            if wait:
                self._thread.join(5)
                self._wire.close()
            else:
                self._wire.abort()
        except Exception:  # noqa: BLE001
            pass

    # Reading.

    def _background(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._ended or (self.broken is not None and not self._waiting):
                        return
                    if self._waiting and not self._busy and not self._helpers:
                        # Leave the stream a moment to a thread about to wait on its answer.
                        due = self._since + GRACE_S - time.monotonic()
                        if due <= 0:
                            self._busy = True
                            break
                        self._cond.wait(due)
                        continue
                    self._parked = True  # until something changes: request() wakes it
                    self._cond.wait(0.5)
                    self._parked = False
            # Read on while answers are due and no waiting thread wants the stream.
            try:
                while True:
                    self._read_one()
                    with self._cond:
                        if self._ended or not self._waiting or self._helpers:
                            break
            finally:
                self._release()

    def _release(self) -> None:
        """Give up reading the stream."""
        with self._cond:
            self._busy = False
            if self._sleepers or (self._waiting and not self._helpers):
                self._cond.notify_all()

    def _read_one(self) -> None:
        """Read one answer and settle it; the caller set _busy and releases it."""
        _local.reading = True
        try:
            try:
                data, meta = self._wire.read()
            except StopIteration:
                self._end(Unavailable("quiver: the node ended the session"))
                return
            except _BROKEN as e:
                self._end(_broken(e))
                return
            try:
                req = int(meta["req"])
            except (ValueError, KeyError, TypeError):
                self._end(QuiverError(f"quiver: the node sent a session answer without a request "
                                      f"number: {str(meta)[:200]}"))
                return
            with self._cond:
                callback = self._waiting.pop(req, None)
            if callback is not None:
                e = meta.get("error")
                _settle(callback, None if e else data, error(e) if e else meta)
                with self._cond:
                    if self._sleepers:
                        self._cond.notify_all()  # whoever waits on this answer
        finally:
            _local.reading = False

    def _end(self, err: QuiverError) -> None:
        """The stream ended: fail every request still waiting."""
        if self.stamps is not None:
            self.stamps.close()  # what it kept may be gone with the node
        with self._cond:
            self._ended = True
            if self.broken is None:
                self.broken = err
            waiting, self._waiting = self._waiting, {}
            err = self.broken
        for callback in waiting.values():
            _settle(callback, None, err)


def _settle(callback: Callback, data, answer) -> None:
    try:
        callback(data, answer)
    except Exception:  # noqa: BLE001  a callback's bug must not stop the reading
        traceback.print_exc()


def error(e: dict) -> QuiverError:
    """The QuiverError of an answer's {"code", "message"}."""
    code, message = str(e.get("code", "")), str(e.get("message", ""))
    err = from_code(code, message)
    if type(err) is QuiverError:
        return SessionError(message, code)
    err.code = code
    return err
