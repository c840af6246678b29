"""The quiver client: call a node's functions over Arrow Flight, read its catalog and status.

    import quiver
    with quiver.connect() as client:             # QUIVER_ADDRESS, the local socket, or TCP
        km = client.call("haversine_km", batch)  # RecordBatch -> pyarrow.Array

A call is one DoExchange: the input's batches go out one at a time and each
result batch is read before the next input batch is written, so a large table
streams through in bounded memory and never deadlocks on flow control. One
Client holds one FlightClient (one gRPC channel); it is safe to share between
threads, and each call is its own stream.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight

from .errors import QuiverError, mapped_errors

__all__ = ["Client", "Function", "connect", "default_socket", "resolve_address"]

DEFAULT_TCP_ADDRESS = "grpc://127.0.0.1:8815"
INPUT_COUNT_KEY = b"x-databend-udf-input-count"

# pandas 3 turns strings into large_string; the node's kernels take utf8 and binary.
_WIRE_TYPES = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}


class Function(NamedTuple):
    """One function in the node's catalog."""

    name: str
    args: list[pa.Field]
    result: pa.Field


def default_socket() -> str:
    """The node's default unix socket: quiver.sock in the default run directory."""
    run_dir = os.environ.get("QUIVER_RUN_DIR")
    if not run_dir and os.environ.get("XDG_RUNTIME_DIR"):
        run_dir = os.path.join(os.environ["XDG_RUNTIME_DIR"], "quiver")
    if not run_dir:
        run_dir = f"/tmp/quiver-{os.getuid()}"
    return os.path.join(run_dir, "quiver.sock")


def resolve_address(address: str | None = None) -> str:
    """Turn an address (or None) into a Flight location string.

    None means $QUIVER_ADDRESS, else the default socket if it exists, else
    grpc://127.0.0.1:8815. A bare socket path or host:port gets its scheme added.
    """
    if address is None:
        address = os.environ.get("QUIVER_ADDRESS")
    if not address:
        sock = default_socket()
        return f"grpc+unix://{sock}" if os.path.exists(sock) else DEFAULT_TCP_ADDRESS
    if address.startswith("grpc"):
        return address
    if address.startswith("/"):
        return f"grpc+unix://{address}"
    return f"grpc://{address}"


def connect(address: str | None = None, token: str | None = None) -> Client:
    """Connect to a node; the token defaults to $QUIVER_TOKEN.

    Connecting is lazy: an unreachable node shows up as Unavailable on the first call.
    """
    if token is None:
        token = os.environ.get("QUIVER_TOKEN") or None
    return Client(resolve_address(address), token=token)


class Client:
    """A connection to one quiver node. Use connect() to make one."""

    def __init__(self, address: str, token: str | None = None):
        self.address = address
        self._auth = [(b"authorization", b"Bearer " + token.encode())] if token else []
        self._flight = flight.FlightClient(address)

    def __repr__(self) -> str:
        return f"quiver.Client({self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection. Calls in flight on other threads fail."""
        self._flight.close()

    # Calls.

    def call(self, name: str, data, *, rows_per_task: int | None = None,
             retries: int | None = None, on_error: str | None = None,
             timeout: float | None = None):
        """Call function `name`; the columns of `data` are its arguments, by position.

        RecordBatch -> pyarrow.Array; Table -> pyarrow.ChunkedArray (one chunk per
        input batch); pandas DataFrame -> pandas Series with the frame's index.
        rows_per_task, retries and on_error ("raise" | "null") are passed to the
        node; timeout (seconds) bounds the whole call on both sides.
        """
        options = self._call_options(rows_per_task, retries, on_error, timeout)
        if isinstance(data, pa.RecordBatch):
            chunks, _ = self._exchange(name, data.schema, [data], options)
            return chunks[0]
        if isinstance(data, pa.Table):
            chunks, out_type = self._exchange(name, data.schema, data.to_batches(), options)
            return pa.chunked_array(chunks, type=out_type)
        if isinstance(data, pd.DataFrame):
            table = _to_wire(pa.Table.from_pandas(data, preserve_index=False))
            chunks, out_type = self._exchange(name, table.schema, table.to_batches(), options)
            series = pa.chunked_array(chunks, type=out_type).to_pandas()
            series.index = data.index
            series.name = name
            return series
        raise TypeError(f"quiver: cannot call with {type(data).__name__}; "
                        "pass a pyarrow RecordBatch or Table, or a pandas DataFrame")

    def _exchange(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                  options: flight.FlightCallOptions) -> tuple[list[pa.Array], pa.DataType]:
        """Run one DoExchange in lockstep; return the result column per batch and its type."""
        out: list[pa.Array] = []
        with mapped_errors():
            writer, reader = self._flight.do_exchange(flight.FlightDescriptor.for_path(name), options)
            try:
                writer.begin(schema)
                for batch in batches:
                    writer.write_batch(batch)
                    try:
                        result = reader.read_chunk().data
                    except StopIteration:
                        raise QuiverError(f"{name}: the node ended the stream early") from None
                    if result.num_rows != batch.num_rows:
                        raise QuiverError(f"{name}: the node returned {result.num_rows} rows "
                                          f"for a batch of {batch.num_rows}")
                    out.append(result.column(0))
                writer.done_writing()
                try:
                    reader.read_chunk()
                except StopIteration:
                    pass
                else:
                    raise QuiverError(f"{name}: the node returned more batches than it was sent")
                out_type = reader.schema.field(0).type
            except BaseException:
                try:
                    writer.close()
                except Exception:
                    pass  # the stream already failed; the first error is the one to report
                raise
            writer.close()
        return out, out_type

    def _call_options(self, rows_per_task, retries, on_error, timeout) -> flight.FlightCallOptions:
        headers = list(self._auth)
        if rows_per_task is not None:
            if int(rows_per_task) < 1:
                raise ValueError("quiver: rows_per_task must be at least 1")
            headers.append((b"quiver-rows-per-task", str(int(rows_per_task)).encode()))
        if retries is not None:
            if int(retries) < 0:
                raise ValueError("quiver: retries must be 0 or more")
            headers.append((b"quiver-retries", str(int(retries)).encode()))
        if on_error is not None:
            if on_error not in ("raise", "null"):
                raise ValueError("quiver: on_error must be 'raise' or 'null'")
            headers.append((b"quiver-on-error", on_error.encode()))
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("quiver: timeout must be positive")
            headers.append((b"quiver-timeout-ms", str(max(1, math.ceil(timeout * 1000))).encode()))
        return flight.FlightCallOptions(timeout=timeout, headers=headers)

    # Catalog and administration.

    def functions(self) -> list[Function]:
        """Every function the node serves (ListFlights), sorted by name."""
        with mapped_errors():
            infos = list(self._flight.list_flights(options=self._call_options(None, None, None, None)))
        return sorted((_function(info) for info in infos), key=lambda f: f.name)

    def status(self) -> dict:
        """The cluster's status (the cluster_status action): {"nodes": [...], ...}."""
        return json.loads(self._action("cluster_status"))

    def health(self) -> dict:
        """The node's health (the health action): {"status": "serving" | "draining", "version": ...}."""
        return json.loads(self._action("health"))

    def _action(self, kind: str, body: bytes = b"") -> bytes:
        options = self._call_options(None, None, None, None)
        with mapped_errors():
            results = list(self._flight.do_action(flight.Action(kind, body), options=options))
        return results[0].body.to_pybytes() if results else b""


def _function(info: flight.FlightInfo) -> Function:
    """A catalog entry from a FlightInfo laid out the RisingWave/Databend way."""
    schema = info.schema
    n = int((schema.metadata or {}).get(INPUT_COUNT_KEY, len(schema) - 1))
    path = info.descriptor.path
    name = path[0].decode() if path else schema.field(n).name
    return Function(name, [schema.field(i) for i in range(n)], schema.field(n))


def _to_wire(table: pa.Table) -> pa.Table:
    """Drop pandas metadata and narrow large string/binary columns to the node's types."""
    schema = pa.schema([pa.field(f.name, _WIRE_TYPES.get(f.type, f.type), f.nullable)
                        for f in table.schema])
    return table.cast(schema)
