"""Leases: a client on the node's host talks to this worker directly for a while.

The node sends LEASE (header {"lease", "fn", "idle_ms", "max_ms"}) on fd 3 and
the worker's end of a fresh socket pair over the lease channel, fd 5. Until
the client closes its end, sends nothing for idle_ms, or max_ms have passed,
the worker serves the client's requests on it in the lane's framing
(docs/protocol.md, "Lane"): each REQUEST is {"op": "call", "req": N, "fn":
NAME} (the leased function's name) with rows of pickled (args, kwargs), run as
a task function's rows are
(quiver._taskrows), answered by an ANSWER {"req": N, "work_ms": x} with one
pickled outcome per row. Anything else ends the lease. Then it closes its end
and sends LEASE_END {"lease", "tasks"} on fd 3: the node has the worker back.
A request the worker has not read when the lease ends is never run, so the
client may send it through the node again.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time

from .._taskcontext import running
from .._taskrows import run_task_payloads
from .._util import send_all

LEASE, LEASE_END = 4, 13
REQUEST, ANSWER = 2, 11
LEASE_FD = 5
_PREFIX = struct.Struct("<B3xIQ")
_U64 = struct.Struct("<Q")
_MAX_HEADER = 1 << 20
_MAX_BODY = 1 << 30


def channel() -> socket.socket | None:
    """The lease channel (fd 5), or None when the node gave none."""
    try:
        return socket.socket(fileno=LEASE_FD)
    except OSError:
        return None


def serve(chan: socket.socket, header: dict, function) -> dict:
    """Serve one lease; returns LEASE_END's header. function is the loaded
    _Function of header["fn"] (or None)."""
    _, fds, _, _ = socket.recv_fds(chan, 1, 1)
    tasks = 0
    if not fds:
        return {"lease": header.get("lease"), "tasks": 0}
    sock = socket.socket(fileno=fds[0])
    for extra in fds[1:]:
        socket.close(extra)
    idle = max(0.0, float(header.get("idle_ms", 0)) / 1e3)
    deadline = time.monotonic() + max(0.0, float(header.get("max_ms", 0)) / 1e3)
    usable = function is not None and function.load_error is None and function.kind == "task"
    try:
        while usable:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], min(idle, left))[0]:
                break
            frame = _read_frame(sock)
            if frame is None:
                break
            kind, meta, payloads = frame
            if kind != REQUEST or meta.get("op") != "call" or "req" not in meta or meta.get("fn") != function.name:
                break  # not a call of the leased function: the client sends it through the node
            with running(None):
                outs, ms = run_task_payloads(function.fn, payloads, 1)
            _send(sock, {"req": meta["req"], "work_ms": round(ms, 3)}, outs)
            tasks += len(payloads)
    except (OSError, ValueError):
        pass  # the client went away or spoke nonsense: the lease ends
    finally:
        sock.close()
    return {"lease": header.get("lease"), "tasks": tasks}


def _read_frame(sock: socket.socket):
    """(kind, header, rows) of one frame, or None at end of file."""
    prefix = _recv_exact(sock, 16)
    if prefix is None:
        return None
    kind, hlen, blen = _PREFIX.unpack(prefix)
    if prefix[1:4] != b"\0\0\0" or hlen > _MAX_HEADER or blen > _MAX_BODY:
        raise ValueError("bad lease frame")
    header = json.loads(_recv_exact(sock, hlen) or b"{}") if hlen else {}
    body = _recv_exact(sock, blen) if blen else b""
    if body is None or not isinstance(header, dict):
        raise ValueError("bad lease frame")
    return kind, header, _rows(body)


def _recv_exact(sock: socket.socket, n: int):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return buf


def _rows(body) -> list:
    if not body:
        return []
    n = _U64.unpack_from(body)[0]
    if 8 + 8 * (n + 1) > len(body):
        raise ValueError("bad lease rows")
    offs = struct.unpack_from(f"<{n + 1}q", body, 8)
    data = memoryview(body)[8 + 8 * (n + 1):]
    if offs[0] != 0 or offs[-1] != len(data) or any(a > b for a, b in zip(offs, offs[1:])):
        raise ValueError("bad lease rows")
    return [bytes(data[offs[i]:offs[i + 1]]) for i in range(n)]


def _send(sock: socket.socket, header: dict, rows: list) -> None:
    h = json.dumps(header, separators=(",", ":")).encode()
    offs = [0]
    for r in rows:
        offs.append(offs[-1] + len(r))
    body_len = 8 + 8 * len(offs) + offs[-1]
    head = _PREFIX.pack(ANSWER, len(h), body_len) + h + _U64.pack(len(rows)) + struct.pack(f"<{len(offs)}q", *offs)
    send_all(sock, [head, *rows])
