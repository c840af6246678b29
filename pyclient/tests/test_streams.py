"""Streams under load: concurrent calls, one huge batch, thousands of tiny batches,
and the rows-per-task option."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

import reference as ref


def coordinate_table(seed: int, rows: int, chunk: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    lat1, lon1 = ref.coordinates(rng, rows)
    lat2, lon2 = ref.coordinates(rng, rows)
    table = pa.table([lat1, lon1, lat2, lon2], names=["lat1", "lon1", "lat2", "lon2"])
    return pa.Table.from_batches(table.to_batches(max_chunksize=chunk))


def expected_haversine(table: pa.Table) -> np.ndarray:
    cols = [table.column(i).to_numpy(zero_copy_only=False) for i in range(4)]
    return ref.haversine_km_np(*cols)  # nulls are NaN here and stay NaN


def test_concurrent_streams(node):
    """32 threads, each its own stream with its own data, over one shared client per transport."""
    import quiver

    with quiver.connect(node.unix) as unix, quiver.connect(node.tcp) as tcp:
        def one(i: int):
            table = coordinate_table(seed=100 + i, rows=20_000 + i, chunk=4_000)
            out = (unix if i % 2 else tcp).call("haversine_km", table, timeout=30)
            return table, out

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(32)))
    for i, (table, out) in enumerate(results):
        assert len(out) == table.num_rows, f"stream {i}"
        assert out.num_chunks == len(table.to_batches())
        want = expected_haversine(table)
        got = out.to_numpy()
        null = np.isnan(want)
        assert np.array_equal(np.isnan(got), null), f"stream {i}: nulls differ"
        np.testing.assert_allclose(got[~null], want[~null], rtol=1e-9, atol=1e-6,
                                   err_msg=f"stream {i}")


def test_64mb_batch(unix_client):
    column = pa.array(np.arange(8_000_000, dtype=np.int64) * 7 - 3)
    batch = pa.record_batch([column], names=["x"])
    assert batch.nbytes >= 64_000_000
    out = unix_client.call("identity", batch, timeout=60)
    assert out.equals(column)


def test_64mb_batch_tcp(tcp_client):
    values = np.random.default_rng(7).random(8_000_000)
    column = pa.array(values, mask=np.arange(8_000_000) % 1000 == 0)
    out = tcp_client.call("identity", pa.record_batch([column], names=["x"]), timeout=60)
    assert out.equals(column)


def test_many_one_row_batches(client):
    strings = [f"row {i} 🙂" for i in range(2_000)]
    batches = [pa.record_batch([pa.array([s])], names=["x"]) for s in strings]
    out = client.call("sha256_hex", pa.Table.from_batches(batches), timeout=60)
    assert out.num_chunks == 2_000
    assert all(len(c) == 1 for c in out.chunks)
    assert out.to_pylist() == [ref.sha256_hex(s) for s in strings]


@pytest.mark.parametrize("name", ["levenshtein", "jaro_winkler"])
def test_rows_per_task(unix_client, name):
    rng = np.random.default_rng(8)
    a, b = ref.strings(rng, 3_000), ref.strings(rng, 3_000)
    table = pa.Table.from_batches(pa.table([a, b], names=["a", "b"]).to_batches(max_chunksize=1_500))
    reference_fn = getattr(ref, name)
    want = ref.apply(reference_fn, a, b)
    results = {}
    for rows_per_task in (1, 7, 1000):
        out = unix_client.call(name, table, rows_per_task=rows_per_task, timeout=60)
        results[rows_per_task] = out.to_pylist()
    assert results[1] == results[7] == results[1000]
    if name == "levenshtein":
        assert results[1] == want
    else:
        np.testing.assert_allclose(np.array(results[1], dtype=float),
                                   np.array(want, dtype=float), rtol=1e-12, equal_nan=True)
