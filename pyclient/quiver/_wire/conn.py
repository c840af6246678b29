"""One Flight connection to a node: auth, call options, calls, actions, the session stream,
and the per-process cache of shared connections.

A Connection holds one FlightClient (one gRPC channel) and, opened at first
use, one session stream (quiver._wire.session; over the node's same-host lane,
quiver._wire.lane, when the connection is on the node's unix socket). It is safe to share between
threads; each call is its own stream. ``shared(address, token)`` is this
process's one connection per (address, token), keyed by pid too so that a
forked process (a Spark worker) never uses its parent's channel: quiver.get,
task results kept on a node and accelerate's batches all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import warnings
from typing import Iterable, NamedTuple

import pyarrow as pa
import pyarrow.flight as flight

from ..errors import QuiverError, Unavailable, mapped_errors
from .address import resolve_address
from . import lane as _lane
from .session import NotSent, Session

__all__ = ["Connection", "CallInfo", "Function", "Lockstep", "auth_headers", "new_call_info", "shared", "forget",
           "wire_table"]

INPUT_COUNT_KEY = b"x-databend-udf-input-count"
_OWNER_TAG = re.compile(r"[0-9a-f]{16}")  # a node's owner tag (docs/protocol.md, "Object pulls")

# pandas 3 turns strings into large_string; the node's kernels take utf8 and binary.
_WIRE_TYPES = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}

# What the node reported about one call, summed over its output batches: rows
# nulled by on_error="null", milliseconds spent in Python functions, and what
# each batch would have cost as one task (solo_ms; docs/protocol.md).
CallInfo = dict


def new_call_info() -> CallInfo:
    """A CallInfo with nothing reported yet."""
    return {"nulled": 0, "work_ms": 0.0, "solo_ms": 0.0}


class Function(NamedTuple):
    """One function in the node's catalog."""

    name: str
    args: list[pa.Field]
    result: pa.Field


def auth_headers(token: str | None) -> list[tuple[bytes, bytes]]:
    """The gRPC headers that carry a bearer token (none without one)."""
    return [(b"authorization", b"Bearer " + token.encode())] if token else []


class Connection:
    """A connection to one node (a Flight location). Safe to share between threads."""

    def __init__(self, address: str, token: str | None = None):
        self.address = address
        self.token = token
        self.auth = auth_headers(token)
        self.flight = flight.FlightClient(address)
        self.plain = flight.FlightCallOptions(headers=self.auth)  # no options but the token
        self._lock = threading.Lock()
        self._sess: Session | None = None
        self._owner: str | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"Connection({self.address!r})"

    def call_options(self, headers=(), timeout: float | None = None) -> flight.FlightCallOptions:
        """FlightCallOptions with the token and the given option headers (quiver._options)."""
        if not headers and timeout is None:
            return self.plain
        return flight.FlightCallOptions(timeout=timeout, headers=self.auth + list(headers))

    def close(self) -> None:
        """Close the connection. Calls in flight on other threads fail."""
        with self._lock:
            self.closed = True
            sess, self._sess = self._sess, None
        if sess is not None:
            sess.close()
        self.flight.close()

    # Calls and actions.

    def exchange(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 options: flight.FlightCallOptions) -> tuple[list[pa.Array], pa.DataType, CallInfo]:
        """Run one DoExchange in lockstep; return the result column per batch, its type, and
        what the node reported (nulled rows, work_ms) summed over the batches."""
        out: list[pa.Array] = []
        info = new_call_info()
        calls = self.lockstep(name, schema, batches, options, info)
        with contextlib.closing(iter(calls)) as pairs:  # an error here cancels the call at once
            for batch, result in pairs:
                if result.num_rows != batch.num_rows:
                    raise QuiverError(f"{name}: the node returned {result.num_rows} rows "
                                      f"for a batch of {batch.num_rows}")
                out.append(result.column(0))
                if result.num_columns > 1:  # on_error="null": column "error" says why
                    _warn_failed_rows(name, result.column(1))
        return out, calls.out_type, info

    def lockstep(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 options: flight.FlightCallOptions, info: CallInfo) -> Lockstep:
        """One DoExchange in lockstep: iterate it for (input batch, output batch) pairs, one
        output batch per input batch; info sums what the node reported."""
        return Lockstep(self, name, schema, batches, options, info)

    def action(self, kind: str, body: bytes = b"") -> bytes:
        """Run one DoAction; its first result's body (b"" for none)."""
        with mapped_errors():
            results = list(self.flight.do_action(flight.Action(kind, body), options=self.plain))
        return results[0].body.to_pybytes() if results else b""

    def owner(self) -> str:
        """The node's owner tag (health's "owner"): the prefix of the ids of its objects,
        by which other nodes of a cluster find them; "" for a node without one. Asked
        once per connection."""
        if self._owner is None:
            try:
                tag = json.loads(self.action("health")).get("owner") or ""
            except (QuiverError, ValueError, AttributeError):
                tag = ""
            self._owner = tag if _OWNER_TAG.fullmatch(tag) else ""
        return self._owner

    def functions(self) -> list[Function]:
        """Every function the node serves (ListFlights), sorted by name."""
        with mapped_errors():
            infos = list(self.flight.list_flights(options=self.plain))
        return sorted((_function(info) for info in infos), key=lambda f: f.name)

    # The session (quiver._wire.session).

    def session(self) -> Session:
        """The session stream, opened again if it broke (a node that restarted)."""
        with self._lock:
            if self.closed:
                raise QuiverError("quiver: the client is closed")
            if self._sess is None or self._sess.broken is not None:
                # On the node's host, over its lane; else (or when it offers none) over Flight.
                wire = _lane.connect(self) if _lane.enabled() else None
                self._sess = Session(self, wire)
            return self._sess

    def on_lane(self) -> bool:
        """Whether the session (opened if need be) runs over the node's lane."""
        return isinstance(self.session()._wire, _lane.LaneWire)

    def stamps(self):
        """The objects the session keeps after a get (quiver._wire.lane.Stamps), or None
        when it keeps none (no session yet, or one over Flight)."""
        sess = self._sess
        return None if sess is None or sess.broken is not None else sess.stamps

    def send(self, meta: dict, callback, batch=None) -> None:
        """Send a session request; a request the stream could not take (it had
        ended) goes once more on a new session."""
        try:
            self.session().request(meta, callback, batch)
        except NotSent:
            self.session().request(meta, callback, batch)

    def wait_until(self, done) -> None:
        """Wait until done() is true, reading the session meanwhile."""
        while not done():
            sess = self._sess
            if sess is None:
                time.sleep(0.001)
                continue
            sess.wait_until(lambda: done() or self._sess is not sess)

    def ask(self, meta: dict, batch=None):
        """One session request, waited for: (batch, metadata), or raises its error.

        A request that fails because its session ended (the node stopped or
        restarted after the write went out) is asked once more on a new
        session: a draining node answers what it read before it ends a
        session, so such a request was never served."""
        for again in (False, True):
            out: list = []
            sess = self.session()
            self.send(meta, lambda data, answer: out.append((data, answer)), batch)
            self.wait_until(lambda: bool(out))
            data, answer = out[0]
            if isinstance(answer, Unavailable) and not again and sess.broken is not None:
                continue
            if isinstance(answer, QuiverError):
                raise answer
            return data, answer


class Lockstep:
    """Connection.lockstep: write a batch, read its output, until the input ends; then
    check that the node sent nothing more. Closing it early (or an error) cancels the call.
    out_type is the output's first column type once the call has ended."""

    def __init__(self, conn: Connection, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 options: flight.FlightCallOptions, info: CallInfo):
        self.conn, self.name, self.schema, self.batches = conn, name, schema, batches
        self.options, self.info = options, info
        self.out_type: pa.DataType | None = None

    def __iter__(self):
        name = self.name
        with mapped_errors():
            writer, reader = self.conn.flight.do_exchange(flight.FlightDescriptor.for_path(name), self.options)
            try:
                writer.begin(self.schema)
                for batch in self.batches:
                    writer.write_batch(batch)
                    try:
                        chunk = reader.read_chunk()
                    except StopIteration:
                        raise QuiverError(f"{name}: the node ended the stream early") from None
                    _add_call_info(self.info, chunk.app_metadata)
                    yield batch, chunk.data
                writer.done_writing()
                try:
                    reader.read_chunk()
                except StopIteration:
                    pass
                else:
                    raise QuiverError(f"{name}: the node returned more batches than it was sent")
                self.out_type = reader.schema.field(0).type
            except BaseException:
                try:  # stop the node's work on this call; the first error is the one to report
                    reader.cancel()
                    writer.close()
                except Exception:
                    pass
                raise
            writer.close()


def _function(info: flight.FlightInfo) -> Function:
    """A catalog entry from a FlightInfo laid out the RisingWave/Databend way."""
    schema = info.schema
    n = int((schema.metadata or {}).get(INPUT_COUNT_KEY, len(schema) - 1))
    path = info.descriptor.path
    name = path[0].decode() if path else schema.field(n).name
    result = n + 1 if len(schema) > n + 1 and schema.field(n).name == "row" else n  # a table function
    return Function(name, [schema.field(i) for i in range(n)], schema.field(result))


def wire_table(table: pa.Table) -> pa.Table:
    """Drop pandas metadata and narrow large string/binary columns to the node's types."""
    schema = pa.schema([pa.field(f.name, _WIRE_TYPES.get(f.type, f.type), f.nullable)
                        for f in table.schema])
    return table.cast(schema)


def _add_call_info(info: dict, metadata) -> None:
    """Add one output batch's app_metadata ({"nulled": k, "work_ms": x, "solo_ms": y}, may be
    empty) to info; a batch without solo_ms counts its work_ms there."""
    if metadata is None or not metadata.size:
        return
    try:
        m = json.loads(metadata.to_pybytes())
    except ValueError:
        return  # not ours: another engine's metadata is not an error
    if isinstance(m, dict):
        info["nulled"] += int(m.get("nulled") or 0)
        work = float(m.get("work_ms") or 0.0)
        info["work_ms"] += work
        info["solo_ms"] = info.get("solo_ms", 0.0) + float(m.get("solo_ms") or work)


def _warn_failed_rows(name: str, errors: pa.Array) -> None:
    """Warn once per batch about rows the node nulled because they failed."""
    failed = len(errors) - errors.null_count
    if failed:
        first = next(e for e in errors.to_pylist() if e is not None)
        warnings.warn(f"quiver: {name}: {failed} row(s) failed and are null; first: {first}",
                      RuntimeWarning, stacklevel=5)


# This process's shared connections.

_shared: dict[tuple, Connection] = {}
_shared_lock = threading.Lock()


def shared(address: str | None, token: str | None = None) -> Connection:
    """This process's connection to address (None: $QUIVER_ADDRESS, else the default
    socket or TCP address), made once per (address, token, pid) and never closed."""
    location = resolve_address(address)
    key = (location, token, os.getpid())
    with _shared_lock:
        c = _shared.get(key)
        if c is None or c.closed:
            c = _shared[key] = Connection(location, token)
        return c


def forget(conn: Connection) -> None:
    """Drop conn from the cache (it stays open for whoever holds it): the next
    shared() for its address makes a fresh channel, e.g. after the node was down."""
    with _shared_lock:
        for k in [k for k, c in _shared.items() if c is conn]:
            del _shared[k]
