"""The worker's shared-memory arena on fd 4 (docs/worker-protocol.md): round trips,
results too large for it, growth, pinning by user code, and bad ranges."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

# Functions defined here travel by value: the worker cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

from workerproc import TASK, started
from workerproc import own_worker  # noqa: F401  (fixtures)


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
