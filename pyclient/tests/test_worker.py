"""A real `python -m quiver.worker` process, driven frame by frame as a node would
(docs/worker-protocol.md): READY, LOAD + TASK for every kind, ERROR frames, SHUTDOWN, EOF,
and the shared-memory arena on fd 4."""

from __future__ import annotations

import json
import os
import select
import socket
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

from workerproc import LOAD, TASK, SHUTDOWN, READY, PREFIX, TIMEOUT_S, WorkerProc, ipc
from workerproc import own_worker, shared, worker  # noqa: F401  (fixtures)


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
