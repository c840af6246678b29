"""Worker leases (quiver._leases) against a real node: a task awaited alone goes
straight to a leased worker, tasks in flight together go through the node, and a
lease that ends or whose worker dies costs a resend through the node, never a result."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time

import cloudpickle
import pytest

import quiver
from nodeproc import start_node, stop_node
from quiver._wire.session import SessionError

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def lease_node():
    n = start_node(["--workers", "2"])
    yield n
    stop_node(n)


def node_status(c) -> dict:
    return c.status()["nodes"][0]


def test_a_task_awaited_alone_goes_to_a_leased_worker(lease_node):
    with quiver.connect(lease_node.unix) as c:
        before = node_status(c)
        assert [c.submit(pow, i, 2).result() for i in range(50)] == [i * i for i in range(50)]
        d = c._dispatcher
        assert d.leased >= 45, f"only {d.leased} of 50 lone tasks went to a leased worker"
        after = node_status(c)
        assert after["worker_leases_total"] > before["worker_leases_total"]
        with pytest.raises(quiver.UDFError) as e:
            c.submit(int, "not a number").result()
        assert e.value.remote_type == "ValueError"


def test_tasks_in_flight_together_go_through_the_node(lease_node):
    with quiver.connect(lease_node.unix) as c:
        assert list(c.map(pow, range(200), [3] * 200)) == [i ** 3 for i in range(200)]
        # Only a task sent while nothing else was in flight is leased (the first, and any
        # sent in a lull of the submissions); the rest went to the node, many a request.
        d = c._dispatcher
        assert d.leased < 20 and d.calls < 200 - d.leased, (d.leased, d.calls)


def leased_once(c, fn, *args) -> None:
    """Submit fn(*args) alone until it went to a leased worker (a lease is refused while
    no worker slot is free, for instance just after another test's work)."""
    deadline = time.monotonic() + 30
    while True:
        before = c._dispatcher.leased if c._dispatcher else 0
        c.submit(fn, *args).result()
        if c._dispatcher.leased > before:
            return
        assert time.monotonic() < deadline, "no lease granted in 30 s"
        time.sleep(0.06)  # past the client's wait after a refusal


def test_a_lease_that_ended_is_asked_for_again(lease_node):
    with quiver.connect(lease_node.unix) as c:
        leased_once(c, abs, -1)
        granted = node_status(c)["worker_leases_total"]
        time.sleep(0.2)  # past the lease's idle time: the worker went back to the node
        leased_once(c, abs, -2)
        assert node_status(c)["worker_leases_total"] > granted  # a new lease, not the ended one


def test_a_task_that_kills_its_leased_worker_runs_again(lease_node, tmp_path):
    marker = str(tmp_path / "died-once")

    def once(x):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the leased worker dies mid-task
        return x + 1

    with quiver.connect(lease_node.unix) as c:
        restarts = node_status(c)["worker_restarts"]
        leased_once(c, once, 0)  # the first run kills its worker, the second answers
        assert node_status(c)["worker_restarts"] > restarts
        os.remove(marker)
        leased_once(c, abs, -1)  # a lease held now: the next lone task goes to it
        before = c._dispatcher.leased
        assert c.submit(once, 41).result() == 42
        if c._dispatcher.leased > before:  # it went to the lease (the usual case) and died there
            assert node_status(c)["worker_restarts"] > restarts + 1


def test_the_nodes_tasks_run_while_another_client_holds_leases(lease_node):
    def slow(x):
        time.sleep(0.002)
        return x

    with quiver.connect(lease_node.unix) as a, quiver.connect(lease_node.unix) as b:
        deadline = time.monotonic() + 1.0
        with cf.ThreadPoolExecutor(1) as pool:
            fut = None
            n = 0
            while time.monotonic() < deadline:
                assert a.submit(slow, n).result() == n
                n += 1
                if fut is None:
                    fut = pool.submit(lambda: list(b.map(slow, range(100))))
            assert fut.result(timeout=60) == list(range(100))
        assert a._dispatcher.leased > 0


def test_a_lease_needs_the_lane(lease_node):
    with quiver.connect(lease_node.tcp) as c:
        assert c.submit(abs, -3).result() == 3
        name = c._dispatcher.name_for(abs)
        with pytest.raises(SessionError) as e:
            c.connection.ask({"op": "lease", "fn": name})
        assert e.value.code == "FailedPrecondition"
        assert c._dispatcher.leased == 0


def test_quiver_leases_0_sends_every_task_through_the_node(lease_node, monkeypatch):
    monkeypatch.setenv("QUIVER_LEASES", "0")
    with quiver.connect(lease_node.unix) as c:
        assert [c.submit(abs, -i).result() for i in range(20)] == list(range(20))
        assert c._dispatcher.leased == 0
