"""The quiver client: call a node's functions over Arrow Flight, read its catalog and status.

    import quiver
    with quiver.connect() as client:             # QUIVER_ADDRESS, the local socket, or TCP
        km = client.call("haversine_km", batch)  # RecordBatch -> pyarrow.Array

A call is one DoExchange: the input's batches go out one at a time and each
result batch is read before the next input batch is written, so a large table
streams through in bounded memory and never deadlocks on flow control. One
Client holds one connection (one gRPC channel, quiver._wire.conn); it is safe
to share between threads, and each call is its own stream.

The Client is a facade: it checks options (quiver._options) and hands the
work to the layers below: the connection for calls, the catalog and actions,
quiver._registry for registering functions, quiver.objects, quiver.tasks
and quiver.lineage for objects and tasks. It holds no wire code of its own.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pandas as pd
import pyarrow as pa

from . import _options
from ._registry import Registry, arg_fields
from ._wire import local
from ._wire.address import DEFAULT_TCP_ADDRESS, default_socket, default_token, resolve_address
from ._wire.conn import Connection, Function, wire_table
from .errors import ObjectLost, QuiverError, Timeout
from .lineage import Lineages, has_lineage
from .objects import Objects, check_ref
from ._taskmap import map_tasks, wait
from .tasks import Dispatcher

__all__ = ["Client", "Function", "connect", "default_socket", "resolve_address", "DEFAULT_TCP_ADDRESS"]


def connect(address: str | None = None, token: str | None = None) -> Client:
    """Connect to a node; the token defaults to $QUIVER_TOKEN, else (for a node's unix
    socket) the token file beside the socket (quiver._wire.address.default_token).

    With an address (or $QUIVER_ADDRESS) connecting is lazy: an unreachable node
    shows up as Unavailable on the first call. With neither, it is the way
    ``ray.init()`` works: a node answering on the default socket is reused, else
    one is started for this machine (workers on this interpreter) and stopped
    when this process exits; see quiver._wire.local. Raises Unavailable when none
    answers and none can be started.
    """
    if token is None:
        token = default_token(address)
    if address is None and not os.environ.get("QUIVER_ADDRESS"):
        return Client(local.ensure_node(token), token=token)
    return Client(resolve_address(address), token=token)


class Client:
    """A connection to one quiver node. Use connect() to make one.

    ``connection`` is the wire-level connection it holds (quiver._wire.conn)."""

    def __init__(self, address: str, token: str | None = None):
        self.address = address
        self.connection = Connection(address, token)
        self._functions = Registry(self.connection)
        self._objects = Objects(self.connection, self._queue_put)
        # submit/map's queue and dispatch threads (quiver.tasks), made at the first submit,
        # with the lineage of the objects tasks make (quiver.lineage).
        self._dispatcher: Dispatcher | None = None
        self._lineages: Lineages | None = None
        self._lock = threading.Lock()
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
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, None
            self._closed = True
        if dispatcher is not None:
            dispatcher.close()
        self.connection.close()

    # Calls.

    def call(self, name: str, data, *, rows_per_task: int | None = None,
             retries: int | None = None, on_error: str | None = None,
             timeout: float | None = None, info: bool = False):
        """Call function `name`; the columns of `data` are its arguments, by position.

        RecordBatch -> pyarrow.Array; Table -> pyarrow.ChunkedArray (one chunk per
        input batch); pandas DataFrame -> pandas Series with the frame's index.
        rows_per_task, retries and on_error are passed to the node; with
        on_error="null" rows that failed come back null, with a RuntimeWarning
        quoting the node's message. timeout (seconds) bounds the whole call on
        both sides. With info=True the answer is (result, info): what the node
        reported about this call, {"nulled": rows nulled by on_error="null",
        "work_ms": milliseconds spent in Python functions, "solo_ms": what
        its batches would have cost each as one task}.
        """
        if rows_per_task is None and retries is None and on_error is None and timeout is None:
            options = self.connection.plain  # nothing to check or send
        else:
            opts = _options.check("quiver", rows_per_task=rows_per_task, retries=retries,
                                  on_error=on_error, timeout=timeout)
            options = self.connection.call_options(_options.call_headers(opts), timeout)
        start = time.monotonic()
        try:
            result, call_info = self._call(name, data, options)
        except QuiverError as e:
            # A deadline that passes while the stream is torn down can reach
            # pyarrow as a cancelled call rather than a timeout.
            if timeout is not None and not isinstance(e, Timeout) and time.monotonic() - start >= timeout:
                raise Timeout(f"{name}: no answer within {timeout} s ({e})") from e
            raise
        return (result, call_info) if info else result

    def _call(self, name: str, data, options):
        exchange = self.connection.exchange
        if isinstance(data, pa.RecordBatch):
            chunks, _, call_info = exchange(name, data.schema, [data], options)
            return chunks[0], call_info
        if isinstance(data, pa.Table):
            chunks, out_type, call_info = exchange(name, data.schema, data.to_batches(), options)
            return pa.chunked_array(chunks, type=out_type), call_info
        if isinstance(data, pd.DataFrame):
            table = wire_table(pa.Table.from_pandas(data, preserve_index=False))
            chunks, out_type, call_info = exchange(name, table.schema, table.to_batches(), options)
            series = pa.chunked_array(chunks, type=out_type).to_pandas()
            series.index = data.index
            series.name = name
            return series, call_info
        raise TypeError(f"quiver: cannot call with {type(data).__name__}; "
                        "pass a pyarrow RecordBatch or Table, or a pandas DataFrame")

    # Tasks and objects (quiver.tasks, quiver.objects, quiver.lineage).

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

    def options(self, *, retries: int | None = None, concurrency: int | None = None):
        """submit, map and remote with settings of their own, like Ray's
        f.options(): ``client.options(retries=0).submit(fn, x)``. retries is how
        often the node runs a task again when its worker dies (default 3;
        0: never, for tasks that must not run twice). concurrency=N runs up to
        N of the function's tasks at once in each worker, on threads (an
        ``async def`` function's awaited together): for tasks that wait."""
        return TaskOptions(self, retries=retries, concurrency=concurrency)

    def remote(self, fn, /, *args, **kwargs):
        """Run fn(*args, **kwargs) like submit, but keep the result on the node:
        return an ObjectRef to it (Ray's f.remote()). Pass the ref to other tasks
        (they read it on the node, not through this process) or get() it. If the
        node loses it (a restart), reading it runs the task again: see
        quiver.lineage. ref.wait() waits for the task and raises its error."""
        return self._lineage().remote(fn, args, kwargs)

    def map(self, fn, items, *more_items, ordered: bool = True):
        """fn(item) for each item on the node's workers, as an iterator of results.

        With several iterables fn takes one argument from each, like the builtin
        map (map(f, grid, itertools.repeat(ref)): ObjectRef arguments are resolved
        as for submit). ordered=True yields in input order; ordered=False as
        tasks finish. The tasks are submitted at once (a window of 20,000 at a
        time); an exception in a task is raised by the iterator when its result
        is reached; leaving the loop early cancels the tasks not yet started.
        """
        return map_tasks(self._tasks(), fn, items, more_items, ordered=ordered)

    def wait(self, futures, timeout: float | None = None, return_when: str = "ALL_COMPLETED"):
        """Wait for futures like concurrent.futures.wait; return (done, not_done)."""
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
        return self._objects.put(obj)

    def get(self, ref):
        """Read an object back: a pyarrow Table for Arrow objects, the unpickled
        object for others; a list of refs gives a list. ObjectLost if the node
        does not hold it (released, or lost with a node that stopped)."""
        if isinstance(ref, (list, tuple)):
            return [self.get(r) for r in ref]
        ref = check_ref(ref)
        try:
            return self._objects.get(ref)
        except ObjectLost:
            if not has_lineage(ref):
                raise
        self._lineage().recompute(ref)  # made by a task: make it again
        return self._objects.get(ref)

    def release(self, ref) -> None:
        """Drop an object (or a list of them) from the node; ObjectLost if it is not there."""
        self._objects.release(list(ref) if isinstance(ref, (list, tuple)) else [ref])

    def _tasks(self) -> Dispatcher:
        with self._lock:
            if self._closed:
                raise QuiverError("quiver: the client is closed")
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(self.connection, self._functions)
                self._lineages = Lineages(self._dispatcher)
            return self._dispatcher

    def _lineage(self) -> Lineages:
        self._tasks()
        return self._lineages

    def _queue_put(self, obj_id: str, data: bytes):
        return self._tasks().put(obj_id, data)

    # Catalog and administration.

    def functions(self) -> list[Function]:
        """Every function the node serves (ListFlights), sorted by name."""
        return self.connection.functions()

    def status(self) -> dict:
        """The cluster's status (the cluster_status action): {"nodes": [...], ...}."""
        return json.loads(self.connection.action("cluster_status"))

    def health(self) -> dict:
        """The node's health (the health action): {"status": "serving" | "draining", "version": ...}."""
        return json.loads(self.connection.action("health"))

    # Python functions.

    def register(self, fn_or_class, name: str | None = None, returns=None,
                 kind: str | None = None, *, spark: dict | None = None, args=None,
                 concurrency: int | None = None) -> str:
        """Register a Python function (or class) on the node; return its name.

        returns is the result type: a pyarrow DataType, a Spark DDL string
        ("double", "array<string>", "a int, b string") or a pyspark DataType.
        kind says how workers call it (docs/worker-protocol.md): "series"
        (default for functions), "iterator", "arrow", or "class" (default
        for classes: one instance per worker, called per task). name
        defaults to the function's __name__. Registering the same function
        under the same name again costs nothing; a changed function replaces
        the old one (calls in flight finish on the old one). The function
        travels cloudpickled: what it references by module must be importable
        by the node's workers. spark is the blob's "spark" entry for the
        accelerate wrapper: {"timezone": session zone} makes tz-aware results
        wall-clock times in that zone. args declares the argument types, which
        the catalog (GetFlightInfo, ListFlights) advertises to other engines'
        callers and the node checks calls against: a list of types (Spark DDL,
        pyarrow or pyspark) or a dict of name -> type; without it, the
        function's type hints declare them when each names a type (e.g.
        ``def f(x: "double", y: pa.string())``), else none are advertised and
        any arguments are accepted. concurrency=N (for a function that waits:
        an HTTP call, a database) makes each worker run up to N rows of it at
        once, on threads, or awaited together for an ``async def``; results
        stay in row order (docs/worker-protocol.md, LOAD).
        """
        return self._functions.register(fn_or_class, name, returns, kind, spark=spark,
                                        args=arg_fields(fn_or_class, args), concurrency=concurrency)

    def drop(self, name: str) -> None:
        """Remove a registered Python function (FunctionNotFound if there is none)."""
        self._functions.drop(name)


class TaskOptions:
    """Client.options(retries=N, concurrency=N): submit, map and remote with settings of their own."""

    def __init__(self, client: Client, retries: int | None = None, concurrency: int | None = None):
        checked = _options.check("quiver", retries=retries, concurrency=concurrency)
        self.retries, self.concurrency = checked["retries"], checked["concurrency"]
        self._client = client

    def submit(self, fn, /, *args, **kwargs):
        """Client.submit with these options."""
        return self._client._tasks().submit(fn, args, kwargs, retries=self.retries,
                                            concurrency=self.concurrency)

    def map(self, fn, items, *more_items, ordered: bool = True):
        """Client.map with these options."""
        return map_tasks(self._client._tasks(), fn, items, more_items, ordered=ordered,
                         retries=self.retries, concurrency=self.concurrency)

    def remote(self, fn, /, *args, **kwargs):
        """Client.remote with these options."""
        return self._client._lineage().remote(fn, args, kwargs, retries=self.retries,
                                              concurrency=self.concurrency)
