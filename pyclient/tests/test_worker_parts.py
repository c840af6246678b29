"""A group of tasks in one TASK frame ("parts", docs/worker-protocol.md), on a real
`python -m quiver.worker` driven frame by frame: each part is a call of its own, a part
that raises nulls only its rows and reports its error, and bad parts end the worker."""

from __future__ import annotations

import sys

import cloudpickle
import pandas as pd
import pyarrow as pa
import pytest

cloudpickle.register_pickle_by_value(sys.modules[__name__])

from workerproc import TASK, ipc
from workerproc import own_worker, shared, worker  # noqa: F401  (fixtures)


def cuts(s: pd.Series) -> pd.Series:
    """Each row: the first value of its call times 100 plus the call's length."""
    if 13 in s.values:
        raise ValueError("unlucky 13")
    return pd.Series([s.iloc[0] * 100 + len(s)] * len(s), index=s.index)


def test_each_part_is_a_call_of_its_own(worker):
    worker.load("cuts", cuts, pa.int64())
    kind, col, header = worker.task("cuts", list(range(10, 20)), extra={"parts": [2, 1, 3, 4]})
    assert kind == "result"
    assert col.to_pylist() == [1002, 1002, 1201, None, None, None, 1604, 1604, 1604, 1604]
    parts = header["parts"]
    assert [("error" in p) for p in parts] == [False, False, True, False]
    err = parts[2]["error"]
    assert err["type"] == "ValueError" and err["message"] == "unlucky 13" and err["fn"] == "cuts"
    assert "unlucky" in err["traceback"]
    assert all(p["ms"] >= 0 for p in parts) and header["rows"] == 10
    # The same function without parts: one call.
    _, col, header = worker.task("cuts", [1, 2, 3], task=2)
    assert col.to_pylist() == [103, 103, 103] and "parts" not in header


def test_arrow_and_class_functions_in_parts(worker):
    made = []

    class Plus:
        def __init__(self):
            made.append(1)
            self.n = len(made)

        def __call__(self, s):
            return s + self.n * 1000

    worker.load("plus", Plus, pa.int64(), kind="class")
    _, col, header = worker.task("plus", [1, 2, 3], extra={"parts": [1, 1, 1]})
    assert col.to_pylist() == [1001, 1002, 1003] and len(header["parts"]) == 3  # one instance
    worker.load("len", lambda a: pa.array([len(a)] * len(a), pa.int64()), pa.int64(), kind="arrow")
    _, col, _ = worker.task("len", [5, 6, 7, 8], extra={"parts": [3, 1]})
    assert col.to_pylist() == [3, 3, 3, 1]


@pytest.mark.parametrize("parts", [[2, 2], [3, 0], [-1, 4], "3", [], [1.5, 1.5], [True, 2]])
def test_bad_parts_end_the_worker(own_worker, parts):
    own_worker.load("len", lambda a: a, pa.int64(), kind="arrow")
    batch = pa.record_batch([pa.array([1, 2, 3])], names=["_0"])
    own_worker.send(TASK, {"task": 1, "fn": "len", "parts": parts}, ipc(batch))
    assert own_worker.wait() == 3
    assert "parts" in own_worker.stderr()
