"""Large Arrow tables through the node's shared-memory directory (quiver._wire.shm) against
real nodes: round trips over the unix socket, files removed with their objects,
DoGet for TCP clients, and the fallbacks to DoPut/DoGet."""

from __future__ import annotations

import datetime
import decimal
import errno
import json
import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pytest

import quiver
from quiver._wire import shm as _shm
from nodeproc import start_node, stop_node


def shm_dir(client) -> str:
    return json.loads(client.connection.action("object_shm"))["dir"]


def located(client, ref) -> str:
    return json.loads(client.connection.action("object_locate", json.dumps({"id": ref.id}).encode()))["file"]


def eventually(cond, timeout_s: float = 10.0) -> bool:
    """The node deletes a spilled object's file just after the spill, maybe after the put it made
    room for returned."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def mixed_table(rows: int, seed: int) -> pa.Table:
    """Several column types, nulls in most of them."""
    rng = np.random.default_rng(seed)
    nulls = rng.random(rows) < 0.1
    ints = rng.integers(-(1 << 40), 1 << 40, rows)
    return pa.table({
        "i": pa.array(ints, mask=nulls),
        "f": rng.random(rows),
        "s": pa.array([None if n else f"row {i} of {seed}" for i, n in enumerate(nulls)]),
        "b": pa.array(rng.random(rows) < 0.5, mask=nulls),
        "t": pa.array(ints // 1000, pa.timestamp("us", tz="UTC")),
        "d": pa.array((ints % 30000).astype(np.int32), pa.date32()),
        "l": pa.array([None if n else list(range(i % 4)) for i, n in enumerate(nulls)], pa.list_(pa.int32())),
        "c": pa.array([["red", "green", "blue"][i % 3] for i in range(rows)]).dictionary_encode(),
        "m": pa.array([decimal.Decimal(i % 1000) / 100 for i in range(rows)], pa.decimal128(10, 2)),
    }, metadata={"origin": "test_shm"})


@pytest.fixture(scope="module")
def table() -> pa.Table:
    """About 8 MB in three chunks."""
    t = pa.concat_tables([mixed_table(40_000, s) for s in range(3)])
    assert t.nbytes > 4 << 20 and t.column("i").num_chunks == 3
    return t


def test_put_get_through_shared_memory(unix_client, table):
    d = shm_dir(unix_client)
    assert d and os.path.isdir(d)
    st = os.stat(d)
    assert st.st_mode & 0o777 == 0o700 and st.st_uid == os.geteuid()
    ref = unix_client.put(table)
    try:
        assert ref.kind == "arrow" and ref.rows == table.num_rows
        name = located(unix_client, ref)
        assert name and os.path.isfile(os.path.join(d, name))
        assert ref.nbytes == os.path.getsize(os.path.join(d, name))
        mapped = _shm.get(unix_client.connection, ref)
        assert mapped is not None, "get did not map the object's file"
        got = unix_client.get(ref)
        assert got.schema == table.schema and got.schema.metadata == table.schema.metadata
        assert got.equals(table)
        assert quiver.get(ref, client=unix_client).equals(table)
    finally:
        ref.release()
    assert not os.path.exists(os.path.join(d, name)), "the file outlived its object"
    with pytest.raises(quiver.ObjectLost):
        unix_client.get(ref)


def test_a_record_batch(unix_client):
    batch = pa.RecordBatch.from_pydict({"x": np.arange(300_000), "y": np.ones(300_000)})
    with unix_client.put(batch) as ref:
        assert located(unix_client, ref)
        assert unix_client.get(ref).equals(pa.Table.from_batches([batch]))


def test_a_small_table_goes_over_the_socket(unix_client):
    small = pa.table({"x": np.arange(1000)})
    with unix_client.put(small) as ref:
        assert located(unix_client, ref) == ""
        assert unix_client.get(ref).equals(small)


def test_a_tcp_client_reads_it_with_doget(unix_client, tcp_client, table):
    assert _shm.shm_dir(tcp_client.connection) == ""
    assert shm_dir(tcp_client) == ""  # the node tells only clients on its socket
    with unix_client.put(table) as ref:
        assert located(unix_client, ref)
        got = tcp_client.get(ref)
        assert got.schema == table.schema and got.equals(table)
    # A TCP client's own large put goes by DoPut.
    with tcp_client.put(table) as ref:
        assert located(unix_client, ref) == ""
        assert unix_client.get(ref).equals(table)


def test_no_room_in_shared_memory_falls_back(unix_client, table, monkeypatch):
    d = shm_dir(unix_client)
    before = set(os.listdir(d))
    write = _shm._write

    def half_then_enospc(path, obj):
        write(path, obj.slice(0, obj.num_rows // 2))  # a file is there when it fails
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(_shm, "_write", half_then_enospc)
    with unix_client.put(table) as ref:
        assert set(os.listdir(d)) == before, "the client left its half-written file"
        assert located(unix_client, ref) == ""  # put by DoPut
        assert unix_client.get(ref).equals(table)


def test_a_file_gone_before_get_falls_back(unix_client, table):
    d = shm_dir(unix_client)
    with unix_client.put(table) as ref:
        name = located(unix_client, ref)
        os.unlink(os.path.join(d, name))  # as if spilled between locate and open
        assert _shm.get(unix_client.connection, ref) is None
        assert unix_client.get(ref).equals(table)  # DoGet from the node's mapping


def test_quiver_shm_0_turns_it_off(node, table, monkeypatch):
    monkeypatch.setenv("QUIVER_SHM", "0")
    with quiver.connect(node.unix) as c:
        with c.put(table) as ref:
            assert located(c, ref) == ""
            assert c.get(ref).equals(table)


@pytest.fixture(scope="module")
def node_without_shm():
    n = start_node(["--shm-dir", "/dev/null/none", "--workers", "-1"])
    yield n
    stop_node(n)


def test_a_node_without_shared_memory(node_without_shm, table):
    assert "shared memory are off" in node_without_shm.log.read_text()
    with quiver.connect(node_without_shm.unix) as c:
        assert shm_dir(c) == "" and _shm.shm_dir(c.connection) == ""
        with c.put(table) as ref:
            assert c.get(ref).equals(table)


def test_adopt_refused_falls_back(node_without_shm, table):
    """A client that believes in a directory the node does not serve: the node refuses the
    adopt (UNIMPLEMENTED), the client removes its file and uses DoPut."""
    d = tempfile.mkdtemp(prefix="qshm-")
    try:
        with quiver.connect(node_without_shm.unix) as c:
            _shm._dirs[c.connection] = d
            with c.put(table) as ref:
                assert os.listdir(d) == []
                assert c.get(ref).equals(table)
    finally:
        os.rmdir(d)


def test_spilled_objects_lose_their_files():
    n = start_node(["--object-store-memory", "30000000", "--workers", "-1"])
    try:
        with quiver.connect(n.unix) as c:
            d = shm_dir(c)
            tables = [pa.table({"x": np.arange(1_500_000) + k}) for k in range(3)]  # 12 MB each
            refs = [c.put(t) for t in tables]
            status = c.status()["nodes"][0]["object_store"]
            assert status["spills_total"] >= 1
            first = refs[0]
            assert eventually(lambda: located(c, first) == "")  # spilled: its file went with its memory
            assert eventually(lambda: len(os.listdir(d)) == 3 - status["spilled_objects"])
            for ref, t in zip(refs, tables):
                assert c.get(ref).equals(t)
            assert located(c, first) == ""  # read back into the node's memory, not a file
            c.release(refs)
            assert os.listdir(d) == []
    finally:
        stop_node(n)
    assert not os.path.exists(d), "the node left its directory at stop"


def test_a_table_read_through_shared_memory_outlives_its_object(unix_client):
    t = pa.table({"x": np.arange(500_000)})
    ref = unix_client.put(t)
    got = unix_client.get(ref)
    ref.release()  # the node deletes the file; the mapping stays valid
    assert got.equals(t)


def test_timestamps_and_decimals_keep_their_types(unix_client):
    rows = 100_000
    t = pa.table({
        "ts": pa.array([datetime.datetime(2262, 4, 11, tzinfo=datetime.timezone.utc)] * rows,
                       pa.timestamp("us", tz="UTC")),
        "dec": pa.array([decimal.Decimal("1.000000000000000001")] * rows, pa.decimal128(38, 18)),
    })
    assert t.nbytes >= _shm.MIN_BYTES
    with unix_client.put(t) as ref:
        assert located(unix_client, ref)
        got = unix_client.get(ref)
        assert got.schema == t.schema and got.equals(t)
