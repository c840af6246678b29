"""Every built-in against its Python reference, on generated data with nulls, Unicode and
empty strings, over the unix socket and TCP, as one batch and as a multi-batch table."""

from __future__ import annotations

import datetime
import decimal
import math

import numpy as np
import pyarrow as pa
import pytest

import reference as ref

N = 2_000


def call_both_ways(client, name: str, batch: pa.RecordBatch) -> list:
    """Call as one RecordBatch and as a Table of several batches; both must agree."""
    single = client.call(name, batch, timeout=30)
    assert len(single) == batch.num_rows
    table = pa.Table.from_batches([batch]).to_batches(max_chunksize=333)
    chunked = client.call(name, pa.Table.from_batches(table, schema=batch.schema), timeout=30)
    assert chunked.num_chunks == len(table)
    assert chunked.type == single.type
    assert chunked.to_pylist() == single.to_pylist()
    return single


def assert_close(got: list, want: list, rel: float, abs_: float) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, f"row {i}: want null, got {g!r}"
        else:
            assert g is not None and math.isclose(g, w, rel_tol=rel, abs_tol=abs_), \
                f"row {i}: want {w!r}, got {g!r}"


def test_haversine_km(client):
    rng = np.random.default_rng(1)
    lat1, lon1 = ref.coordinates(rng, N)
    lat2, lon2 = ref.coordinates(rng, N)
    batch = pa.record_batch([lat1, lon1, lat2, lon2], names=["lat1", "lon1", "lat2", "lon2"])
    out = call_both_ways(client, "haversine_km", batch)
    assert out.type == pa.float64()
    assert_close(out.to_pylist(), ref.apply(ref.haversine_km, lat1, lon1, lat2, lon2),
                 rel=1e-9, abs_=1e-6)


def test_haversine_km_known_distances(client):
    # Paris-London ~343.5 km; a quarter of the equator; the same point; antipodes.
    rows = [(48.8566, 2.3522, 51.5074, -0.1278), (0.0, 0.0, 0.0, 90.0),
            (12.5, 45.0, 12.5, 45.0), (0.0, 0.0, 0.0, 180.0)]
    cols = [pa.array(c, pa.float64()) for c in zip(*rows)]
    out = client.call("haversine_km", pa.record_batch(cols, names=["a", "b", "c", "d"])).to_pylist()
    assert out[0] == pytest.approx(343.556, abs=0.01)
    assert out[1] == pytest.approx(math.pi / 2 * 6371.0, rel=1e-12)
    assert out[2] == 0.0
    assert out[3] == pytest.approx(math.pi * 6371.0, rel=1e-9)


@pytest.mark.parametrize("kind", [pa.string(), pa.binary()])
def test_sha256_hex(client, kind):
    rng = np.random.default_rng(2)
    values = ref.strings(rng, N)
    if kind == pa.binary():
        values = pa.array([None if v is None else v.encode() + bytes([i % 256])
                           for i, v in enumerate(values.to_pylist())], pa.binary())
    out = call_both_ways(client, "sha256_hex", pa.record_batch([values], names=["x"]))
    assert out.type == pa.string()
    assert out.to_pylist() == ref.apply(ref.sha256_hex, values)


def test_sha256_hex_empty_string(client):
    out = client.call("sha256_hex", pa.record_batch([pa.array(["", "abc"])], names=["x"]))
    assert out.to_pylist() == [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ]


def test_levenshtein(client):
    rng = np.random.default_rng(3)
    a, b = ref.strings(rng, N), ref.strings(rng, N)
    out = call_both_ways(client, "levenshtein", pa.record_batch([a, b], names=["a", "b"]))
    assert out.type == pa.int32()
    assert out.to_pylist() == ref.apply(ref.levenshtein, a, b)


def test_levenshtein_counts_code_points(client):
    a = pa.array(["kitten", "日本語", "🙂", "café", "", None])
    b = pa.array(["sitting", "日本", "🙃", "cafe\u0301", "🙂🙂", "x"])
    out = client.call("levenshtein", pa.record_batch([a, b], names=["a", "b"]))
    assert out.to_pylist() == [3, 1, 1, 2, 2, None]


def test_jaro_winkler(client):
    rng = np.random.default_rng(4)
    a, b = ref.strings(rng, N), ref.strings(rng, N)
    out = call_both_ways(client, "jaro_winkler", pa.record_batch([a, b], names=["a", "b"]))
    assert out.type == pa.float64()
    assert_close(out.to_pylist(), ref.apply(ref.jaro_winkler, a, b), rel=1e-12, abs_=1e-12)


def test_jaro_winkler_textbook_values(client):
    # abcdef/bcaxyz: 3 matches, all 3 out of order, so t = 1.5 (not 1) and jaro = 0.5.
    a = pa.array(["MARTHA", "DWAYNE", "DIXON", "", "", "abc", "日本語", "abcdef", None])
    b = pa.array(["MARHTA", "DUANE", "DICKSONX", "", "abc", "", "日本語", "bcaxyz", "x"])
    out = client.call("jaro_winkler", pa.record_batch([a, b], names=["a", "b"])).to_pylist()
    want = [0.9611111111111111, 0.84, 0.8133333333333332, 1.0, 0.0, 0.0, 1.0, 0.5, None]
    assert_close(out, want, rel=1e-12, abs_=1e-12)


def test_geohash_encode(client):
    rng = np.random.default_rng(5)
    lat, lon = ref.coordinates(rng, N)
    precision = pa.array(rng.integers(1, 13, N).astype(np.int32), mask=rng.random(N) < 0.1)
    batch = pa.record_batch([lat, lon, precision], names=["lat", "lon", "precision"])
    out = call_both_ways(client, "geohash_encode", batch)
    assert out.type == pa.string()
    assert out.to_pylist() == ref.apply(ref.geohash_encode, lat, lon, precision)


def test_geohash_encode_known_values(client):
    assert ref.geohash_encode(42.6, -5.6, 5) == "ezs42"  # the reference itself is right
    assert ref.geohash_encode(57.64911, 10.40744, 11) == "u4pruydqqvj"
    batch = pa.record_batch([pa.array([42.6, 57.64911, None]), pa.array([-5.6, 10.40744, 1.0]),
                             pa.array([5, 11, 3], pa.int32())], names=["lat", "lon", "p"])
    assert client.call("geohash_encode", batch).to_pylist() == ["ezs42", "u4pruydqqvj", None]


IDENTITY_COLUMNS = {
    "int64": pa.array([1, None, -(2**63), 2**63 - 1]),
    "float64": pa.array([1.5, None, float("inf"), -0.0]),
    "bool": pa.array([True, None, False, True]),
    "utf8": pa.array(["", None, "日本語", "🙂 café"]),
    "binary": pa.array([b"", None, b"\x00\xff", b"abc"]),
    "date32": pa.array([datetime.date(1969, 12, 31), None, datetime.date(2262, 4, 12),
                        datetime.date(2000, 1, 1)]),
    "timestamp_tz": pa.array([datetime.datetime(1969, 7, 20, 20, 17), None,
                              datetime.datetime(2024, 3, 10, 2, 30), datetime.datetime(1, 1, 1)],
                             pa.timestamp("us", tz="UTC")),
    "decimal": pa.array([decimal.Decimal("1.000000000000000001"), None,
                         decimal.Decimal("-99999999999999999999.999999999999999999"),
                         decimal.Decimal(0)], pa.decimal128(38, 18)),
    "list": pa.array([[1, 2], None, [], [None]], pa.list_(pa.int64())),
    "struct": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": ""}, {"a": 3, "b": None}]),
    "map": pa.array([[("k", 1)], None, [], [("a", None), ("b", 2)]], pa.map_(pa.string(), pa.int64())),
}


@pytest.mark.parametrize("kind", IDENTITY_COLUMNS)
def test_identity(client, kind):
    column = IDENTITY_COLUMNS[kind]
    out = client.call("identity", pa.record_batch([column], names=["x"]))
    assert out.type == column.type
    assert out.equals(column)

