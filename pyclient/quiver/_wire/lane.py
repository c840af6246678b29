"""The same-host lane: a connection's session over a plain unix socket.

A client on the node's unix socket asks the node's ``lane`` action for the
lane's path and key, connects, says hello with the key, and from then on
sends session requests and reads their answers as frames (the worker
protocol's framing, docs/protocol.md "Lane") instead of Arrow batches over
gRPC: a task's round trip then costs no gRPC and no Arrow IPC on either
side. quiver._wire.session runs on either transport; this module is the
lane's ``Wire``.

The welcome carries the node's generation table (a read-only memfd). A get
over the lane answers with the object's stamp (slot, generation); the
client keeps small objects it read (``Stamps``) and serves a later get from
memory while the slot still holds that generation and the lane is up: the
node bumps the generation before it answers a release, and a node that
stopped or restarted has closed the lane, so a get never returns an object
that was released or lost.

$QUIVER_LANE=0 turns the lane off (the session then goes over Flight).
"""

from __future__ import annotations

import collections
import json
import mmap
import os
import select
import socket
import struct
import threading

import pyarrow as pa
import pyarrow.flight as flight

from .._util import send_all
from ..errors import QuiverError, Unavailable, from_code

__all__ = ["LaneWire", "Stamps", "connect", "enabled"]

HELLO, REQUEST = 1, 2
WELCOME, ANSWER, REFUSED = 10, 11, 12
VERSION = 1
_PREFIX = struct.Struct("<B3xIQ")
_U64 = struct.Struct("<Q")
_MAX_HEADER = 1 << 20
_CHUNK = 1 << 16
_ANC = socket.CMSG_SPACE(4 * 4)
_EMPTY_ROWS = pa.array([], type=pa.large_binary())

CACHE_OBJECT_BYTES = 64 << 10   # objects up to this size are kept after a get
CACHE_BYTES = 64 << 20          # and this much in all, the least recently read dropped first


def enabled() -> bool:
    """Whether sessions may use a lane ($QUIVER_LANE, default on)."""
    return os.environ.get("QUIVER_LANE", "1").lower() not in ("0", "false", "no", "off")


def connect(conn, timeout: float = 5.0) -> "LaneWire | None":
    """The lane of conn's node, connected and welcomed; None when conn is not
    on a unix socket or the node offers no lane."""
    if not conn.address.startswith("grpc+unix://"):
        return None
    try:
        results = list(conn.flight.do_action(flight.Action("lane", b""), conn.plain))
        info = json.loads(results[0].body.to_pybytes()) if results else {}
    except (pa.ArrowException, flight.FlightError, ValueError):
        return None  # an older node, or one that refuses: Flight serves the session
    path, key = info.get("path") or "", info.get("key") or ""
    if not path:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(_frame(HELLO, json.dumps({"key": key}).encode()))
        msg, fds, _, _ = socket.recv_fds(sock, _CHUNK, 1)
        sock.settimeout(None)
    except OSError:
        sock.close()
        return None
    try:
        return LaneWire.welcomed(sock, msg, fds)
    except QuiverError:
        sock.close()
        raise
    finally:
        for fd in fds:
            os.close(fd)


def _frame(kind: int, header: bytes, body_len: int = 0) -> bytes:
    return _PREFIX.pack(kind, len(header), body_len) + header


class LaneWire:
    """One lane connection, a session's transport: ``write`` a request,
    ``read`` an answer as (batch of one large_binary column, metadata dict).
    A leased worker's socket (quiver.tasks) speaks the same frames, without
    the hello."""

    def __init__(self, sock: socket.socket, stamps: "Stamps | None" = None, first: bytes = b""):
        self._sock = sock
        self._buf = bytearray(first)
        self._fds: collections.deque[int] = collections.deque()  # descriptors received, for lease answers
        self.stamps = stamps

    @classmethod
    def welcomed(cls, sock: socket.socket, first: bytes, fds: list[int]) -> "LaneWire":
        """The lane after its hello: first is what was read of the welcome, fds what came with it."""
        wire = cls(sock, first=first)
        kind, header, _ = wire._take() or (None, None, None)
        if kind == REFUSED:
            e = json.loads(header)
            raise from_code(str(e.get("code", "")), "quiver: the node refused the lane: " + str(e.get("message", "")))
        if kind != WELCOME:
            raise QuiverError(f"quiver: the lane answered hello with frame kind {kind}")
        slots = int(json.loads(header).get("slots", 0))
        if fds and slots:
            wire.stamps = Stamps(fds[0], slots, sock)
        return wire

    # Writing: one thread at a time (the session's write lock).

    def write(self, batch: pa.RecordBatch | None, meta: bytes) -> None:
        col = _EMPTY_ROWS if batch is None else batch.column(0)
        n = len(col)
        if n == 0:
            self._sock.sendall(_frame(REQUEST, meta))
            return
        if col.null_count:
            raise QuiverError("quiver: a lane request cannot carry null rows")
        _, offs_buf, data_buf = col.buffers()
        offs = memoryview(offs_buf).cast("q")[col.offset:col.offset + n + 1]
        base, end = offs[0], offs[n]
        if base:
            offs = struct.pack(f"<{n + 1}q", *(o - base for o in offs))
        data = memoryview(data_buf)[base:end] if data_buf is not None else b""
        body = 8 + 8 * (n + 1) + (end - base)
        send_all(self._sock, [_frame(REQUEST, meta, body), _U64.pack(n), offs, data])

    def finish(self) -> None:
        """No more requests (the node answers what it read, then ends)."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.stamps is not None:
            self.stamps.close()
        self._sock.close()
        while self._fds:
            os.close(self._fds.popleft())

    def abort(self) -> None:
        """End both directions now: a read in progress on another thread sees the end."""
        if self.stamps is not None:
            self.stamps.close()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # Reading: one thread at a time (the session's reader).

    def read(self) -> tuple[pa.RecordBatch, dict]:
        """The next answer; StopIteration when the node ended the lane. A lease's
        answer carries the leased worker's socket as "fd" (the caller owns it)."""
        while True:
            got = self._take()
            if got is not None:
                break
            more, anc, _, _ = self._sock.recvmsg(_CHUNK, _ANC)
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    self._fds.extend(struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4]))
            if not more:
                if self._buf:
                    raise Unavailable("quiver: the lane ended in the middle of a frame")
                raise StopIteration
            self._buf += more
        kind, header, body = got
        if kind != ANSWER:
            raise QuiverError(f"quiver: the lane sent frame kind {kind} where an answer was due")
        meta = json.loads(header)
        if meta.get("lease") and self._fds:
            meta["fd"] = self._fds.popleft()
        return _rows(body, meta), meta

    def _take(self):
        """The first whole frame buffered, removed from the buffer; None if none."""
        buf = self._buf
        if len(buf) < 16:
            return None
        kind, hlen, blen = _PREFIX.unpack_from(buf)
        if hlen > _MAX_HEADER:
            raise QuiverError(f"quiver: the lane sent a header of {hlen} bytes")
        end = 16 + hlen + blen
        if end - len(buf) > _CHUNK:
            self._fill(end)  # a large body: read it straight into place
            buf = self._buf
        if len(buf) < end:
            return None
        header = bytes(buf[16:16 + hlen])
        if len(buf) == end:  # the usual case: the frame is all there is, and its body is kept as it is
            self._buf = bytearray()
            return kind, header, pa.py_buffer(buf).slice(16 + hlen) if blen else None
        body = pa.py_buffer(bytes(memoryview(buf)[16 + hlen:end])) if blen else None
        del buf[:end]
        return kind, header, body

    def _fill(self, end: int) -> None:
        have = len(self._buf)
        self._buf.extend(bytes(end - have))
        view = memoryview(self._buf)
        try:
            while have < end:
                n = self._sock.recv_into(view[have:end])
                if not n:
                    break
                have += n
        finally:
            view.release()
        del self._buf[have:]


def _rows(buf: pa.Buffer | None, meta: dict) -> pa.RecordBatch:
    """An answer's rows as a batch of one large_binary column, without copying the data."""
    if buf is None:
        col = _EMPTY_ROWS
    else:
        n = _U64.unpack_from(buf)[0]
        offs = buf.slice(8, 8 * (n + 1))
        data = buf.slice(8 + 8 * (n + 1))
        validity = None
        nulls = meta.get("nulls")
        if nulls:
            bits = bytearray((n + 7) // 8 or 1)
            for i in range(n):
                bits[i >> 3] |= 1 << (i & 7)
            for i in nulls:
                bits[i >> 3] &= ~(1 << (i & 7))
            validity = pa.py_buffer(bytes(bits))
        col = pa.Array.from_buffers(pa.large_binary(), n, [validity, offs, data])
    return pa.RecordBatch.from_arrays([col], names=["result"])


class Stamps:
    """Objects read over the lane, kept while their stamp holds.

    ``keep(id, slot, gen, data)`` after a get; ``lookup(id)`` gives the bytes
    again while the node's generation table still holds ``gen`` at ``slot``
    and the lane is up (no round trip: a word read from shared memory and a
    poll of the socket), else None."""

    def __init__(self, fd: int, slots: int, sock: socket.socket):
        self._map = mmap.mmap(fd, slots * 8, mmap.MAP_SHARED, mmap.PROT_READ) if slots else None
        self._words = memoryview(self._map).cast("Q") if self._map is not None else None
        self._poll = select.poll()
        self._poll.register(sock, select.POLLRDHUP)
        self._lock = threading.Lock()
        self._kept: collections.OrderedDict[str, tuple[int, int, bytes]] = collections.OrderedDict()
        self._bytes = 0
        self._up = True

    def keep(self, oid: str, slot: int, gen: int, data) -> None:
        if self._words is None or len(data) > CACHE_OBJECT_BYTES or not 0 <= slot < len(self._words):
            return
        data = bytes(data)
        with self._lock:
            old = self._kept.pop(oid, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._kept[oid] = (slot, gen, data)
            self._bytes += len(data)
            while self._bytes > CACHE_BYTES:
                _, (_, _, d) = self._kept.popitem(last=False)
                self._bytes -= len(d)

    def lookup(self, oid: str):
        with self._lock:
            got = self._kept.get(oid)
            if got is None or not self._up:
                return None
            slot, gen, data = got
            if self._words[slot] != gen:
                del self._kept[oid]
                self._bytes -= len(data)
                return None
            # The node closes the lane when it stops: an object it held is
            # then lost, whatever the table (no longer written) says.
            if self._poll.poll(0):
                self._up = False
                return None
            self._kept.move_to_end(oid)
            return data

    def close(self) -> None:
        with self._lock:
            self._up = False
            self._kept.clear()
            self._bytes = 0
            if self._words is not None:
                self._words.release()
                self._map.close()
                self._words = self._map = None
