"""Client.submit / map / wait against a real node with two Python workers: results,
ordering, per-task errors with remote tracebacks, ObjectRef arguments, nested
tasks, a worker killed mid-map, a task that kills every worker, throughput."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time

import cloudpickle
import pyarrow as pa
import pytest

import quiver
from nodeproc import start_node, stop_node

# The workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT_S = 60  # how long a test waits for a file another task writes before failing


@pytest.fixture(scope="module")
def task_node():
    """A node of its own with the default pool this design assumes: two workers."""
    n = start_node(["--workers", "2"])
    yield n
    stop_node(n)


@pytest.fixture(scope="module", params=["lane", "flight"])
def tc(task_node, request):
    """A client over each transport: the node's same-host lane (its unix socket),
    and a Flight session (TCP, as from another host)."""
    with quiver.connect(task_node.unix if request.param == "lane" else task_node.tcp) as c:
        want = "LaneWire" if request.param == "lane" else "FlightWire"
        assert type(c.connection.session()._wire).__name__ == want
        yield c


def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def test_submit_returns_a_future_with_the_result(tc):
    fut = tc.submit(add, 1, 2, c=3)
    assert isinstance(fut, cf.Future)
    assert fut.result(timeout=WAIT_S) == 6
    assert tc.submit(square, 12).result(timeout=WAIT_S) == 144


def test_submit_pickles_closures_lambdas_and_rich_values(tc):
    offset = {"k": 10}
    assert tc.submit(lambda x: x + offset["k"], 5).result(timeout=WAIT_S) == 15
    value = {"a": [1, 2, (3, "x")], "b": b"\x00\xff", "c": None}
    assert tc.submit(lambda v: v, value).result(timeout=WAIT_S) == value
    table = pa.table({"x": [1, 2, 3]})
    out = tc.submit(lambda t: t.append_column("y", pa.array([4, 5, 6])), table).result(timeout=WAIT_S)
    assert out.column("y").to_pylist() == [4, 5, 6]


def test_map_keeps_input_order(tc):
    assert list(tc.map(square, range(100))) == [i * i for i in range(100)]
    assert list(tc.map(square, [])) == []


def test_map_over_several_iterables_like_the_builtin(tc):
    import itertools
    ref = tc.put({"c": 100})
    try:
        out = list(tc.map(lambda a, b, d: a + b + d["c"], [1, 2, 3], [10, 20, 30, 40], itertools.repeat(ref)))
        assert out == [111, 122, 133]  # the shortest iterable ends it; the ref is resolved
    finally:
        ref.release()


def test_map_ordered_even_when_later_tasks_finish_first(tc, tmp_path):
    marker = str(tmp_path / "last-done")

    def step(i):
        if i == 0:  # the first task finishes only after the last one did
            wait_for_file(marker)
        if i == 5:
            with open(marker, "w"):
                pass
        return i, time.time()

    out = list(tc.map(step, range(6)))
    assert [i for i, _ in out] == list(range(6))
    assert out[0][1] >= out[5][1]  # it did finish later


def test_map_unordered_yields_every_result(tc, tmp_path):
    marker = str(tmp_path / "last-done")

    def step(i):
        if i == 0:
            wait_for_file(marker)
        if i == 5:
            with open(marker, "w"):
                pass
        return i

    out = list(tc.map(step, range(6), ordered=False))
    assert sorted(out) == list(range(6))


def test_wait_is_concurrent_futures_wait(tc):
    futs = [tc.submit(square, i) for i in range(10)]
    done, not_done = tc.wait(futs, timeout=WAIT_S)
    assert len(done) == 10 and not not_done
    assert sorted(f.result() for f in done) == [i * i for i in range(10)]
    done, not_done = tc.wait([tc.submit(time.sleep, 0.2)], timeout=0.01)
    assert len(not_done) == 1  # still running: the timeout, not the task, ended the wait
    tc.wait(not_done)


def test_an_exception_fails_only_its_own_future(tc):
    def fragile(i):
        if i == 13:
            raise ValueError(f"unlucky {i}")
        return -i

    futs = [tc.submit(fragile, i) for i in range(40)]
    tc.wait(futs, timeout=WAIT_S)
    for i, f in enumerate(futs):
        if i != 13:
            assert f.result() == -i
    with pytest.raises(quiver.UDFError) as e:
        futs[13].result()
    err = e.value
    assert err.remote_type == "ValueError"
    assert err.remote_message == "unlucky 13"
    assert "Traceback (most recent call last)" in err.remote_traceback
    assert "in fragile" in err.remote_traceback  # the user's frame, from the worker
    assert "fragile(13)" in str(err) and "unlucky 13" in str(err)


def test_map_raises_at_the_failing_item(tc):
    def inverse(x):
        return 1 / x

    it = tc.map(inverse, [1, 2, 0, 4])
    assert next(it) == 1.0
    assert next(it) == 0.5
    with pytest.raises(quiver.UDFError, match="ZeroDivisionError"):
        next(it)


def test_system_exit_in_a_task_is_that_tasks_error(tc):
    with pytest.raises(quiver.UDFError, match="SystemExit"):
        tc.submit(sys.exit, 3).result(timeout=WAIT_S)
    assert tc.submit(square, 3).result(timeout=WAIT_S) == 9  # the worker lives on


def test_unpicklable_result_is_reported(tc):
    import threading
    with pytest.raises(quiver.UDFError, match="cannot pickle the result"):
        tc.submit(lambda: threading.Lock()).result(timeout=WAIT_S)


def test_objectref_arguments_are_resolved_in_the_worker(tc):
    table = pa.table({"k": ["a", "b", "c"], "v": [1, 2, 3]})
    t_ref = tc.put(table)
    d_ref = tc.put({"scale": 10})
    try:
        def lookup(t, key, *, params, nested):
            row = t.column("k").to_pylist().index(key)
            # a ref that is not a top-level argument arrives as a ref: quiver.get reads it
            inner = quiver.get(nested[0])
            return type(t).__name__, t.column("v")[row].as_py() * params["scale"], inner["scale"]

        got = tc.submit(lookup, t_ref, "b", params=d_ref, nested=[d_ref]).result(timeout=WAIT_S)
        assert got == ("Table", 20, 10)
        assert list(tc.map(lambda t: t.num_rows, [t_ref, t_ref])) == [3, 3]  # map's items too
    finally:
        t_ref.release()
        d_ref.release()


def test_a_lost_objectref_argument_fails_the_task(tc):
    ref = tc.put([1, 2, 3])
    ref.release()
    with pytest.raises(quiver.UDFError, match="ObjectLost") as e:
        tc.submit(len, ref).result(timeout=WAIT_S)
    assert ref.id in str(e.value)


def test_nested_tasks(tc):
    def child(i):
        return i * i

    def parent(n, ref_holder):
        # A task's own client reaches its node through $QUIVER_ADDRESS.
        with quiver.connect() as c:
            squares = list(c.map(child, range(n)))
            one = c.submit(child, 7).result()
            base = c.get(ref_holder[0])
            mine = c.put({"base": base + 1})
            seen = c.submit(lambda d: d["base"], mine).result()  # resolved: a dict
            c.release(mine)
        return sum(squares), one, seen, os.environ.get("QUIVER_WORKER_ID") is not None

    ref = tc.put(100)
    try:
        # Two workers, one parent blocking: the children run on the other worker.
        assert tc.submit(parent, 20, [ref]).result(timeout=WAIT_S) == (
            sum(i * i for i in range(20)), 49, 101, True)
    finally:
        ref.release()


def test_ten_thousand_tiny_tasks(tc):
    n = 10_000
    tc.submit(square, 0).result(timeout=WAIT_S)  # registered, workers warm
    start = time.perf_counter()
    futs = [tc.submit(square, i) for i in range(n)]
    done, not_done = tc.wait(futs, timeout=120)
    elapsed = time.perf_counter() - start
    assert not not_done
    assert [f.result() for f in futs] == [i * i for i in range(n)]
    print(f"\n{n} tiny tasks (submit + gather): {elapsed:.2f} s, {n / elapsed:,.0f} tasks/s "
          f"({os.cpu_count()} cores)")
    start = time.perf_counter()
    assert list(tc.map(square, range(n))) == [i * i for i in range(n)]
    elapsed = time.perf_counter() - start
    print(f"{n} tiny tasks (map): {elapsed:.2f} s, {n / elapsed:,.0f} tasks/s")


def test_submissions_are_batched_into_few_calls(task_node):
    with quiver.connect(task_node.unix) as c:
        c.submit(square, 0).result(timeout=WAIT_S)
        before = c._dispatcher.calls
        futs = [c.submit(square, i) for i in range(1000)]
        c.wait(futs, timeout=WAIT_S)
        calls = c._dispatcher.calls - before
        assert [f.result() for f in futs] == [i * i for i in range(1000)]
        assert calls < 500, f"1000 submissions made {calls} calls"


def test_a_killed_worker_costs_time_not_results(tc, tmp_path):
    marker = str(tmp_path / "killed-once")

    def fragile(i):
        if i == 7:
            try:  # the first attempt anywhere creates the marker and dies
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return i * 3

    before = list(tc.map(fragile, range(50)))
    assert os.path.exists(marker), "the worker was never killed"
    assert before == [i * 3 for i in range(50)]
    assert list(tc.map(fragile, range(50))) == before  # and again, with no deaths: identical


def test_a_task_that_kills_every_worker_fails_only_its_future(tc):
    def deadly(i):
        if i == 2:
            os._exit(7)
        return i

    futs = [tc.submit(deadly, i) for i in range(5)]
    tc.wait(futs, timeout=120)
    assert [f.result() for i, f in enumerate(futs) if i != 2] == [0, 1, 3, 4]
    with pytest.raises(quiver.UDFError) as e:
        futs[2].result()
    assert "deadly(2)" in str(e.value)
    assert tc.submit(square, 5).result(timeout=WAIT_S) == 25  # the pool recovered


def test_cancel_before_start_and_close_fails_queued_tasks(task_node):
    c = quiver.connect(task_node.unix)
    futs = [c.submit(time.sleep, 0.05) for _ in range(50)]
    cancelled = [f for f in futs[40:] if f.cancel()]
    c.wait(futs, timeout=WAIT_S)
    assert all(f.cancelled() for f in cancelled)
    assert all(f.result() is None for f in futs if not f.cancelled())
    c.close()
    with pytest.raises(quiver.QuiverError):
        c.submit(square, 1)


def test_submit_rejects_what_it_cannot_send(tc):
    with pytest.raises(TypeError):
        tc.submit(42)
    import threading
    with pytest.raises(TypeError, match="cannot pickle"):
        tc.submit(square, threading.Lock())


def test_options_retries(tc, tmp_path):
    """retries=0: a task whose worker dies fails at once; the default retries it."""
    marker = str(tmp_path / "died")

    def dies_once():
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return "second run"
        os._exit(1)

    with pytest.raises(quiver.UDFError, match="dies_once"):
        tc.options(retries=0).submit(dies_once).result(timeout=WAIT_S)
    assert os.path.exists(marker)
    os.remove(marker)
    assert tc.submit(dies_once).result(timeout=WAIT_S) == "second run"
    assert list(tc.options(retries=2).map(square, range(5))) == [0, 1, 4, 9, 16]
    assert tc.get(tc.options(retries=1).remote(square, 7)) == 49
    with pytest.raises(ValueError):
        tc.options(retries=-1)
