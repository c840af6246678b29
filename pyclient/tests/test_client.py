"""The Python client's own behaviour: address resolution, input and output types, options."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import quiver
import reference as ref
from quiver._wire.address import default_token
from quiver.client import DEFAULT_TCP_ADDRESS


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("QUIVER_ADDRESS", "QUIVER_TOKEN", "QUIVER_RUN_DIR", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_address_from_environment(clean_env):
    clean_env.setenv("QUIVER_ADDRESS", "grpc://10.0.0.5:9000")
    assert quiver.resolve_address() == "grpc://10.0.0.5:9000"
    assert quiver.resolve_address("grpc+tls://h:1") == "grpc+tls://h:1"


def test_address_default_socket_then_tcp(clean_env, tmp_path):
    clean_env.setenv("QUIVER_RUN_DIR", str(tmp_path))
    assert quiver.default_socket() == str(tmp_path / "quiver.sock")
    assert quiver.resolve_address() == DEFAULT_TCP_ADDRESS  # no socket there yet
    (tmp_path / "quiver.sock").touch()
    assert quiver.resolve_address() == f"grpc+unix://{tmp_path}/quiver.sock"


def test_default_run_dir(clean_env, tmp_path):
    assert quiver.default_socket() == f"/tmp/quiver-{os.getuid()}/quiver.sock"
    clean_env.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert quiver.default_socket() == str(tmp_path / "quiver" / "quiver.sock")


def test_bare_addresses_get_a_scheme():
    assert quiver.resolve_address("/run/q.sock") == "grpc+unix:///run/q.sock"
    assert quiver.resolve_address("127.0.0.1:8815") == "grpc://127.0.0.1:8815"


def test_connect_from_environment(clean_env, node):
    clean_env.setenv("QUIVER_ADDRESS", node.unix)
    with quiver.connect() as c:
        assert c.address == node.unix
        assert c.health()["status"] == "serving"


def test_token_from_environment(clean_env):
    clean_env.setenv("QUIVER_TOKEN", "secret")
    with quiver.connect("grpc://127.0.0.1:1") as c:  # connecting is lazy
        assert c.connection.auth == [(b"authorization", b"Bearer secret")]
    with quiver.connect("grpc://127.0.0.1:1", token="given") as c:
        assert c.connection.auth == [(b"authorization", b"Bearer given")]


def test_token_from_the_file_beside_the_socket(clean_env, tmp_path):
    """What setup_cluster and the Databricks init script leave in a run directory: the
    socket's clients send it unasked, a TCP address never gets it, nor does a file others
    may read."""
    sock = f"grpc+unix://{tmp_path}/quiver.sock"
    token = tmp_path / "token"
    token.write_text("from-file\n")
    token.chmod(0o600)
    with quiver.connect(sock) as c:  # connecting is lazy
        assert c.connection.auth == [(b"authorization", b"Bearer from-file")]
    clean_env.setenv("QUIVER_ADDRESS", sock)
    assert default_token() == "from-file"
    assert default_token("grpc://127.0.0.1:1") is None
    clean_env.setenv("QUIVER_TOKEN", "from-env")
    assert default_token() == "from-env"
    clean_env.delenv("QUIVER_TOKEN")
    token.chmod(0o640)
    assert default_token() is None


def test_record_batch_gives_array(unix_client):
    out = unix_client.call("identity", pa.record_batch([pa.array([1, 2])], names=["x"]))
    assert isinstance(out, pa.Array)


def test_table_gives_chunked_array(unix_client):
    table = pa.Table.from_batches([pa.record_batch([pa.array([i] * 3)], names=["x"])
                                   for i in range(4)])
    out = unix_client.call("identity", table)
    assert isinstance(out, pa.ChunkedArray)
    assert [len(c) for c in out.chunks] == [3, 3, 3, 3]
    assert out.to_pylist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_dataframe_gives_series_with_index(client):
    rng = np.random.default_rng(9)
    a, b = ref.strings(rng, 500), ref.strings(rng, 500)
    df = pd.DataFrame({"a": a.to_pandas(), "b": b.to_pandas()})
    df.index = pd.Index(rng.permutation(1000)[:500] * 3, name="id")
    out = client.call("levenshtein", df)
    assert isinstance(out, pd.Series)
    assert out.name == "levenshtein"
    assert out.index.equals(df.index)
    want = ref.apply(ref.levenshtein, a, b)
    assert [None if pd.isna(v) else int(v) for v in out] == want


def test_dataframe_of_floats(unix_client):
    df = pd.DataFrame({"lat1": [48.8566, None], "lon1": [2.3522, 0.0],
                       "lat2": [51.5074, 0.0], "lon2": [-0.1278, 0.0]}, index=["paris", "x"])
    out = unix_client.call("haversine_km", df)
    assert out.index.tolist() == ["paris", "x"]
    assert out["paris"] == pytest.approx(343.556, abs=0.01)
    assert pd.isna(out["x"])


def test_dataframe_binary_and_empty(unix_client):
    df = pd.DataFrame({"x": [b"abc", b"", None]})
    assert unix_client.call("sha256_hex", df).tolist()[:2] == [ref.sha256_hex(b"abc"),
                                                               ref.sha256_hex(b"")]
    empty = pd.DataFrame({"x": pd.Series([], dtype="str")})
    assert len(unix_client.call("sha256_hex", empty)) == 0


def test_call_rejects_other_inputs(unix_client):
    with pytest.raises(TypeError):
        unix_client.call("identity", [1, 2, 3])


@pytest.mark.parametrize("kwargs", [{"rows_per_task": 0}, {"retries": -1},
                                    {"on_error": "ignore"}, {"timeout": 0}])
def test_bad_options_fail_before_the_call(unix_client, kwargs):
    with pytest.raises(ValueError):
        unix_client.call("identity", pa.record_batch([pa.array([1])], names=["x"]), **kwargs)


def test_options_are_accepted(unix_client):
    batch = pa.record_batch([pa.array(["a", None, "日本"])], names=["x"])
    out = unix_client.call("sha256_hex", batch, rows_per_task=2, retries=1, on_error="raise",
                           timeout=10)
    assert out.to_pylist() == ref.apply(ref.sha256_hex, batch.column(0))


def test_one_flight_client_is_reused(node):
    with quiver.connect(node.unix) as c:
        first = c.connection.flight
        for _ in range(3):
            c.call("identity", pa.record_batch([pa.array([1])], names=["x"]))
            c.functions()
            c.status()
        assert c.connection.flight is first


def test_on_error_null_gives_nulls_and_a_warning(client):
    batch = pa.record_batch([pa.array([42.6, 1.0, None]), pa.array([-5.6, 2.0, 3.0]),
                             pa.array([5, 13, 4], pa.int32())], names=["lat", "lon", "p"])
    with pytest.warns(RuntimeWarning, match="1 row"):
        out = client.call("geohash_encode", batch, on_error="null")
    assert out.to_pylist() == ["ezs42", None, None]
    with pytest.raises(quiver.InvalidArgument):
        client.call("geohash_encode", batch, on_error="raise")
