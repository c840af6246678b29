"""concurrency=N on a real node and real workers: functions that wait run N rows
(or tasks) at once per worker, results in order, errors per row, and a worker
killed with N rows in flight costs a retry of those rows only."""

from __future__ import annotations

import os
import sys
import uuid
import warnings

import cloudpickle
import pyarrow as pa
import pytest

import quiver

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module

WAIT_S = 60


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def probe(x):
    """Sleep a little, and say how many calls were in flight in this worker at once."""
    import threading
    import time
    st = sys.__dict__.setdefault("_quiver_probe", {"lock": threading.Lock(), "now": 0, "peak": 0})
    with st["lock"]:
        st["now"] += 1
        st["peak"] = max(st["peak"], st["now"])
    time.sleep(0.05)
    with st["lock"]:
        st["now"] -= 1
    return x * x, os.getpid(), st["peak"]


def test_tasks_run_n_at_once_in_order(unix_client):
    out = list(unix_client.options(concurrency=8).map(probe, range(64)))
    assert [r[0] for r in out] == [x * x for x in range(64)]
    peaks = {r[1]: r[2] for r in out}
    assert 2 <= max(peaks.values()) <= 8, peaks


def test_one_failing_task_leaves_the_others(unix_client):
    def picky(x):
        import time
        time.sleep(0.01)
        if x % 7 == 3:
            raise ValueError(f"no {x}")
        return x + 1

    futs = [unix_client.options(concurrency=4).submit(picky, x) for x in range(30)]
    for x, f in enumerate(futs):
        if x % 7 == 3:
            with pytest.raises(quiver.UDFError, match=f"no {x}"):
                f.result(timeout=WAIT_S)
        else:
            assert f.result(timeout=WAIT_S) == x + 1


def test_async_tasks(unix_client):
    async def fetch(x):
        import asyncio
        await asyncio.sleep(0.02)
        if x == 5:
            raise LookupError("five")
        return -x

    futs = [unix_client.options(concurrency=16).submit(fetch, x) for x in range(40)]
    assert [f.result(timeout=WAIT_S) for i, f in enumerate(futs) if i != 5] == [-x for x in range(40) if x != 5]
    with pytest.raises(quiver.UDFError, match="five"):
        futs[5].result(timeout=WAIT_S)


def batch(values) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(values, pa.int64())], names=["a"])


def test_series_function_slices_in_order(unix_client):
    def slow_plus(s):
        import time
        time.sleep(0.01)
        return s + 1000

    name = unix_client.register(slow_plus, name=unique("slow_plus"), returns="bigint", concurrency=4)
    out = unix_client.call(name, batch(list(range(100))))
    assert out.to_pylist() == [x + 1000 for x in range(100)]


def test_async_series_function(unix_client):
    async def later(s):
        import asyncio
        await asyncio.sleep(0.01)
        return s * 3

    name = unix_client.register(later, name=unique("later"), returns="bigint", concurrency=4)
    assert unix_client.call(name, batch(list(range(20)))).to_pylist() == [x * 3 for x in range(20)]


def test_on_error_null_nulls_only_failing_rows(unix_client):
    def picky(s):
        if (s == 13).any():
            raise ValueError("unlucky")
        return s * 10

    name = unix_client.register(picky, name=unique("cpicky"), returns="bigint", concurrency=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, info = unix_client.call(name, batch(list(range(40))), on_error="null", retries=0, info=True)
    assert out.to_pylist() == [None if x == 13 else x * 10 for x in range(40)]
    assert any("unlucky" in str(w.message) for w in caught)
    assert info["nulled"] == 1, info


def test_killed_worker_retries_its_rows_only(unix_client, tmp_path):
    marker, runs = str(tmp_path / "killed"), str(tmp_path / "runs")

    def fragile(x):
        import signal
        import time
        fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{x}\n".encode())
        os.close(fd)
        if x == 21:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                time.sleep(0.2)  # the other rows of the task are in flight
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return x * 2

    n = 4
    before = unix_client.status()["nodes"][0]
    out = list(unix_client.options(concurrency=n, retries=3).map(fragile, range(48)))
    after = unix_client.status()["nodes"][0]
    assert os.path.exists(marker), "no worker was killed"
    assert out == [x * 2 for x in range(48)]
    assert after["task_retries_total"] - before["task_retries_total"] == 1
    assert after["worker_restarts"] - before["worker_restarts"] == 1
    counts: dict[int, int] = {}
    for line in open(runs).read().split():
        counts[int(line)] = counts.get(int(line), 0) + 1
    again = sorted(x for x, c in counts.items() if c > 1)
    assert set(counts) == set(range(48))
    assert 21 in again and len(again) <= n and max(counts.values()) == 2, again


def test_concurrency_is_checked():
    with pytest.raises(ValueError, match="concurrency must be an integer from 1 to 1024"):
        quiver.accelerate(concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        quiver.Client.options(None, concurrency="8")
