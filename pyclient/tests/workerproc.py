"""A real `python -m quiver.worker` process driven frame by frame as a node would
(docs/worker-protocol.md), and the fixtures of the worker tests that use it."""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import socket
import struct
import subprocess
import sys

import cloudpickle
import pyarrow as pa
import pytest

LOAD, TASK, SHUTDOWN, READY, RESULT, ERROR = 1, 2, 3, 10, 11, 12
PREFIX = struct.Struct("<B3xIQ")
TIMEOUT_S = 30


class WorkerProc:
    """One worker process and the node's end of its fd-3 socketpair; with arena_size,
    an arena (a memfd of that size) on its fd 4 as well, mapped here as self.arena."""

    def __init__(self, stdout=subprocess.DEVNULL, env=None, arena_size=None):
        self.sock, child = socket.socketpair()
        cfd = child.fileno()
        self.arena_fd = self.arena = None
        keep = (cfd, 3)
        if arena_size is not None:
            memfd = os.memfd_create("quiver-arena-test")
            self.arena_fd = fcntl.fcntl(memfd, fcntl.F_DUPFD, 10)  # clear of 3 and 4
            os.close(memfd)
            self.grow(arena_size)
            keep += (self.arena_fd, 4)
        afd = self.arena_fd

        def on_fd3():  # runs in the child before exec; fds 3 and 4 are kept through close_fds
            os.dup2(cfd, 3)
            if afd is not None:
                os.dup2(afd, 4)

        self.proc = subprocess.Popen([sys.executable, "-m", "quiver.worker"],
                                     stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                                     pass_fds=keep, preexec_fn=on_fd3, env=env)
        child.close()
        self.sock.settimeout(TIMEOUT_S)
        self.rfile = self.sock.makefile("rb")

    def grow(self, size: int) -> None:
        """Make the arena size bytes and remap it here, as the node grows it."""
        os.ftruncate(self.arena_fd, size)
        if self.arena is not None:
            self.arena.close()
        self.arena = mmap.mmap(self.arena_fd, size)

    def task_arena(self, fn_id: str, *columns, task: int = 1, off: int = 0):
        """A TASK with its arguments in the arena at off: ("result", column, header,
        whether the result came in the arena) or ("error", header)."""
        body = ipc(pa.RecordBatch.from_arrays([c if isinstance(c, pa.Array) else pa.array(c)
                                               for c in columns],
                                              names=[f"_{i}" for i in range(len(columns))]))
        self.arena[off:off + len(body)] = body
        self.send(TASK, {"task": task, "fn": fn_id, "arena": [off, len(body)],
                         "arena_size": len(self.arena)})
        kind, header, out = self.recv()
        assert header["task"] == task
        if kind == ERROR:
            return "error", header
        assert kind == RESULT, kind
        rng = header.get("arena")
        if rng is not None:
            assert out == b""
            o, n = rng
            assert o >= off + len(body) and o % 64 == 0 and o + n <= len(self.arena)
            out = self.arena[o:o + n]  # a copy, as the node makes
        result = pa.ipc.open_stream(out).read_all()
        assert header["rows"] == result.num_rows
        return "result", result.column(0).combine_chunks(), header, rng is not None

    def send(self, kind: int, header: dict, body: bytes = b"") -> None:
        h = json.dumps(header).encode()
        self.sock.sendall(PREFIX.pack(kind, len(h), len(body)) + h + bytes(body))

    def recv(self):
        pre = self.rfile.read(PREFIX.size)
        if len(pre) < PREFIX.size:
            raise EOFError(f"worker closed the channel; stderr:\n{self.stderr()}")
        kind, hl, bl = PREFIX.unpack(pre)
        header = json.loads(self.rfile.read(hl))
        return kind, header, self.rfile.read(bl)

    def load(self, fn_id: str, fn, returns, kind=None, name=None, spark=None) -> None:
        blob = cloudpickle.dumps({"fn": fn, "kind": kind, "returns": returns, "spark": spark})
        self.send(LOAD, {"fn": fn_id, "name": name or getattr(fn, "__name__", fn_id)}, blob)

    def task(self, fn_id: str, *columns, task: int = 1, extra: dict | None = None):
        """Send a TASK (its header with extra's fields); return ("result", Arrow
        column, header) or ("error", header)."""
        names = [f"_{i}" for i in range(len(columns))]
        batch = pa.RecordBatch.from_arrays([pa.array(c) if not isinstance(c, pa.Array) else c
                                            for c in columns], names=names)
        self.send(TASK, {"task": task, "fn": fn_id, **(extra or {})}, ipc(batch))
        kind, header, body = self.recv()
        assert header["task"] == task
        if kind == ERROR:
            assert body == b""
            return "error", header
        assert kind == RESULT, kind
        result = pa.ipc.open_stream(body).read_all()
        assert result.schema.names == ["result"]
        assert header["rows"] == result.num_rows
        assert header["ms"] >= 0
        return "result", result.column(0).combine_chunks(), header

    def wait(self, timeout=TIMEOUT_S) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()
        if self.arena is not None:
            self.arena.close()
            os.close(self.arena_fd)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


def ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def started(**kw) -> WorkerProc:
    w = WorkerProc(**kw)
    kind, header, body = w.recv()
    assert kind == READY and header["pid"] == w.proc.pid and header["python"] and body == b""
    return w


@pytest.fixture(scope="module")
def shared():
    """One worker for the tests that leave it running (each uses its own function IDs)."""
    w = started()
    yield w
    w.close()


@pytest.fixture
def worker(shared):
    assert shared.proc.poll() is None, f"the shared worker died; stderr:\n{shared.stderr()}"
    return shared


@pytest.fixture
def own_worker():
    """A worker of the test's own, for tests that end it."""
    w = started()
    yield w
    w.close()
