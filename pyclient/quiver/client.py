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

import base64
import hashlib
import json
import math
import os
import struct
import threading
import time
import warnings
from typing import Iterable, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight

from .errors import QuiverError, Timeout, mapped_errors

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

    With an address (or $QUIVER_ADDRESS) connecting is lazy: an unreachable node
    shows up as Unavailable on the first call. With neither, it is the way
    ``ray.init()`` works: a node answering on the default socket is reused, else
    one is started for this machine (workers on this interpreter) and stopped
    when this process exits; see quiver.local. Raises Unavailable when none
    answers and none can be started.
    """
    if token is None:
        token = os.environ.get("QUIVER_TOKEN") or None
    if address is None and not os.environ.get("QUIVER_ADDRESS"):
        from . import local
        return Client(local.ensure_node(token), token=token)
    return Client(resolve_address(address), token=token)


class Client:
    """A connection to one quiver node. Use connect() to make one."""

    def __init__(self, address: str, token: str | None = None):
        self.address = address
        self._auth = [(b"authorization", b"Bearer " + token.encode())] if token else []
        self._flight = flight.FlightClient(address)
        # Python functions this client registered: (name, blob id) -> node's answer.
        self._registered: dict[tuple[str, str], dict] = {}
        self._registered_lock = threading.Lock()
        # What the node reported about the last call that finished on this client
        # (summed over its output batches): rows nulled by on_error="null", and
        # milliseconds spent in Python functions. None before the first call.
        self.last_call_info: dict | None = None
        # submit/map's queue and dispatch threads (quiver.tasks), made at the first submit.
        self._dispatcher = None
        self._dispatcher_lock = threading.Lock()
        # The session stream for tasks and small objects (quiver.session), opened at first use.
        self._sess = None
        self._closed = False

    def __repr__(self) -> str:
        return f"quiver.Client({self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection. Calls in flight on other threads fail, and so do
        tasks submitted but not started."""
        with self._dispatcher_lock:
            dispatcher, self._dispatcher = self._dispatcher, None
            sess, self._sess = self._sess, None
            self._closed = True
        if dispatcher is not None:
            dispatcher.close()
        if sess is not None:
            sess.close()
        self._flight.close()

    # Calls.

    def call(self, name: str, data, *, rows_per_task: int | None = None,
             retries: int | None = None, on_error: str | None = None,
             timeout: float | None = None):
        """Call function `name`; the columns of `data` are its arguments, by position.

        RecordBatch -> pyarrow.Array; Table -> pyarrow.ChunkedArray (one chunk per
        input batch); pandas DataFrame -> pandas Series with the frame's index.
        rows_per_task, retries and on_error are passed to the node; with
        on_error="null" rows that failed come back null, with a RuntimeWarning
        quoting the node's message. timeout (seconds) bounds the whole call on
        both sides.
        """
        options = self._call_options(rows_per_task, retries, on_error, timeout)
        start = time.monotonic()
        try:
            return self._call(name, data, options)
        except QuiverError as e:
            # A deadline that passes while the stream is torn down can reach
            # pyarrow as a cancelled call rather than a timeout.
            if timeout is not None and not isinstance(e, Timeout) and time.monotonic() - start >= timeout:
                raise Timeout(f"{name}: no answer within {timeout} s ({e})") from e
            raise

    def _call(self, name: str, data, options: flight.FlightCallOptions):
        if isinstance(data, pa.RecordBatch):
            chunks, _, self.last_call_info = self._exchange(name, data.schema, [data], options)
            return chunks[0]
        if isinstance(data, pa.Table):
            chunks, out_type, self.last_call_info = self._exchange(name, data.schema, data.to_batches(), options)
            return pa.chunked_array(chunks, type=out_type)
        if isinstance(data, pd.DataFrame):
            table = _to_wire(pa.Table.from_pandas(data, preserve_index=False))
            chunks, out_type, self.last_call_info = self._exchange(name, table.schema, table.to_batches(), options)
            series = pa.chunked_array(chunks, type=out_type).to_pandas()
            series.index = data.index
            series.name = name
            return series
        raise TypeError(f"quiver: cannot call with {type(data).__name__}; "
                        "pass a pyarrow RecordBatch or Table, or a pandas DataFrame")

    def _exchange(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                  options: flight.FlightCallOptions) -> tuple[list[pa.Array], pa.DataType, dict]:
        """Run one DoExchange in lockstep; return the result column per batch, its type, and
        what the node reported (nulled rows, work_ms) summed over the batches."""
        out: list[pa.Array] = []
        info = {"nulled": 0, "work_ms": 0.0}
        with mapped_errors():
            writer, reader = self._flight.do_exchange(flight.FlightDescriptor.for_path(name), options)
            try:
                writer.begin(schema)
                for batch in batches:
                    writer.write_batch(batch)
                    try:
                        chunk = reader.read_chunk()
                    except StopIteration:
                        raise QuiverError(f"{name}: the node ended the stream early") from None
                    result = chunk.data
                    _add_call_info(info, chunk.app_metadata)
                    if result.num_rows != batch.num_rows:
                        raise QuiverError(f"{name}: the node returned {result.num_rows} rows "
                                          f"for a batch of {batch.num_rows}")
                    out.append(result.column(0))
                    if result.num_columns > 1:  # on_error="null": column "error" says why
                        _warn_failed_rows(name, result.column(1))
                writer.done_writing()
                try:
                    reader.read_chunk()
                except StopIteration:
                    pass
                else:
                    raise QuiverError(f"{name}: the node returned more batches than it was sent")
                out_type = reader.schema.field(0).type
            except BaseException:
                try:  # stop the node's work on this call; the first error is the one to report
                    reader.cancel()
                    writer.close()
                except Exception:
                    pass
                raise
            writer.close()
        return out, out_type, info

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

    # Tasks and objects (quiver.tasks, quiver.objects).

    def submit(self, fn, /, *args, **kwargs):
        """Run fn(*args, **kwargs) on the node's workers; return a concurrent.futures.Future.

        fn and the arguments travel cloudpickled (what fn references by module
        must be importable by the workers); ObjectRef arguments (top-level
        positional arguments and keyword values) arrive as their objects. The
        future's result is fn's return value; an exception in fn fails this
        future only, with UDFError carrying the remote traceback. Submissions
        are batched into few calls by a background dispatcher, so submitting
        thousands at once is cheap. A task may submit tasks itself (nested
        tasks), but a parent that blocks on children holds a worker: keep
        fewer blocking parents than workers. See quiver.tasks.
        """
        return self._tasks().submit(fn, args, kwargs)

    def options(self, *, retries: int | None = None):
        """submit, map and remote with settings of their own, like Ray's
        f.options(): ``client.options(retries=0).submit(fn, x)``. retries is how
        often the node runs a task again when its worker dies (default 3;
        0: never, for tasks that must not run twice)."""
        from .tasks import Options
        return Options(self, retries=retries)

    def remote(self, fn, /, *args, **kwargs):
        """Run fn(*args, **kwargs) like submit, but keep the result on the node:
        return an ObjectRef to it (Ray's f.remote()). Pass the ref to other tasks
        (they read it on the node, not through this process) or get() it. If the
        node loses it (a restart), reading it runs the task again: see
        quiver.lineage. ref.wait() waits for the task and raises its error."""
        from .lineage import remote
        return remote(self, fn, args, kwargs)

    def map(self, fn, items, *more_items, ordered: bool = True):
        """fn(item) for each item on the node's workers, as an iterator of results.

        With several iterables fn takes one argument from each, like the builtin
        map (map(f, grid, itertools.repeat(ref)): ObjectRef arguments are resolved
        as for submit). ordered=True yields in input order; ordered=False as
        tasks finish. The tasks are submitted at once (a window of 20,000 at a
        time); an exception in a task is raised by the iterator when its result
        is reached; leaving the loop early cancels the tasks not yet started.
        """
        from .tasks import map_tasks
        return map_tasks(self._tasks(), fn, items, more_items, ordered=ordered)

    def wait(self, futures, timeout: float | None = None, return_when: str = "ALL_COMPLETED"):
        """Wait for futures like concurrent.futures.wait; return (done, not_done)."""
        from .tasks import wait
        return wait(futures, timeout=timeout, return_when=return_when)

    def put(self, obj):
        """Store obj on the node; return an ObjectRef (see quiver.objects).

        A pyarrow Table or RecordBatch is stored as Arrow, its batches streamed
        as they are (no copy here); anything else is cloudpickled and stored
        as a blob. The object stays until released (ref.release()) or the node
        stops; OverCapacity when it does not fit in the node's object store.
        A pickle up to 4 MiB goes out without waiting for the node's answer:
        its failure is raised by the ref's next use (ref.wait(), get, release,
        passing it to a task).
        """
        from .objects import put
        return put(self, obj)

    def get(self, ref):
        """Read an object back: a pyarrow Table for Arrow objects, the unpickled
        object for others; a list of refs gives a list. ObjectLost if the node
        does not hold it (released, or lost with a node that stopped)."""
        from .errors import ObjectLost
        from .objects import _check_ref, fetch
        if isinstance(ref, (list, tuple)):
            return [self.get(r) for r in ref]
        ref = _check_ref(ref).wait()
        try:
            return fetch(self, ref)[0]
        except ObjectLost:
            if ref._lineage is None:
                raise
        from .lineage import recompute
        recompute(self, ref)  # made by a task: make it again
        return fetch(self, ref)[0]

    def release(self, ref) -> None:
        """Drop an object (or a list of them) from the node; ObjectLost if it is not there."""
        from .objects import release
        release(self, list(ref) if isinstance(ref, (list, tuple)) else [ref])

    def _session(self):
        """The session stream, opened again if it broke (a node that restarted)."""
        with self._dispatcher_lock:
            if self._closed:
                raise QuiverError("quiver: the client is closed")
            if self._sess is None or self._sess.broken is not None:
                from .session import Session
                self._sess = Session(self)
            return self._sess

    def _send(self, meta: dict, callback, batch=None) -> None:
        """Send a session request (quiver.session); a request the stream could
        not take (it had ended) goes once more on a new session."""
        from .session import NotSent
        try:
            self._session().request(meta, callback, batch)
        except NotSent:
            self._session().request(meta, callback, batch)

    def _wait_until(self, done) -> None:
        """Wait until done() is true, reading the session meanwhile (quiver.session)."""
        while not done():
            sess = self._sess
            if sess is None:
                time.sleep(0.001)
                continue
            sess.wait_until(lambda: done() or self._sess is not sess)

    def _ask(self, meta: dict, batch=None):
        """One session request, waited for: (batch, metadata), or raises its error.

        A request that fails because its session ended (the node stopped or
        restarted after the write went out) is asked once more on a new
        session: a draining node answers what it read before it ends a
        session, so such a request was never served."""
        from .errors import Unavailable
        for again in (False, True):
            out: list = []
            sess = self._session()
            self._send(meta, lambda data, answer: out.append((data, answer)), batch)
            self._wait_until(lambda: bool(out))
            data, answer = out[0]
            if isinstance(answer, Unavailable) and not again and sess.broken is not None:
                continue
            if isinstance(answer, QuiverError):
                raise answer
            return data, answer

    def _forget(self, name: str) -> None:
        """Forget that name is registered, so that register() sends it again."""
        with self._registered_lock:
            for k in [k for k in self._registered if k[0] == name]:
                del self._registered[k]

    def _tasks(self):
        with self._dispatcher_lock:
            if self._closed:
                raise QuiverError("quiver: the client is closed")
            if self._dispatcher is None:
                from .tasks import Dispatcher
                self._dispatcher = Dispatcher(self)
            return self._dispatcher

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

    # Python functions.

    def register(self, fn_or_class, name: str | None = None, returns=None,
                 kind: str | None = None, *, spark: dict | None = None) -> str:
        """Register a Python function (or class) on the node; return its name.

        returns is the result type: a pyarrow DataType, a Spark DDL string
        ("double", "array<string>", "a int, b string") or a pyspark DataType.
        kind says how workers call it (docs/worker-protocol.md): "series"
        (default for functions), "iterator", "dataframe", "arrow", or "class"
        (default for classes: one instance per worker, called per task). name
        defaults to the function's __name__. Registering the same function
        under the same name again costs nothing; a changed function replaces
        the old one (calls in flight finish on the old one). The function
        travels cloudpickled: what it references by module must be importable
        by the node's workers. spark is the blob's "spark" entry for the
        accelerate wrapper: {"timezone": session zone} makes tz-aware results
        wall-clock times in that zone.
        """
        import cloudpickle

        from .types import to_arrow_type

        if not callable(fn_or_class):
            raise TypeError(f"quiver: register needs a function or a class, not {type(fn_or_class).__name__}")
        if returns is None:
            raise ValueError("quiver: register needs returns=, the result type: a Spark DDL string "
                             "such as 'double' or 'array<string>', or a pyarrow DataType")
        arrow_type = to_arrow_type(returns)
        if kind is None:
            kind = "class" if isinstance(fn_or_class, type) else "series"
        if kind not in ("series", "iterator", "dataframe", "arrow", "class", "task"):
            raise ValueError(f"quiver: kind must be series, iterator, dataframe, arrow, class or task, "
                             f"not {kind!r}")
        if name is None:
            name = getattr(fn_or_class, "__name__", None)
            if not name or name == "<lambda>":
                raise ValueError("quiver: this function has no usable __name__; pass name=")
        blob = cloudpickle.dumps({"fn": fn_or_class, "kind": kind, "returns": arrow_type, "spark": spark})
        key = (name, hashlib.sha256(blob).hexdigest()[:32])
        with self._registered_lock:
            if key in self._registered:
                return name
        header = json.dumps({
            "name": name,
            "returns": base64.b64encode(pa.schema([pa.field("result", arrow_type)]).serialize()
                                        .to_pybytes()).decode(),
        }).encode()
        answer = json.loads(self._action("register", struct.pack("<I", len(header)) + header + blob))
        with self._registered_lock:
            for k in [k for k in self._registered if k[0] == name]:
                del self._registered[k]
            self._registered[key] = answer
        return name

    def drop(self, name: str) -> None:
        """Remove a registered Python function (FunctionNotFound if there is none)."""
        self._forget(name)
        self._action("drop", name.encode())

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


def _add_call_info(info: dict, metadata) -> None:
    """Add one output batch's app_metadata ({"nulled": k, "work_ms": x}, may be empty) to info."""
    if metadata is None or not metadata.size:
        return
    try:
        m = json.loads(metadata.to_pybytes())
    except ValueError:
        return  # not ours: another engine's metadata is not an error
    if isinstance(m, dict):
        info["nulled"] += int(m.get("nulled") or 0)
        info["work_ms"] += float(m.get("work_ms") or 0.0)


def _warn_failed_rows(name: str, errors: pa.Array) -> None:
    """Warn once per batch about rows the node nulled because they failed."""
    failed = len(errors) - errors.null_count
    if failed:
        first = next(e for e in errors.to_pylist() if e is not None)
        warnings.warn(f"quiver: {name}: {failed} row(s) failed and are null; first: {first}",
                      RuntimeWarning, stacklevel=4)


def _to_wire(table: pa.Table) -> pa.Table:
    """Drop pandas metadata and narrow large string/binary columns to the node's types."""
    schema = pa.schema([pa.field(f.name, _WIRE_TYPES.get(f.type, f.type), f.nullable)
                        for f in table.schema])
    return table.cast(schema)
