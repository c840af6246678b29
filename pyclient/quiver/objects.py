"""Objects: data stored once on a node and read many times by reference.

    ref = client.put(table)        # a pyarrow Table or RecordBatch: stored as Arrow
    ref = client.put(model)        # anything else: cloudpickled, stored as a blob
    client.get(ref)                # the Table, or the unpickled object
    ref.release()                  # drop it from the node (or `with client.put(x) as ref:`)

    quiver.get(ref)                # inside a UDF or a task: read a broadcast object,
                                   # cached by id in this process

An ObjectRef is small and picklable: pass it to tasks (client.submit(fn, ref):
the worker resolves it before calling fn) or close over it in a UDF and call
quiver.get(ref) there. Objects are immutable, so a process caches what it
read by id (`quiver.get`, and the task arguments a worker resolves). A
Client's own `get` asks the node, except that over the node's same-host
lane (quiver._wire.lane) a small pickled object read before is served from
memory while the node's generation table says it is still published: never
after its release or the node's end.

Wire (docs/protocol.md, "Objects" and "Sessions"): an Arrow `put` from the
node's own host writes the table to a file in the node's shared-memory
directory and has the node adopt it (quiver._wire.shm); otherwise it is a DoPut on
PATH ["objects"] of the table's own batches, without a copy on this side (a
batch over 16 MiB goes as zero-copy row slices, below the node's message
limit). A pickle up to 4 MiB is queued like a task and goes out on the
connection's session, several in one `put` request, without waiting for the
answer (its failure is raised by the ref's next use: ref.wait(), get,
release, passing it to a task); a larger one is a DoPut of
one large_binary column, "blob", whose rows are consecutive pieces of the
pickle. `get` of a pickled object is a session `get` (DoGet past 256 MiB), of
an Arrow object a mapping of its shared-memory file or DoGet(ticket = id);
`release` is a session `release`.

Lost objects: a node keeps objects in memory (spilling to disk) until they are
released or the node stops; they do not survive a restart. Objects live on
the node, never in a worker, so a worker that dies loses none. Reading an id
the node does not know (released, or lost with a node that died and came
back) raises ObjectLost naming the id; a node that cannot be reached raises
Unavailable. An object made by a task (Client.remote) is made again instead:
see quiver.lineage. An object someone put cannot be, and is reported.

Across a cluster: an id names the node that owns the object ("OWNER.HEX", the
owner tag of that node; a client that names an object itself asks its node
for the tag once, with `health`). A worker reads from its own node, which
pulls the object from the owner once and keeps a copy for its other readers,
checking with the owner before each read: an object its owner released, or
whose owner died or cannot be reached, raises ObjectLost on every node.

Layer: above the wire (quiver._wire), below tasks, lineage and the Client.
An ``Objects`` holds one Connection; reading objects in a UDF or a task uses
this process's shared connection (quiver._wire.conn.shared). Importing this
module installs quiver.get as the reader of ObjectRef task arguments
(quiver._taskrows).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import secrets
import struct
import weakref
from typing import Any, Callable

import pyarrow as pa
import pyarrow.flight as flight

from . import _taskrows
from ._valuecache import ValueCache
from ._wire import shm as _shm
from ._wire.address import default_token
from ._wire.conn import Connection, shared
from ._wire.session import SCHEMA as SESSION_SCHEMA
from ._wire.session import SessionError
from .errors import FunctionNotFound, ObjectLost, QuiverError, Unavailable, mapped_errors, translate

__all__ = ["ObjectRef", "Objects", "StoreResult", "get", "clear_cache"]

OBJECTS_PATH = "objects"
BLOB_COLUMN = "blob"
BLOB_SCHEMA = pa.schema([pa.field(BLOB_COLUMN, pa.large_binary())])
_LARGE_BINARY = pa.large_binary()
MAX_PUT_BATCH_BYTES = 16 << 20   # larger batches go as row slices (the node takes up to 512 MiB a message)
BLOB_PIECE_BYTES = 256 << 20     # a pickle longer than this goes as several rows
CACHE_MAX_OBJECTS = 64           # quiver.get's per-process cache: least recently used out first
CACHE_MAX_BYTES = 4 << 30
SESSION_PUT_BYTES = 4 << 20      # a pickle up to this size is put over the session, without waiting


class ObjectRef:
    """A reference to an object stored on a quiver node.

    id: the object's id, "OWNER.HEX": the owner tag of the node that stores it
    (16 hex digits; any node of its cluster pulls it from there) and 32 hex digits
    (older nodes: 32 hex digits alone); kind: "arrow" (get gives a
    pyarrow Table) or "pickle" (get gives the unpickled object); address: the
    node that holds it, as a Flight location. Picklable and hashable (by id and
    address); ``release()`` drops the object from its node, and so does leaving
    ``with client.put(x) as ref:``. rows and nbytes are what the node reported
    at put (rows of the table, or pieces of the pickle; the bytes it counts
    against its memory); they do not travel when a ref is pickled.
    """

    __slots__ = ("id", "kind", "address", "rows", "nbytes", "_conn", "_put", "_lineage")

    def __init__(self, id: str, kind: str, address: str, rows: int | None = None,
                 nbytes: int | None = None, conn: Connection | None = None):
        if kind not in ("arrow", "pickle"):
            raise ValueError(f"quiver: an ObjectRef's kind is 'arrow' or 'pickle', not {kind!r}")
        self.id = id
        self.kind = kind
        self.address = address
        self.rows = rows
        self.nbytes = nbytes
        # The connection that put it (its token, its channel), while it lives; not pickled.
        self._conn = weakref.ref(conn) if conn is not None else None
        self._put = None  # a put not yet answered, or a task still making it
        self._lineage = None  # the task that made it (quiver.lineage), for recomputing it

    def wait(self) -> ObjectRef:
        """Wait for the node's answer to the put that made this ref (or for the
        task, for Client.remote); raise its error (OverCapacity, UDFError, ...)
        if it failed. get, release and pickling the ref (passing it to a task)
        wait the same way."""
        if self._put is not None:
            self._put.wait(self)
            self._put = None
        return self

    def __reduce__(self):
        self.wait()  # whoever unpickles it may read it from the node at once
        return (ObjectRef, (self.id, self.kind, self.address))

    def __repr__(self) -> str:
        return f"ObjectRef({self.id!r}, kind={self.kind!r}, address={self.address!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectRef) and (self.id, self.address) == (other.id, other.address)

    def __hash__(self) -> int:
        return hash((self.id, self.address))

    def __enter__(self) -> ObjectRef:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.release()
        except ObjectLost:
            pass  # released already, or gone with its node

    def release(self) -> None:
        """Drop the object from its node; a later get raises ObjectLost (so does a second release)."""
        release(_conn_of(self), [self])


class Objects:
    """Objects on one connection's node: what Client.put/get/release do.

    queue_put(id, data) -> Future sends a small pickle without waiting (the
    task dispatcher's queue, quiver.tasks); the Client passes it in.
    """

    def __init__(self, conn: Connection, queue_put: Callable[[str, bytes], Any]):
        self.conn = conn
        self._queue_put = queue_put

    def put(self, obj: Any) -> ObjectRef:
        """Store obj on the node: Arrow data as Arrow, anything else cloudpickled."""
        conn = self.conn
        if not isinstance(obj, (pa.Table, pa.RecordBatch)):
            return self._put_pickled(obj)
        if isinstance(obj, pa.Table):
            schema, batches = obj.schema, _put_batches(obj.to_batches())
        else:
            schema, batches = obj.schema, _put_batches([obj])
        # Through shared memory where it can (quiver._wire.shm: a large table, on the node's host).
        answer = _shm.put(conn, obj) or _do_put(conn, schema, batches)
        return ObjectRef(answer["id"], "arrow", conn.address, rows=answer.get("rows"),
                         nbytes=answer.get("bytes"), conn=conn)

    def _put_pickled(self, obj: Any) -> ObjectRef:
        """A pickled object: over the session, without waiting, when small; else DoPut."""
        conn = self.conn
        try:
            data = _dumps(obj)
        except Exception as e:
            raise TypeError(f"quiver: put cannot pickle {type(obj).__name__}: {e}") from e
        if len(data) > SESSION_PUT_BYTES:
            answer = _do_put(conn, BLOB_SCHEMA, _blob_batches(data))
            return ObjectRef(answer["id"], "pickle", conn.address, rows=answer.get("rows"),
                             nbytes=answer.get("bytes"), conn=conn)
        ref = ObjectRef(new_id(conn), "pickle", conn.address, nbytes=len(data), conn=conn)
        ref._put = _PutState(self._queue_put(ref.id, data))
        return ref

    def get(self, ref: ObjectRef) -> Any:
        """Read ref (waited for) from the node, without the process cache; ObjectLost if lost."""
        return fetch(self.conn, check_ref(ref).wait())[0]

    def release(self, refs: list[ObjectRef]) -> None:
        release(self.conn, refs)


class StoreResult:
    """A task's instruction to keep its result on its worker's node as object ``id``
    (quiver.lineage): travels in the task's payload, called in the worker."""

    __slots__ = ("id",)

    def __init__(self, id: str):
        self.id = id

    def __reduce__(self):
        return (StoreResult, (self.id,))

    def __call__(self, value) -> None:
        try:
            data = _dumps(value)
        except Exception as e:
            raise TypeError(f"cannot pickle the result ({type(value).__name__}): {e}") from e
        batch = pa.RecordBatch.from_arrays([_one_row(memoryview(data))], schema=SESSION_SCHEMA)
        try:
            _process_conn(None).ask({"op": "put", "id": self.id}, batch)
        except SessionError as e:
            if e.code != "AlreadyExists":  # a retry, or a recomputation, of a task that stored it
                raise


def _dumps(value) -> bytes:
    import cloudpickle
    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class _PutState:
    """A put sent without waiting: its future is done when the node answered."""

    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future

    def wait(self, ref: ObjectRef) -> None:
        try:
            self.future.result()
        except QuiverError as e:
            raise type(e)(f"quiver: put of object {ref.id} failed: {e.message}") from e


def get(ref_or_refs, *, client=None):
    """Read an object (or a list of them) by reference, cached by id in this process.

    For code inside a UDF or a task: the reference's object is read once per
    process (from $QUIVER_ADDRESS, this worker's own node, if set; else from the
    node the reference names) and then served from memory, since objects never
    change. Raises ObjectLost when the node does not know the id. The driver
    usually wants Client.get, which does not cache.
    """
    if isinstance(ref_or_refs, (list, tuple)):
        return [get(r, client=client) for r in ref_or_refs]
    ref = check_ref(ref_or_refs)

    def read():
        conn = _local_conn(ref) if client is None else getattr(client, "connection", client)
        return fetch(conn, ref)
    return _cache.get_or_read((ref.id, ref.address), read)


def clear_cache() -> None:
    """Forget every object quiver.get (and task argument resolution) cached in this process."""
    _cache.clear()


def new_id(conn: Connection) -> str:
    """A new id for an object this client names itself: "OWNER.HEX" with the owner
    tag of conn's node, so that the other nodes of its cluster can pull it."""
    owner = conn.owner()
    return f"{owner}.{secrets.token_hex(16)}" if owner else secrets.token_hex(16)


def owned(object_id: str) -> bool:
    """Whether an id names its owner node ("OWNER.REST"), which any node of the
    cluster pulls it from."""
    tag, dot, rest = object_id.partition(".")
    return bool(dot and rest and _OWNER_TAG.fullmatch(tag))


_OWNER_TAG = re.compile(r"[0-9a-f]{16}")


def fetch(conn: Connection, ref: ObjectRef) -> tuple[Any, int]:
    """Read ref from conn's node; (value, bytes read). An id that names its owner is
    pulled by conn's node from the owner when both are in one cluster; when conn's
    node lacks it (another cluster, or none), and for an older id, which names no
    owner, the node the ref names is asked. A node there that cannot be reached
    leaves the first ObjectLost standing: the object is lost, not the call."""
    try:
        return _do_get(conn, ref)
    except ObjectLost as lost:
        if _same_node(conn.address, ref.address):
            raise
        # Not on this node: ask the node that stored it.
        try:
            return _do_get(_process_conn(ref.address), ref)
        except Unavailable:
            if owned(ref.id):
                raise lost from None
            raise


def release(conn: Connection, refs: list[ObjectRef]) -> None:
    """Drop refs from conn's node, all requests sent before any answer is awaited."""
    refs = [check_ref(r) for r in refs]
    for ref in refs:
        ref.wait()
    answers: list = []
    for ref in refs:
        conn.send({"op": "release", "id": ref.id}, lambda _d, a, ref=ref: answers.append((ref, a)))
    conn.wait_until(lambda: len(answers) == len(refs))
    for ref in refs:
        _cache.forget((ref.id, ref.address))
    for ref, a in answers:
        if isinstance(a, FunctionNotFound):  # NOT_FOUND: no such object
            raise ObjectLost(f"object {ref.id}: {a.message}", ref.id) from a
        if isinstance(a, QuiverError):
            raise a


# Wire.

def _put_batches(batches):
    """The batches to send: each as it is, or, past MAX_PUT_BATCH_BYTES, as zero-copy row slices."""
    for b in batches:
        size = b.nbytes
        if size <= MAX_PUT_BATCH_BYTES or b.num_rows <= 1:
            yield b
            continue
        step = max(1, b.num_rows * MAX_PUT_BATCH_BYTES // size)
        for offset in range(0, b.num_rows, step):
            yield b.slice(offset, step)


def _blob_batches(data: bytes):
    """A pickle as batches of one row each: pieces of at most BLOB_PIECE_BYTES."""
    view = memoryview(data)
    pieces = [view[i:i + BLOB_PIECE_BYTES] for i in range(0, len(data), BLOB_PIECE_BYTES)] or [view]
    for piece in pieces:
        yield pa.RecordBatch.from_arrays([_one_row(piece)], schema=BLOB_SCHEMA)


def _one_row(piece: memoryview) -> pa.Array:
    """piece as a large_binary array of one row, without a copy (it points into piece)."""
    offsets = pa.py_buffer(struct.pack("<2q", 0, len(piece)))
    return pa.Array.from_buffers(_LARGE_BINARY, 1, [None, offsets, pa.py_buffer(piece)])


def _do_put(conn: Connection, schema: pa.Schema, batches) -> dict:
    descriptor = flight.FlightDescriptor.for_path(OBJECTS_PATH)
    with mapped_errors():
        writer, reader = conn.flight.do_put(descriptor, schema, conn.plain)
    try:
        for batch in batches:
            writer.write_batch(batch)
        writer.done_writing()
        meta = reader.read()
    except (pa.ArrowException, flight.FlightError) as e:
        # The node's status (e.g. over capacity) is in close(), not in the failed write.
        try:
            writer.close()
        except (pa.ArrowException, flight.FlightError) as e2:
            raise translate(e2) from e2
        raise translate(e) from e
    except BaseException:
        try:
            writer.close()
        except Exception:
            pass
        raise
    with mapped_errors():
        writer.close()
    if meta is None:
        raise QuiverError("quiver: the node answered DoPut without a PutResult")
    try:
        answer = json.loads(meta.to_pybytes())
        answer["id"]
    except (ValueError, KeyError, TypeError):
        raise QuiverError(f"quiver: the node's PutResult is not JSON with an id: {meta.to_pybytes()[:200]!r}") from None
    return answer


def _do_get(conn: Connection, ref: ObjectRef) -> tuple[Any, int]:
    if ref.kind == "pickle":
        stamps = conn.stamps()  # over the lane: objects read before, kept while their stamp holds
        if stamps is not None:
            kept = stamps.lookup(ref.id)
            if kept is not None:
                return pickle.loads(kept), len(kept)
        try:
            data, answer = conn.ask({"op": "get", "id": ref.id})
        except FunctionNotFound as e:  # NOT_FOUND: an unknown object
            raise _lost(conn, ref, e) from e
        except SessionError as e:
            if e.code != "FailedPrecondition":
                raise
            # Too large for one session answer: DoGet below.
        else:
            col = data.column(0)
            if len(col) == 1 and not col.null_count:  # the usual answer: one row, read in place
                offsets = memoryview(col.buffers()[1]).cast("q")
                body = memoryview(col.buffers()[2])[offsets[col.offset]:offsets[col.offset + 1]]
                stamps = conn.stamps()
                if stamps is not None and "slot" in answer:
                    stamps.keep(ref.id, int(answer["slot"]), int(answer["gen"]), body)
                return pickle.loads(body), len(body)
            return _unpickle_blob(pa.Table.from_batches([data]).rename_columns([BLOB_COLUMN]), ref)
    if ref.kind == "arrow":
        mapped = _shm.get(conn, ref)  # the object's file in shared memory, where it has one
        if mapped is not None:
            return mapped
    try:
        with mapped_errors():
            table = conn.flight.do_get(flight.Ticket(ref.id.encode()), conn.plain).read_all()
    except FunctionNotFound as e:  # NOT_FOUND on DoGet: an unknown object
        raise _lost(conn, ref, e) from e
    if ref.kind == "arrow":
        return table, table.nbytes
    return _unpickle_blob(table, ref)


def _unpickle_blob(table: pa.Table, ref: ObjectRef) -> tuple[Any, int]:
    if table.schema.names != [BLOB_COLUMN] or not pa.types.is_large_binary(table.schema.field(0).type):
        raise QuiverError(f"quiver: object {ref.id} is not a pickled object (its schema is {table.schema})")
    pieces = []
    for chunk in table.column(0).chunks:
        offsets = chunk.buffers()[1]
        data = chunk.buffers()[2]
        offs = memoryview(offsets).cast("q")
        for i in range(chunk.offset, chunk.offset + len(chunk)):
            pieces.append(memoryview(data)[offs[i]:offs[i + 1]] if data is not None else b"")
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return pickle.loads(body), len(body)


def _lost(conn: Connection, ref: ObjectRef, e: QuiverError) -> ObjectLost:
    return ObjectLost(f"object {ref.id} is lost: the node at {conn.address} does not hold it "
                      f"(released, or lost with a node that stopped): {e.message}", ref.id)


def ref_args(args, kwargs) -> list[ObjectRef]:
    """The ObjectRef arguments of a call (top-level positional arguments and keyword
    values): those a worker resolves."""
    return [a for a in (*(args or ()), *(kwargs or {}).values()) if isinstance(a, ObjectRef)]


def check_ref(ref) -> ObjectRef:
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"quiver: expected an ObjectRef (from Client.put), not {type(ref).__name__}")
    return ref


def _same_node(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


# Per-process connections and cache.

_cache = ValueCache(CACHE_MAX_OBJECTS, CACHE_MAX_BYTES)  # quiver.get's: (id, address) -> value


def _process_conn(address: str | None) -> Connection:
    """This process's shared connection to address (None: $QUIVER_ADDRESS), with $QUIVER_TOKEN
    (else the token file beside a unix socket)."""
    return shared(address, default_token(address))


def _local_conn(ref: ObjectRef) -> Connection:
    """The node to read ref from: this worker's own ($QUIVER_ADDRESS), else the ref's."""
    if os.environ.get("QUIVER_ADDRESS"):
        return _process_conn(None)
    return _conn_of(ref)


def _conn_of(ref: ObjectRef) -> Connection:
    """The live connection that put ref (open), else this process's connection to its address."""
    c = ref._conn() if ref._conn is not None else None
    if c is not None and not c.closed:
        return c
    return _process_conn(ref.address)


_taskrows.install_ref_reader(ObjectRef, get)
