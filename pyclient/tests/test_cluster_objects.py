"""Objects across nodes, with real processes: node A (the driver's) and node B
joined by gossip. A task spilled from A to B reads an object put on A through
quiver.get: B pulls it once, whatever the tasks and workers; a get on B after
A released it, or after A was killed, raises ObjectLost and never hangs."""

from __future__ import annotations

import shutil
import signal
import sys
import time
import uuid

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

import quiver
from nodeproc import start_node, stop_node

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOIN_TIMEOUT_S = 20
LOST_TIMEOUT_S = 20


def _alive_peers(client) -> int:
    return sum(p["state"] == "alive" for p in client.status()["peers"])


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s", pytrace=False)
        time.sleep(0.05)


def _store(client) -> dict:
    return client.status()["nodes"][0]["object_store"]


@pytest.fixture
def pair():
    a = start_node(["--workers", "1", "--gossip", "127.0.0.1:0"])
    b = start_node(["--workers", "2", "--gossip", "127.0.0.1:0", "--join", a.gossip])
    ca, cb = quiver.connect(a.unix), quiver.connect(b.tcp)
    try:
        _wait(lambda: _alive_peers(ca) == 1 and _alive_peers(cb) == 1, JOIN_TIMEOUT_S, "the two nodes see each other")
        yield a, b, ca, cb
    finally:
        ca.close()
        cb.close()
        stop_node(b)
        if a.proc.poll() is None:
            stop_node(a)
        else:  # killed by the test
            a.proc.stdout.close()
            shutil.rmtree(a.run_dir, ignore_errors=True)


def test_spilled_tasks_read_an_object_pulled_once(pair):
    a, b, ca, cb = pair
    n = 1 << 21  # 2 Mi rows, 16 MiB: through A's shared memory, pulled in chunks
    table = pa.table({"v": np.arange(n, dtype=np.int64), "w": np.arange(n, dtype=np.float64)})
    total = int(np.arange(n, dtype=np.int64).sum())
    ref = ca.put(table)
    scale = ca.put({"scale": 3})  # a pickle, put on A's session under an id it names
    assert ref.id.split(".")[0] == scale.id.split(".")[0] == ca.connection.owner() != ""

    def derived(x: pa.Array) -> pa.Array:
        import time as _time

        import pyarrow.compute as pc
        t = quiver.get(ref)
        k = quiver.get(scale)["scale"]
        _time.sleep(0.02 * len(x))  # slow enough that A's one worker leaves tasks to B
        s = pc.sum(t.column("v")).as_py() + t.num_rows
        return pc.add(pc.multiply(x, k), s)

    name = ca.register(derived, name=f"derived_{uuid.uuid4().hex[:8]}", returns="int64", kind="arrow")
    data = pa.RecordBatch.from_pydict({"x": pa.array(range(120), pa.int64())})
    for _ in range(2):
        out = ca.call(name, data, rows_per_task=2)
        assert out.to_pylist() == [x * 3 + total + n for x in range(120)]
    nodes_b = cb.status()["nodes"][0]
    assert nodes_b["tasks_spilled_in"] > 0, "no task ran on B"
    st = _store(cb)
    assert (st["pulls_total"], st["objects"]) == (2, 2), st  # one copy each, however many tasks
    assert st["pulled_bytes_total"] >= table.nbytes

    # Read on B by a client there: the copy, checked with its owner.
    assert cb.get(ref).equals(table)
    assert cb.get(scale) == {"scale": 3}
    assert _store(cb)["pulls_total"] == 2
    # Released on A: no node serves it any more.
    ref.release()
    with pytest.raises(quiver.ObjectLost):
        cb.get(ref)
    assert _store(cb)["objects"] == 1
    scale.release()


def test_owner_killed_objects_are_lost(pair):
    a, b, ca, cb = pair
    ref = ca.put(pa.table({"v": list(range(1000))}))
    never_read = ca.put(pa.table({"v": [1, 2, 3]}))
    assert cb.get(ref).column("v").to_pylist() == list(range(1000))
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    start = time.monotonic()
    for r in (ref, never_read):
        with pytest.raises(quiver.ObjectLost):
            cb.get(r)
    assert time.monotonic() - start < LOST_TIMEOUT_S
    # Once A is declared dead, B answers without trying to reach it.
    _wait(lambda: _alive_peers(cb) == 0, LOST_TIMEOUT_S, "A declared dead")
    with pytest.raises(quiver.ObjectLost, match="owner"):
        cb.get(ref)


def test_a_node_of_another_cluster_reads_through_the_refs_node():
    """Two nodes that are not one cluster: quiver.get through the second reads an object
    the first holds from the node its ref names; once that node is gone, ObjectLost."""
    a = start_node(["--workers", "0"])
    b = start_node(["--workers", "0"])
    ca, cb = quiver.connect(a.tcp), quiver.connect(b.tcp)
    try:
        table = pa.table({"v": pa.array(range(1000), pa.int64())})
        ref, later = ca.put(table), ca.put({"small": 1})
        assert quiver.get(ref, client=cb).equals(table)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        with pytest.raises(quiver.ObjectLost):
            quiver.get(later, client=cb)
    finally:
        ca.close()
        cb.close()
        stop_node(b)
        a.proc.stdout.close()
        shutil.rmtree(a.run_dir, ignore_errors=True)
