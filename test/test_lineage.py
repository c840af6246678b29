"""Client.remote and lineage against real nodes: results kept on the node,
refs passed between tasks, a worker killed while making an object, and a node
restart after which objects made by tasks are made again while objects from
put are reported lost."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import cloudpickle
import pytest

import quiver
from nodeproc import start_node, stop_node

cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT_S = 60


@pytest.fixture(scope="module")
def lc():
    n = start_node(["--workers", "2"])
    with quiver.connect(n.unix) as c:
        yield c
    stop_node(n)


def table_of(n):
    return {i: i * i for i in range(n)}


def total(t, plus=0):
    return sum(t.values()) + plus


def plus(v, k):
    return v + k


def test_remote_keeps_the_result_on_the_node(lc):
    ref = lc.remote(table_of, 100)
    assert isinstance(ref, quiver.ObjectRef)
    assert ref.wait() is ref
    assert lc.get(ref) == table_of(100)
    # Another task reads it on the node; so does a ref passed by keyword.
    assert lc.submit(total, ref).result(timeout=WAIT_S) == total(table_of(100))
    assert lc.submit(total, t=ref, plus=1).result(timeout=WAIT_S) == total(table_of(100)) + 1
    # A chain: remote of remote.
    assert lc.get(lc.remote(total, ref, 5)) == total(table_of(100)) + 5
    ref.release()
    with pytest.raises(quiver.ObjectLost):
        lc.release(ref)


def test_a_failing_remote_task_raises_at_wait_and_get(lc):
    def boom():
        raise ValueError("no result")

    ref = lc.remote(boom)
    with pytest.raises(quiver.UDFError, match="no result") as e:
        ref.wait()
    assert e.value.remote_type == "ValueError"
    with pytest.raises(quiver.UDFError, match="no result"):
        lc.get(ref)


def test_a_worker_killed_while_making_an_object_costs_no_result(lc, tmp_path):
    marker = str(tmp_path / "died")

    def fragile(n):
        try:  # the first attempt dies after computing, before answering
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return table_of(n)
        os._exit(1)

    ref = lc.remote(fragile, 50)
    assert lc.get(ref) == table_of(50)
    assert os.path.exists(marker), "the worker was never killed"


def test_a_node_restart_recomputes_task_objects_and_reports_puts():
    sock_dir = tempfile.mkdtemp(prefix="qlin-")  # short: unix socket paths max ~107 bytes
    sock = os.path.join(sock_dir, "q.sock")
    args = ["--socket", sock, "--workers", "2"]  # the same socket for both lives of the node
    calls = os.path.join(sock_dir, "calls")

    def counted(n):
        with open(calls, "a") as f:  # one line per run, in any worker
            f.write("x\n")
        return table_of(n)

    first = start_node(args)
    c = quiver.connect(f"grpc+unix://{sock}")
    try:
        try:
            base = c.remote(counted, 30)
            derived = c.remote(total, base, 7)      # made from base
            summed = c.remote(total, base)
            put = c.put({"made": "by put"})
            assert c.get(derived) == total(table_of(30)) + 7
            assert c.get(summed) == total(table_of(30))
            assert c.get(put) == {"made": "by put"}
            put.wait()
        finally:
            stop_node(first)
        second = start_node(args)
        try:
            # derived's task needs base, lost too: base is made again first.
            assert c.get(derived) == total(table_of(30)) + 7
            with open(calls) as f:
                assert len(f.readlines()) == 2, "base was not made again exactly once"
            # A task given a lost task-made object gets it made again.
            assert c.submit(plus, summed, 1).result(timeout=WAIT_S) == total(table_of(30)) + 1
            # An object from put has no lineage: reported, not recomputed.
            with pytest.raises(quiver.ObjectLost, match=put.id):
                c.get(put)
        finally:
            stop_node(second)
    finally:
        c.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
