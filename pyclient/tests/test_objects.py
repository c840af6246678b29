"""Client.put / get / release and quiver.get against a real node: Arrow tables and
pickled objects round trip, lost objects raise ObjectLost, a 1 GB table, and
quiver.get inside a UDF."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

import quiver
from quiver import objects
from nodeproc import start_node, stop_node

# The workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_put_get_table(client):
    table = pa.table({"a": [1, 2, None], "s": ["x", None, "z"],
                      "l": pa.array([[1], [], None], pa.list_(pa.int32()))})
    ref = client.put(table)
    try:
        assert isinstance(ref, quiver.ObjectRef) and ref.kind == "arrow"
        assert objects.owned(ref.id) and len(ref.id) == 16 + 1 + 32 and ref.rows == 3 and ref.nbytes > 0
        got = client.get(ref)
        assert isinstance(got, pa.Table) and got.equals(table)
        assert client.get(ref).equals(table)  # reading does not consume it
    finally:
        ref.release()


def test_put_record_batch_and_empty_table(client):
    batch = pa.RecordBatch.from_pydict({"x": [1.5, 2.5]})
    empty = pa.table({"x": pa.array([], pa.int64())})
    refs = [client.put(batch), client.put(empty)]
    try:
        got = client.get(refs)  # a list of refs gives a list
        assert got[0].equals(pa.Table.from_batches([batch]))
        assert got[1].num_rows == 0 and got[1].schema == empty.schema
    finally:
        client.release(refs)


def test_put_get_pickled_objects(client):
    value = {"model": Point(1, 2), "weights": np.arange(10.0), "f": lambda v: v + 1}
    ref = client.put(value)
    try:
        assert ref.kind == "pickle"
        got = client.get(ref)
        assert got["model"] == Point(1, 2)
        assert np.array_equal(got["weights"], np.arange(10.0))
        assert got["f"](1) == 2
        with client.put(None) as none:
            assert client.get(none) is None
    finally:
        ref.release()


def test_a_pickle_in_pieces(client, monkeypatch):
    monkeypatch.setattr(objects, "BLOB_PIECE_BYTES", 1000)
    monkeypatch.setattr(objects, "SESSION_PUT_BYTES", 0)  # DoPut, not the session
    value = bytes(range(256)) * 40  # ~10 kB: eleven pieces
    ref = client.put(value)
    try:
        assert ref.rows > 1
        assert client.get(ref) == value
    finally:
        ref.release()


def test_large_batches_go_as_slices(client, monkeypatch):
    monkeypatch.setattr(objects, "MAX_PUT_BATCH_BYTES", 8000)
    table = pa.table({"x": np.arange(10_000)})  # one batch of 80 kB
    ref = client.put(table)
    try:
        got = client.get(ref)
        assert got.equals(table) and got.column("x").num_chunks >= 10
    finally:
        ref.release()


def test_objectref_pickles_and_compares(client):
    ref = client.put([1, 2, 3])
    try:
        copy = pickle.loads(pickle.dumps(ref))
        assert copy == ref and hash(copy) == hash(ref)
        assert (copy.id, copy.kind, copy.address) == (ref.id, ref.kind, client.address)
        assert client.get(copy) == [1, 2, 3]
        assert "ObjectRef(" in repr(ref)
    finally:
        ref.release()


def test_release_then_get_is_object_lost(client):
    ref = client.put({"gone": True})
    ref.release()
    with pytest.raises(quiver.ObjectLost) as e:
        client.get(ref)
    assert ref.id in str(e.value) and e.value.object_id == ref.id
    assert isinstance(e.value, quiver.QuiverError)
    with pytest.raises(quiver.ObjectLost):
        ref.release()  # a second release


def test_unknown_id_is_object_lost(client):
    ref = quiver.ObjectRef(uuid.uuid4().hex, "arrow", client.address)
    with pytest.raises(quiver.ObjectLost, match=ref.id):
        client.get(ref)


def test_with_releases(client):
    with client.put(pa.table({"x": [1]})) as ref:
        assert client.get(ref).num_rows == 1
    with pytest.raises(quiver.ObjectLost):
        client.get(ref)


def test_get_rejects_what_is_not_a_ref(client):
    with pytest.raises(TypeError, match="ObjectRef"):
        client.get("0123")


def test_module_get_caches_by_id(client):
    ref = client.put({"big": list(range(100))})
    first = quiver.get(ref)
    assert first == {"big": list(range(100))}
    assert quiver.get(ref) is first  # from this process's cache
    ref.release()
    with pytest.raises(quiver.ObjectLost):
        client.get(ref)              # the client always asks the node
    objects.clear_cache()
    with pytest.raises(quiver.ObjectLost):
        quiver.get(ref)


def test_quiver_get_inside_a_pandas_free_udf(client):
    """A lookup table put once by the driver, read by a UDF on the node's workers."""
    import pyarrow.compute as pc

    prices = client.put(pa.table({"sku": ["a", "b", "c"], "price": [1.5, 2.0, 4.25]}))
    rates = client.put({"tax": 0.5})
    try:
        def priced(sku: pa.Array) -> pa.Array:
            table = quiver.get(prices)   # read once per worker process, then cached
            tax = quiver.get(rates)["tax"]
            idx = pc.index_in(sku, value_set=table.column("sku"))
            return pc.multiply(pc.take(table.column("price"), idx), 1 + tax).combine_chunks()

        name = client.register(priced, name=f"priced_{uuid.uuid4().hex[:8]}", returns="double",
                               kind="arrow")
        data = pa.RecordBatch.from_pydict({"sku": ["c", "a", "x", "b"] * 50})
        out = client.call(name, data, rows_per_task=20)
        assert out.to_pylist() == [6.375, 2.25, None, 3.0] * 50
    finally:
        client.release([prices, rates])


def test_one_gigabyte_table_round_trips(unix_client):
    n = 1 << 25  # 32 Mi rows x 4 float64/int64 columns = 1 GiB
    base = np.arange(n, dtype=np.int64)
    table = pa.table({"a": base, "b": base * 2, "c": base.astype(np.float64) / 3, "d": -base})
    assert table.nbytes == 1 << 30
    start = time.perf_counter()
    ref = unix_client.put(table)
    put_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        got = unix_client.get(ref)
        get_s = time.perf_counter() - start
        assert ref.rows == n
        assert got.equals(table)
        print(f"\n1 GiB table: put {put_s:.2f} s ({1 / put_s:.2f} GiB/s), "
              f"get {get_s:.2f} s ({1 / get_s:.2f} GiB/s)")
    finally:
        ref.release()


@pytest.fixture(scope="module")
def small_store_node():
    n = start_node(["--object-store-memory", "10000000", "--workers", "-1"])
    yield n
    stop_node(n)


def test_an_object_larger_than_the_store_is_over_capacity(small_store_node):
    with quiver.connect(small_store_node.unix) as c:
        with pytest.raises(quiver.OverCapacity):
            c.put(pa.table({"x": np.zeros(4_000_000)}))  # 32 MB into 10 MB
        ref = c.put(pa.table({"x": np.zeros(1000)}))     # the node is fine afterwards
        assert c.get(ref).num_rows == 1000
        ref.release()


def test_a_put_sent_without_waiting_reports_its_failure_on_use():
    """A small pickle's put does not wait for the node: its refusal surfaces at the ref's next use."""
    n = start_node(["--object-store-memory", "1000000", "--workers", "1"])
    try:
        with quiver.connect(n.unix) as c:
            ref = c.put(b"x" * 2_000_000)  # 2 MB pickle into a 1 MB store: refused, later
            with pytest.raises(quiver.OverCapacity, match=ref.id):
                ref.wait()
            with pytest.raises(quiver.OverCapacity):
                c.get(ref)
            with pytest.raises(quiver.OverCapacity):
                c.submit(len, ref)  # pickling the ref for the task waits for its put
            ok = c.put(b"fits")
            assert c.get(ok) == b"fits"
            c.release(ok)
    finally:
        stop_node(n)


def test_an_object_lost_with_its_node():
    """Objects do not survive their node: unreachable while it is down, lost once it is back."""
    sock_dir = tempfile.mkdtemp(prefix="qlost-")  # short: unix socket paths max ~107 bytes
    sock = os.path.join(sock_dir, "q.sock")
    args = ["--socket", sock, "--workers", "-1"]  # the same socket for both lives of the node
    first = start_node(args)
    c = quiver.connect(f"grpc+unix://{sock}")
    try:
        try:
            ref = c.put({"x": 1})
            assert c.get(ref) == {"x": 1}
        finally:
            stop_node(first)
        with pytest.raises(quiver.Unavailable):
            c.get(ref)
        second = start_node(args)
        # A fresh connection: the old one may still be backing off from the outage.
        try:
            with quiver.connect(ref.address) as again:
                with pytest.raises(quiver.ObjectLost, match=ref.id):
                    again.get(ref)
        finally:
            stop_node(second)
    finally:
        c.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
