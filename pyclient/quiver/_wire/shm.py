"""Large Arrow objects through shared memory, for clients on the node's host.

Over the node's unix socket, put writes a table of at least MIN_BYTES as an
Arrow IPC stream into a new file of the node's private shared-memory directory
(object_shm says where) and asks the node to adopt it (object_adopt): the node
maps the file, checks it and keeps it as the object, without a copy. get asks
where an object's file is (object_locate) and maps it: the table it reads
points into the file, without a copy. Both return None when they cannot (a TCP
client, a node without the directory, a small table, no room in /dev/shm, the
file gone because the object was spilled or freed), and the caller uses
DoPut/DoGet instead. docs/protocol.md, "Objects", has the contract.

A table read this way keeps its file's pages until it is garbage collected,
also after the node released the object or spilled it: memory the node's
object store cannot count. Set QUIVER_SHM=0 to use DoPut/DoGet only.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import weakref

import pyarrow as pa

from ..errors import InvalidArgument, QuiverError

MIN_BYTES = 1 << 20            # smaller tables go over the socket: a file costs more than it saves
MAX_BATCH_BYTES = 16 << 20     # batches written as row slices of at most this (DoGet sends one per message)
UNIX_PREFIX = "grpc+unix://"

_dirs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Connection -> the node's dir, "" for none
_dirs_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("QUIVER_SHM", "1").strip().lower() not in ("0", "off", "false", "no")


def shm_dir(conn) -> str:
    """The node's shared-memory directory as this connection can use it, or ""."""
    if not enabled() or not conn.address.startswith(UNIX_PREFIX):
        return ""
    with _dirs_lock:
        d = _dirs.get(conn)
    if d is not None:
        return d
    try:
        d = json.loads(conn.action("object_shm")).get("dir") or ""
    except (QuiverError, ValueError, AttributeError):
        d = ""  # a node that predates it, or an answer that is not JSON: no shared memory
    # Another mount namespace (a container sharing only the socket) has no such directory.
    if d and not (os.path.isabs(d) and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)):
        d = ""
    with _dirs_lock:
        _dirs[conn] = d
    return d


def put(conn, obj) -> dict | None:
    """Store a Table or RecordBatch through shared memory: the node's PutResult, or None."""
    if obj.nbytes < MIN_BYTES:
        return None
    d = shm_dir(conn)
    if not d:
        return None
    name = "put-" + secrets.token_hex(16)
    path = os.path.join(d, name)
    try:
        _write(path, obj)
    except (OSError, pa.ArrowException):  # ENOSPC (a small /dev/shm), the directory gone, ...
        _remove(path)
        return None
    except BaseException:
        _remove(path)
        raise
    try:
        return json.loads(conn.action("object_adopt", json.dumps({"file": name}).encode()))
    except InvalidArgument:
        _remove(path)  # the node removed it already
        raise
    except (QuiverError, ValueError):
        _remove(path)
        return None


def get(conn, ref) -> tuple[pa.Table, int] | None:
    """Read an arrow object by mapping its file: (table, bytes), or None."""
    d = shm_dir(conn)
    if not d:
        return None
    try:
        where = json.loads(conn.action("object_locate", json.dumps({"id": ref.id}).encode()))
        name = where.get("file") or ""
    except (QuiverError, ValueError, AttributeError):
        return None  # NOT_FOUND and the like: DoGet says it properly
    if not name or "/" in name or name in (".", ".."):
        return None  # stored by DoPut, or spilled and read back: in the node's memory
    try:
        source = pa.memory_map(os.path.join(d, name), "r")
        table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowException):  # gone meanwhile (spilled or freed): ENOENT
        return None
    return table, table.nbytes


def _write(path: str, obj) -> None:
    """Write obj to a new file at path (never an existing one) as an IPC stream."""
    table = obj if isinstance(obj, pa.Table) else pa.Table.from_batches([obj])
    rows = max(1, table.num_rows * MAX_BATCH_BYTES // max(1, table.nbytes))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:  # buffered: it writes all of a large buffer, a raw file may not
        with pa.ipc.new_stream(pa.PythonFile(f, mode="w"), table.schema) as writer:
            for batch in table.to_batches(max_chunksize=rows):
                writer.write_batch(batch)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already (the node removed it), or the directory with it
        pass
