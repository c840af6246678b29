"""A real `python -m quiver.worker` process, driven frame by frame as a node would
(docs/worker-protocol.md): READY, LOAD + TASK for every kind, ERROR frames, SHUTDOWN, EOF,
and the shared-memory arena on fd 4."""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

# Functions defined here travel by value: the worker cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

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

    def task(self, fn_id: str, *columns, task: int = 1):
        """Send a TASK; return ("result", Arrow column, header) or ("error", header)."""
        names = [f"_{i}" for i in range(len(columns))]
        batch = pa.RecordBatch.from_arrays([pa.array(c) if not isinstance(c, pa.Array) else c
                                            for c in columns], names=names)
        self.send(TASK, {"task": task, "fn": fn_id}, ipc(batch))
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


def test_ready_then_shutdown_exits_zero(own_worker):
    own_worker.send(SHUTDOWN, {})
    assert own_worker.wait() == 0


def test_eof_exits_zero(own_worker):
    own_worker.sock.shutdown(socket.SHUT_WR)
    assert own_worker.wait() == 0


def test_no_control_channel_is_a_clear_error():
    p = subprocess.run([sys.executable, "-m", "quiver.worker"], capture_output=True, text=True,
                       timeout=TIMEOUT_S, close_fds=True)
    assert p.returncode != 0
    assert "fd 3" in p.stderr


def test_unknown_frame_kind_closes_the_channel(own_worker):
    own_worker.sock.sendall(PREFIX.pack(99, 2, 0) + b"{}")
    assert own_worker.wait() != 0
    assert "unexpected frame kind 99" in own_worker.stderr()


def test_series_function(worker):
    def add(a, b):
        assert isinstance(a, pd.Series) and a.dtype == np.float64 and b.dtype == np.int64
        return a + b

    worker.load("f1", add, pa.float64())
    kind, col, header = worker.task("f1", [1.5, 2.5, None], [1, 2, 3])
    assert kind == "result"
    assert col.type == pa.float64()
    assert col.to_pylist() == [2.5, 4.5, None]
    # The function stays loaded: another task, no LOAD.
    kind, col, _ = worker.task("f1", [0.5], [1], task=2)
    assert col.to_pylist() == [1.5]


def test_result_is_cast_to_the_registered_type(worker):
    worker.load("f", lambda s: s.astype(str), "string")
    _, col, _ = worker.task("f", pa.array([1, 2], pa.int32()))
    assert col.type == pa.string() and col.to_pylist() == ["1", "2"]


def test_iterator_function(worker):
    calls = []

    def plus_one(batches):
        for a, b in batches:
            calls.append(1)
            yield a + b + 1

    worker.load("it", plus_one, pa.int64(), kind="iterator")
    _, col, _ = worker.task("it", [1, 2], [10, 20])
    assert col.to_pylist() == [12, 23]

    def one_arg(batches):
        for s in batches:
            assert isinstance(s, pd.Series)
            yield s.iloc[:1] * 2  # results are concatenated
            yield s.iloc[1:] * 3

    worker.load("it1", one_arg, pa.int64(), kind="iterator")
    _, col, _ = worker.task("it1", [1, 2, 3])
    assert col.to_pylist() == [2, 6, 9]


def test_struct_in_and_out_as_dataframes(worker):
    def swap(df):
        assert isinstance(df, pd.DataFrame) and list(df.columns) == ["a", "b"]
        return pd.DataFrame({"x": df["b"], "y": df["a"] * 2})

    ret = pa.struct([("x", pa.string()), ("y", pa.int64())])
    worker.load("df", swap, ret, kind="series")
    arg = pa.array([{"a": 1, "b": "p"}, {"a": 2, "b": "q"}])
    _, col, _ = worker.task("df", arg)
    assert col.type == ret
    assert col.to_pylist() == [{"x": "p", "y": 2}, {"x": "q", "y": 4}]


def test_arrow_function(worker):
    import pyarrow.compute as pc

    def mul(a, b):
        assert isinstance(a, pa.Array) and isinstance(b, pa.Array)
        return pc.multiply(a, b)

    worker.load("ar", mul, pa.int64(), kind="arrow")
    _, col, _ = worker.task("ar", [2, 3, None], [5, 7, 1])
    assert col.to_pylist() == [10, 21, None]


def test_class_is_instantiated_once_per_worker(worker):
    class Model:
        inits = 0

        def __init__(self):
            Model.inits += 1
            self.weight = 10

        def __call__(self, s):
            return s * self.weight + Model.inits

    worker.load("cls", Model, pa.int64())  # kind defaults to "class" for classes
    for t in range(1, 4):
        _, col, _ = worker.task("cls", [1, 2], task=t)
        assert col.to_pylist() == [11, 21]  # inits stays 1


def test_raising_function_reports_type_message_traceback(worker):
    def boom(s):
        raise ZeroDivisionError("no luck today")

    worker.load("boom", boom, pa.int64(), name="boom_fn")
    kind, header = worker.task("boom", [1])
    assert kind == "error"
    assert header["type"] == "ZeroDivisionError"
    assert header["message"] == "no luck today"
    assert header["fn"] == "boom_fn"
    assert "Traceback (most recent call last)" in header["traceback"]
    assert "in boom" in header["traceback"] and "no luck today" in header["traceback"]
    # The worker carries on.
    worker.load("ok", lambda s: s, pa.int64())
    assert worker.task("ok", [4], task=2)[1].to_pylist() == [4]


def test_sys_exit_in_user_code_is_an_error_not_an_exit(worker):
    worker.load("ex", lambda s: sys.exit(3), pa.int64())
    kind, header = worker.task("ex", [1])
    assert kind == "error" and header["type"] == "SystemExit"
    assert worker.proc.poll() is None


def test_wrong_length_result(worker):
    worker.load("short", lambda s: s.iloc[:1], pa.int64(), name="short")
    kind, header = worker.task("short", [1, 2, 3])
    assert kind == "error"
    assert header["type"] == "ValueError"
    assert "returned 1 rows for 3 input rows" in header["message"]


def test_wrong_result_type_names_the_arrow_type(worker):
    worker.load("bad", lambda s: pd.Series(["x"] * len(s)), pa.float64())
    kind, header = worker.task("bad", [1, 2])
    assert kind == "error"
    assert header["type"] == "TypeError"
    assert "double" in header["message"]
    worker.load("scalar", lambda s: 3.0, pa.float64())
    kind, header = worker.task("scalar", [1], task=2)
    assert kind == "error" and "should be pandas.Series, but is float" in header["message"]


def test_unknown_function_id(worker):
    kind, header = worker.task("never-loaded", [1])
    assert kind == "error"
    assert header["type"] == "LookupError"
    assert "never-loaded" in header["message"]


def test_blob_that_cannot_be_unpickled(worker, tmp_path):
    # A function from a module the worker cannot import (pickled by reference).
    mod = tmp_path / "only_here_mod.py"
    mod.write_text("def double(s):\n    return s * 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here_mod
        worker.load("gone", only_here_mod.double, pa.int64(), name="double")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_here_mod", None)
    kind, header = worker.task("gone", [1])
    assert kind == "error"
    assert header["type"] == "ModuleNotFoundError"
    assert "only_here_mod" in header["message"] and "double" in header["message"]
    assert header["fn"] == "double"
    kind, header = worker.task("gone", [1], task=2)  # every task says so
    assert kind == "error" and header["type"] == "ModuleNotFoundError"
    worker.send(LOAD, {"fn": "junk", "name": "junk"}, b"not a pickle")
    kind, header = worker.task("junk", [1], task=3)
    assert kind == "error" and "cannot load function 'junk'" in header["message"]


def test_printing_to_stdout_does_not_disturb_the_protocol(tmp_path):
    out = open(tmp_path / "stdout.txt", "wb")
    w = WorkerProc(stdout=out)
    try:
        assert w.recv()[0] == READY

        def chatty(s):
            print("hello from the UDF " * 5000)
            sys.stdout.write("\x0b\x00\x00\x00 not a frame\n")
            os.write(1, b"raw fd 1 write\n")
            return s + 1

        w.load("chatty", chatty, pa.int64())
        for t in range(1, 4):
            _, col, _ = w.task("chatty", [1, 2], task=t)
            assert col.to_pylist() == [2, 3]
        w.send(SHUTDOWN, {})
        assert w.wait() == 0
    finally:
        w.close()
        out.close()
    text = (tmp_path / "stdout.txt").read_text()
    assert text.count("raw fd 1 write") == 3 and "hello from the UDF" in text


def test_zero_rows_and_many_columns(worker):
    worker.load("sum", lambda *cols: sum(cols), pa.float64())
    _, col, header = worker.task("sum", pa.array([], pa.float64()), pa.array([], pa.float64()))
    assert len(col) == 0 and header["rows"] == 0
    cols = [[float(i)] * 3 for i in range(20)]
    _, col, _ = worker.task("sum", *cols, task=2)
    assert col.to_pylist() == [190.0] * 3


def test_large_batch(worker):
    worker.load("neg", lambda s: -s, pa.float64())
    n = 2_000_000  # a 16 MB body each way
    _, col, header = worker.task("neg", pa.array(np.arange(n, dtype=np.float64)))
    assert header["rows"] == n and col[n - 1].as_py() == -(n - 1)


def test_spark_timezone_applies_to_tz_aware_results(worker):
    def aware(s):
        return pd.Series(pd.to_datetime(["2020-07-01 12:00"]).tz_localize("UTC")).repeat(len(s))

    worker.load("tz", aware, pa.timestamp("us"), spark={"timezone": "America/Los_Angeles"})
    _, col, _ = worker.task("tz", [1])
    assert str(col[0].as_py()) == "2020-07-01 05:00:00"


def test_measure_identity_round_trip(worker):
    """Per-task round trip of an identity function on 1,000 float64 rows, printed, not asserted."""
    worker.load("id", lambda s: s, pa.float64())
    batch = pa.RecordBatch.from_arrays([pa.array(np.random.rand(1000))], names=["_0"])
    body = ipc(batch)
    h = json.dumps({"task": 0, "fn": "id"}).encode()
    frame = PREFIX.pack(TASK, len(h), len(body)) + h + body
    for _ in range(200):  # warm up
        worker.sock.sendall(frame)
        worker.recv()
    n, ms = 2000, 0.0
    start = time.perf_counter()
    for _ in range(n):
        worker.sock.sendall(frame)
        kind, header, _ = worker.recv()
        ms += header["ms"]
    per_task = (time.perf_counter() - start) / n * 1e6
    print(f"\nworker identity round trip, 1,000 float64 rows: {per_task:.0f} us/task "
          f"({ms / n * 1e3:.1f} us of it in the function)")


@pytest.mark.skipif(not hasattr(select, "poll"), reason="needs poll")
def test_worker_exits_when_node_dies_mid_task(own_worker):
    own_worker.load("slow", lambda s: (time.sleep(0.2), s)[1], pa.int64())
    batch = pa.RecordBatch.from_arrays([pa.array([1])], names=["_0"])
    own_worker.send(TASK, {"task": 1, "fn": "slow"}, ipc(batch))
    own_worker.rfile.close()
    own_worker.sock.close()  # the node went away: the worker's reply fails, then EOF
    assert own_worker.wait() == 0


def test_doc_mentions_every_kind():
    import quiver.worker as w
    for kind in w.KINDS:
        assert kind in textwrap.dedent(w.__doc__)


# The arena (fd 4).


@pytest.fixture
def arena_worker():
    w = started(arena_size=1 << 20)
    yield w
    w.close()


def test_arena_round_trip(arena_worker):
    w = arena_worker
    w.load("neg", lambda s: -s, pa.float64())
    w.load("ar", lambda a: a, pa.string(), kind="arrow")
    for t in range(1, 6):  # the same arena, task after task
        vals = np.arange(t * 1000, dtype=np.float64)
        kind, col, header, in_arena = w.task_arena("neg", pa.array(vals), task=2 * t - 1)
        assert kind == "result" and in_arena and "pinned" not in header
        assert col.to_numpy().tolist() == (-vals).tolist()
        strs = pa.array([f"row {i}" if i % 3 else None for i in range(t * 100)])
        kind, col, header, in_arena = w.task_arena("ar", strs, task=2 * t, off=64 * t)
        assert in_arena and col.equals(strs)


def test_arena_result_too_large_goes_in_the_body(arena_worker):
    w = arena_worker
    w.load("pad", lambda s: s.map(lambda v: "%0100d" % v), pa.string())
    kind, col, header, in_arena = w.task_arena("pad", list(range(20_000)))  # 160 kB in, 2 MB out
    assert kind == "result" and not in_arena and "arena" not in header
    assert len(col) == 20_000 and col[19_999].as_py() == "%0100d" % 19_999
    # Small results use the arena again.
    _, col, _, in_arena = w.task_arena("pad", [1, 2], task=2)
    assert in_arena and col.to_pylist() == ["%0100d" % 1, "%0100d" % 2]


def test_arena_growth_is_remapped(arena_worker):
    w = arena_worker
    w.load("id", lambda s: s, pa.int64())
    assert w.task_arena("id", [1, 2, 3])[1].to_pylist() == [1, 2, 3]
    w.grow(16 << 20)  # as the node grows it: larger file, larger arena_size
    vals = np.arange(600_000, dtype=np.int64)  # 4.8 MB: past the worker's first mapping
    kind, col, header, in_arena = w.task_arena("id", pa.array(vals), task=2)
    assert kind == "result" and in_arena
    assert header["arena"][0] + header["arena"][1] > 1 << 20
    assert (col.to_numpy() == vals).all()


def test_arguments_kept_by_user_code_pin_the_arena(arena_worker):
    w = arena_worker

    class Keeper:
        def __init__(self):
            self.kept = None

        def __call__(self, s):
            if s.iloc[0] == -1:
                self.kept = False  # lets go, for good
            elif self.kept is None:
                self.kept = s  # a view of the arena, zero-copy
            return s + 0

    w.load("keep", Keeper, pa.int64())
    kind, col, header, in_arena = w.task_arena("keep", [5, 6])
    assert in_arena and header.get("pinned") is True
    # While pinned, the node sends arguments in the body; the result comes there too.
    kind, col, header = w.task("keep", [7, 8], task=2)
    assert kind == "result" and header.get("pinned") is True and "arena" not in header
    kind, col, header = w.task("keep", [-1, 0], task=3)
    assert "pinned" not in header
    _, col, header, in_arena = w.task_arena("keep", [9], task=4)
    assert in_arena and "pinned" not in header and col.to_pylist() == [9]


def test_the_kinds_do_not_pin_the_arena(arena_worker):
    w = arena_worker
    w.load("s", lambda a, b: a + b, pa.int64())
    w.load("a", lambda a, b: a, pa.int64(), kind="arrow")

    def it(batches):
        for a, b in batches:
            yield a * b

    w.load("it", it, pa.int64(), kind="iterator")
    w.load("df", lambda df: df["x"], pa.int64(), kind="series")
    w.load("err", lambda a, b: 1 / 0, pa.int64())
    cols = (pa.array(np.arange(1000, dtype=np.int64)), pa.array(np.ones(1000, dtype=np.int64)))
    for t, fn in enumerate(["s", "a", "it", "err", "s"], 1):
        out = w.task_arena(fn, *cols, task=t)
        assert "pinned" not in out[-2 if out[0] == "result" else 1], fn
    st = pa.StructArray.from_arrays([cols[0]], names=["x"])
    out = w.task_arena("df", st, task=6)
    assert out[0] == "result" and "pinned" not in out[2]


def test_bad_arena_range_is_a_protocol_error(arena_worker):
    w = arena_worker
    w.load("id", lambda s: s, pa.int64())
    w.send(TASK, {"task": 1, "fn": "id", "arena": [16, 1 << 20], "arena_size": 1 << 20})
    assert w.wait() != 0
    assert "arena range [16, 1048592) outside the arena" in w.stderr()


def test_arena_size_past_the_file_is_a_protocol_error(arena_worker):
    w = arena_worker
    w.load("id", lambda s: s, pa.int64())
    w.send(TASK, {"task": 1, "fn": "id", "arena": [0, 8], "arena_size": 2 << 20})
    assert w.wait() != 0
    assert "cannot map the arena" in w.stderr()


def test_arena_without_fd_4_is_a_protocol_error(own_worker):
    own_worker.load("id", lambda s: s, pa.int64())
    own_worker.send(TASK, {"task": 1, "fn": "id", "arena": [0, 8], "arena_size": 1 << 20})
    assert own_worker.wait() != 0
    assert "cannot map the arena (fd 4" in own_worker.stderr()
