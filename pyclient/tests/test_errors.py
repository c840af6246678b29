"""Bad input never breaks the node: each bad call fails with the right quiver error and
the next good call succeeds. Then the pyarrow -> quiver error mapping, class by class,
and authentication against a second node that requires a token."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import quiver
from nodeproc import start_node, stop_node
from quiver.errors import mapped_errors, translate


def good_call(client) -> None:
    """A call that must succeed right after any bad one."""
    out = client.call("levenshtein", pa.record_batch([pa.array(["kitten", None]),
                                                      pa.array(["sitting", "x"])],
                                                     names=["a", "b"]), timeout=10)
    assert out.to_pylist() == [3, None]


def floats(n: int, k: int) -> list[pa.Array]:
    return [pa.array(np.full(n, 1.0 + i)) for i in range(k)]


def test_unknown_function(client):
    with pytest.raises(quiver.FunctionNotFound, match="no_such_function") as err:
        client.call("no_such_function", pa.record_batch([pa.array([1])], names=["x"]))
    assert isinstance(err.value.__cause__, pa.ArrowKeyError)
    good_call(client)


def test_wrong_arity(client):
    with pytest.raises(quiver.InvalidArgument) as err:
        client.call("haversine_km", pa.record_batch(floats(3, 3), names=["a", "b", "c"]))
    assert isinstance(err.value.__cause__, pa.ArrowInvalid)
    assert "4" in err.value.message and "3" in err.value.message, err.value.message
    good_call(client)


def test_wrong_type_names_the_argument(client):
    args = floats(3, 4)
    args[2] = pa.array([1, 2, 3], pa.int64())
    with pytest.raises(quiver.InvalidArgument) as err:
        client.call("haversine_km", pa.record_batch(args, names=["a", "b", "c", "d"]))
    message = err.value.message
    # The third argument: position 2 counting from zero, or 3 counting from one.
    assert re.search(r"argument\D{0,3}[23]\b", message), message
    assert "int64" in message and ("float64" in message or "double" in message), message
    good_call(client)


def test_wrong_type_string_function(client):
    batch = pa.record_batch([pa.array(["a"]), pa.array([1.0])], names=["a", "b"])
    with pytest.raises(quiver.InvalidArgument, match=r"argument\D{0,3}[12]\b"):
        client.call("levenshtein", batch)
    good_call(client)


def test_batch_without_columns(client):
    batch = pa.record_batch([pa.array([1, 2, 3])], names=["x"]).select([])
    assert batch.num_columns == 0 and batch.num_rows == 3
    with pytest.raises(quiver.InvalidArgument):
        client.call("identity", batch)
    good_call(client)


@pytest.mark.parametrize("precision", [13, 0, -1])
def test_geohash_precision_out_of_range(client, precision):
    batch = pa.record_batch([pa.array([1.5, 2.5]), pa.array([3.5, 4.5]),
                             pa.array([5, precision], pa.int32())], names=["lat", "lon", "p"])
    with pytest.raises(quiver.InvalidArgument):
        client.call("geohash_encode", batch)
    good_call(client)


def test_empty_batch(client):
    batch = pa.record_batch([pa.array([], pa.string()), pa.array([], pa.string())], names=["a", "b"])
    out = client.call("levenshtein", batch)
    assert len(out) == 0 and out.type == pa.int32()
    good_call(client)


def test_empty_table(client):
    table = pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.string())})
    out = client.call("jaro_winkler", pa.Table.from_batches([], schema=table.schema))
    assert len(out) == 0 and out.type == pa.float64()
    good_call(client)


# A client that opens an exchange, writes one large batch and dies without reading.
DYING_CLIENT = """
import os, sys, numpy as np, pyarrow as pa, pyarrow.flight as flight
c = flight.FlightClient(sys.argv[1])
writer, reader = c.do_exchange(flight.FlightDescriptor.for_path("haversine_km"))
b = pa.record_batch([pa.array(np.linspace(-80, 80, 500_000)) for _ in range(4)], names=list("abcd"))
writer.begin(b.schema)
writer.write_batch(b)
os._exit(0)
"""


def wait_until_idle(client, timeout_s: float = 10) -> dict:
    """The node's status once no call is in flight; fails if that takes over timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        me = client.status()["nodes"][0]
        if me["inflight_calls"] == 0 and me["inflight_tasks"] == 0:
            return me
        assert time.monotonic() < deadline, f"calls still in flight: {me}"
        time.sleep(0.05)


def test_client_disconnects_mid_stream(node, client):
    for address in (node.unix, node.tcp):
        subprocess.run([sys.executable, "-c", DYING_CLIENT, address], check=True, timeout=30)
    wait_until_idle(client)
    good_call(client)
    assert client.health()["status"] == "serving"


def test_client_cancels_mid_stream(node, client):
    with flight.FlightClient(node.tcp) as raw:
        writer, reader = raw.do_exchange(flight.FlightDescriptor.for_path("sha256_hex"),
                                         flight.FlightCallOptions(timeout=10))
        writer.begin(pa.schema([("x", pa.string())]))
        writer.write_batch(pa.record_batch([pa.array(["a"] * 1000)], names=["x"]))
        reader.read_chunk()
        writer.write_batch(pa.record_batch([pa.array(["b"] * 1000)], names=["x"]))
        reader.cancel()
        del writer, reader
    wait_until_idle(client)
    good_call(client)


# Error mapping: real calls where the node can produce the error.

def test_unreachable_socket_is_unavailable(tmp_path):
    with quiver.connect(f"grpc+unix://{tmp_path}/nothing.sock") as c:
        with pytest.raises(quiver.Unavailable) as err:
            c.health()
    assert isinstance(err.value.__cause__, flight.FlightUnavailableError)


def test_closed_port_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with quiver.connect(f"grpc://127.0.0.1:{port}") as c:
        with pytest.raises(quiver.Unavailable):
            c.call("identity", pa.record_batch([pa.array([1])], names=["x"]))


def test_deadline_is_timeout(unix_client):
    batch = pa.record_batch([pa.array(np.arange(4_000_000))], names=["x"])
    with pytest.raises(quiver.Timeout) as err:
        unix_client.call("identity", batch, timeout=0.001)
    cause = err.value.__cause__
    while isinstance(cause, quiver.QuiverError):  # a cancelled stream is re-raised as Timeout
        cause = cause.__cause__
    assert isinstance(cause, (flight.FlightTimedOutError, flight.FlightCancelledError)), repr(cause)
    good_call(unix_client)


# Error mapping: each pyarrow exception, as pyarrow words it, to its quiver class.

MAPPING = [
    (pa.ArrowKeyError("Flight returned not found error, with message: udf: unknown function: "
                      "\"f\". gRPC client debug context: NOT_FOUND"), quiver.FunctionNotFound,
     'udf: unknown function: "f"'),
    (pa.ArrowInvalid("Flight returned invalid argument error, with message: udf: f: argument 0: "
                     "expected float64, got int64"), quiver.InvalidArgument,
     "udf: f: argument 0: expected float64, got int64"),
    (pa.ArrowInvalid("gRPC returned resource exhausted error, with message: over capacity. "
                     "gRPC client debug context: RESOURCE_EXHAUSTED:over capacity"),
     quiver.OverCapacity, "over capacity"),
    (flight.FlightInternalError("Flight returned internal error, with message: ZeroDivisionError: "
                                "division by zero"), quiver.UDFError,
     "ZeroDivisionError: division by zero"),
    (flight.FlightUnavailableError("Flight returned unavailable error, with message: draining"),
     quiver.Unavailable, "draining"),
    (flight.FlightUnauthenticatedError("Flight returned unauthenticated error, with message: "
                                       "bad token"), quiver.Unauthenticated, "bad token"),
    (flight.FlightUnauthorizedError("Flight returned unauthorized error, with message: no"),
     quiver.Unauthenticated, "no"),
    (flight.FlightTimedOutError("Flight returned timeout error, with message: deadline exceeded"),
     quiver.Timeout, "deadline exceeded"),
    (flight.FlightServerError("Flight RPC failed with message: boom"), quiver.QuiverError, "boom"),
    (pa.ArrowIOError("local failure"), quiver.QuiverError, "local failure"),
]


@pytest.mark.parametrize("exc, cls, message", MAPPING, ids=[cls.__name__ for _, cls, _ in MAPPING])
def test_error_mapping(exc, cls, message):
    err = translate(exc)
    assert type(err) is cls
    assert isinstance(err, quiver.QuiverError)
    assert err.message == message


def test_mapped_errors_chains_the_cause():
    original = flight.FlightTimedOutError("Flight returned timeout error, with message: late")
    with pytest.raises(quiver.Timeout) as err:
        with mapped_errors():
            raise original
    assert err.value.__cause__ is original


# Authentication: a second node that requires a token.

TOKEN = "s3cret-t0ken"


@pytest.fixture(scope="module")
def token_node(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("auth") / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    n = start_node(["--token-file", str(token_file)])
    yield n
    stop_node(n)


@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_unauthenticated(token_node, token, monkeypatch):
    monkeypatch.delenv("QUIVER_TOKEN", raising=False)
    with quiver.connect(token_node.tcp, token=token) as c:
        with pytest.raises(quiver.Unauthenticated) as err:
            c.call("identity", pa.record_batch([pa.array([1])], names=["x"]))
        assert isinstance(err.value.__cause__, flight.FlightUnauthenticatedError)
        with pytest.raises(quiver.Unauthenticated):
            c.functions()
        with pytest.raises(quiver.Unauthenticated):
            c.status()


def test_right_token_works(token_node, monkeypatch):
    monkeypatch.setenv("QUIVER_TOKEN", TOKEN)
    for address in (token_node.unix, token_node.tcp):
        with quiver.connect(address) as c:
            good_call(c)
            assert c.health()["status"] == "serving"
            assert "identity" in {f.name for f in c.functions()}
