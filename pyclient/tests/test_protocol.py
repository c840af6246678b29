"""The wire protocol as other Arrow engines see it, with a bare pyarrow.flight client:
lockstep exchange, the RisingWave/Databend catalog layout, and the admin actions."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import reference as ref

# name -> (argument types, result type); None: any type.
SIGNATURES = {
    "identity": ([None], None),
    "haversine_km": ([pa.float64()] * 4, pa.float64()),
    "sha256_hex": ([None], pa.string()),
    "levenshtein": ([pa.string()] * 2, pa.int32()),
    "jaro_winkler": ([pa.string()] * 2, pa.float64()),
    "geohash_encode": ([pa.float64(), pa.float64(), pa.int32()], pa.string()),
    "builtin_healthy": ([], pa.int32()),
    "builtin_echo": ([pa.large_string()], pa.large_string()),
}
INPUT_COUNT_KEY = b"x-databend-udf-input-count"


@pytest.fixture(params=["unix", "tcp"])
def raw(request, node):
    """A bare pyarrow FlightClient over each transport."""
    with flight.FlightClient(getattr(node, request.param)) as c:
        yield c


OPTIONS = flight.FlightCallOptions(timeout=10)  # a hang fails the test instead of the suite


def test_lockstep_exchange(raw):
    writer, reader = raw.do_exchange(flight.FlightDescriptor.for_path("levenshtein"), OPTIONS)
    schema = pa.schema([("a", pa.string()), ("b", pa.string())])
    writer.begin(schema)
    # The output schema comes before any data: a lockstep client waits for it here.
    assert reader.schema.names == ["levenshtein"]
    assert reader.schema.types == [pa.int32()]
    for i in range(5):
        a = pa.array(["kitten" * i, "x", None, "日本語"[: i % 4]])
        b = pa.array(["sitting", "y" * i, "z", "日本"])
        writer.write_batch(pa.record_batch([a, b], schema=schema))
        chunk = reader.read_chunk()
        assert chunk.data.num_rows == 4
        assert chunk.data.column(0).to_pylist() == ref.apply(ref.levenshtein, a, b)
    writer.done_writing()
    with pytest.raises(StopIteration):
        reader.read_chunk()
    writer.close()


@pytest.mark.parametrize("name", SIGNATURES)
def test_get_flight_info_layout(raw, name):
    info = raw.get_flight_info(flight.FlightDescriptor.for_path(name), OPTIONS)
    args, result = SIGNATURES[name]
    schema = info.schema
    assert len(schema) == len(args) + 1, schema
    assert schema.metadata[INPUT_COUNT_KEY] == str(len(args)).encode()
    assert info.total_records == len(args)
    for i, want in enumerate(args):
        if want is not None:
            assert schema.field(i).type == want, f"argument {i}"
    if result is not None:
        assert schema.field(len(args)).type == result
    assert info.descriptor.path == [name.encode()]


def test_get_flight_info_unknown_function(raw):
    with pytest.raises(pa.ArrowKeyError):
        raw.get_flight_info(flight.FlightDescriptor.for_path("no_such_function"), OPTIONS)


def test_list_flights_matches_get_flight_info(raw):
    infos = {info.descriptor.path[0].decode(): info for info in raw.list_flights(options=OPTIONS)}
    assert set(SIGNATURES) <= set(infos)
    for name, info in infos.items():
        one = raw.get_flight_info(flight.FlightDescriptor.for_path(name), OPTIONS)
        assert info.schema.equals(one.schema, check_metadata=True), name
        assert info.total_records == one.total_records


def test_client_functions(unix_client):
    functions = {f.name: f for f in unix_client.functions()}
    assert set(SIGNATURES) <= set(functions)
    hav = functions["haversine_km"]
    assert [f.type for f in hav.args] == [pa.float64()] * 4
    assert hav.result.type == pa.float64()
    assert len(functions["geohash_encode"].args) == 3


def action(raw, kind: str) -> bytes:
    results = list(raw.do_action(flight.Action(kind, b""), OPTIONS))
    assert len(results) == 1
    return results[0].body.to_pybytes()


def test_protocol_version(raw):
    assert action(raw, "protocol_version") == b"\x02"


def test_health(raw, unix_client):
    health = json.loads(action(raw, "health"))
    assert health["status"] == "serving"
    assert isinstance(health["version"], str) and health["version"]
    assert unix_client.health() == health


def test_cluster_status(node, unix_client):
    before = unix_client.status()
    assert len(before["nodes"]) == 1
    me = before["nodes"][0]
    for key in ("address", "socket", "version", "uptime_s", "executors", "inflight_calls",
                "inflight_tasks", "calls_total", "rows_total", "functions"):
        assert key in me, key
    assert node.tcp.rsplit(":", 1)[1] in me["address"]
    assert node.unix.endswith(me["socket"])
    assert set(SIGNATURES) <= set(me["functions"])
    assert me["executors"] >= 1

    unix_client.call("identity", pa.record_batch([pa.array(range(10))], names=["x"]))
    after = unix_client.status()["nodes"][0]
    assert after["calls_total"] >= me["calls_total"] + 1
    assert after["rows_total"] >= me["rows_total"] + 10
    assert after["uptime_s"] >= me["uptime_s"]


@pytest.mark.parametrize("header, value", [(b"quiver-rows-per-task", b"abc"),
                                           (b"quiver-rows-per-task", b"0"),
                                           (b"quiver-retries", b"-1"),
                                           (b"quiver-on-error", b"ignore"),
                                           (b"quiver-timeout-ms", b"soon")])
def test_bad_option_header_is_invalid_argument(raw, header, value):
    options = flight.FlightCallOptions(timeout=10, headers=[(header, value)])
    writer = None
    # The node may refuse the call before or after pyarrow's do_exchange returns.
    with pytest.raises(pa.ArrowInvalid, match=header.decode()[len("quiver-"):]):
        writer, reader = raw.do_exchange(flight.FlightDescriptor.for_path("identity"), options)
        writer.begin(pa.schema([("x", pa.int64())]))
        writer.write_batch(pa.record_batch([pa.array([1])], names=["x"]))
        reader.read_chunk()
    if writer is not None:
        with pytest.raises(pa.ArrowInvalid):
            writer.close()
