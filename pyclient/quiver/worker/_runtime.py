"""The worker runtime: frames, the arena, and running a loaded function on a task's batch."""

from __future__ import annotations

import inspect
import json
import mmap
import os
import pickle
import platform
import socket
import struct
import sys
import time
import traceback

import cloudpickle  # noqa: F401  (unpickling a blob may need it; import it before READY)
import pyarrow as pa

from .. import _concurrent
from .._concurrent import wait
from .._convert import arrow_to_pandas, pandas_to_arrow
from .._options import KINDS
from .._taskcontext import running
from .._taskrows import run_task_rows
from .._util import concat_parts, error_fields, return_type_error, send_all
from ._ipc import EOS, read_batch, release, write_stream
from . import _lease, _slices
from ._parts import PartsError, parts_of, run_parts
from ._slices import concurrency_of, row_wise, run_slices
from ._table import table_result, table_schema

LOAD, TASK, SHUTDOWN, LEASE = 1, 2, 3, _lease.LEASE
READY, RESULT, ERROR, LEASE_END = 10, 11, 12, _lease.LEASE_END

PREFIX = struct.Struct("<B3xIQ")
MAX_HEADER = 1 << 20
MAX_BODY = 2 << 30
CONTROL_FD = 3
ARENA_FD = 4
ARENA_ALIGN = 64  # where the result goes after the arguments
_SKIP = frozenset({__file__, _concurrent.__file__, _slices.__file__})  # the worker's own frames, left out of tracebacks


class ProtocolError(Exception):
    """The node sent something the protocol does not allow; the worker exits."""


class _Function:
    """A loaded blob: the callable, how to call it and what it returns."""

    __slots__ = ("name", "fn", "kind", "returns", "schema", "schema_msg", "timezone", "instance", "load_error",
                 "concurrency")

    def __init__(self, name: str):
        self.name = name
        self.fn = None
        self.kind = None
        self.returns = None
        self.schema = None
        self.schema_msg = None  # the schema as an IPC message, made at the first result
        self.timezone = None
        self.instance = None
        self.load_error = None  # (type, message, traceback) when the blob could not be loaded
        self.concurrency = 1  # rows (or slices) run at once, from LOAD (quiver.worker._slices)


def load_blob(name: str, blob: bytes) -> _Function:
    """Unpickle a registered blob. A failure (e.g. a module missing here) is kept
    and reported by every task that uses the function."""
    f = _Function(name)
    try:
        spec = pickle.loads(blob)
        if not isinstance(spec, dict) or "fn" not in spec:
            raise TypeError(f"a function blob must be a dict with 'fn', 'kind' and 'returns', "
                            f"not {type(spec).__name__}")
        kind = spec.get("kind") or ("class" if isinstance(spec["fn"], type) else "series")
        if kind not in KINDS:
            raise ValueError(f"unknown function kind {kind!r}; expected one of {', '.join(KINDS)}")
        returns = spec.get("returns")
        if returns is not None and not isinstance(returns, pa.DataType):
            from ..types import to_arrow_type
            returns = to_arrow_type(returns)
        f.fn, f.kind, f.returns = spec["fn"], kind, returns
        if returns is not None:
            f.schema = table_schema(returns) if kind == "table" else pa.schema([pa.field("result", returns)])
        spark = spec.get("spark") or {}
        f.timezone = spark.get("timezone") if isinstance(spark, dict) else None
    except BaseException as e:  # noqa: BLE001  (SystemExit from a module body counts too)
        if isinstance(e, KeyboardInterrupt):
            raise
        f.load_error = (type(e).__name__,
                        f"cannot load function {name!r}: {type(e).__name__}: {e}",
                        traceback.format_exc())
    return f


class Worker:
    """One control channel and the functions loaded on it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=1 << 16)
        self.prefix = bytearray(PREFIX.size)
        self.functions: dict[str, _Function] = {}
        self.arena = None  # the mmap of fd 4, mapped at the first TASK that names a size
        self.arena_size = 0  # the node's size of the arena, from the last TASK
        self.pins: list[memoryview] = []  # arena arguments user code still holds
        self.leases = _lease.channel()  # fd 5: where leased sockets come (quiver.worker._lease)

    # Frames.

    def read_frame(self):
        """(kind, header dict, body) or None at end of file."""
        n = self.rfile.readinto(self.prefix)
        if n == 0:
            return None
        if n != PREFIX.size:
            self._read_rest(memoryview(self.prefix)[n:])
        kind, hlen, blen = PREFIX.unpack(self.prefix)
        if kind not in (LOAD, TASK, SHUTDOWN, LEASE):
            raise ProtocolError(f"unexpected frame kind {kind}")
        if self.prefix[1] or self.prefix[2] or self.prefix[3]:
            raise ProtocolError("reserved bytes not zero")
        if hlen > MAX_HEADER or blen > MAX_BODY:
            raise ProtocolError(f"frame too large: header {hlen} bytes, body {blen} bytes")
        header = self._read_exact(hlen)
        try:
            header = json.loads(header) if hlen else {}
        except ValueError as e:
            raise ProtocolError(f"bad frame header: {e}") from None
        if not isinstance(header, dict):
            raise ProtocolError("frame header is not a JSON object")
        # A fresh buffer per body: Arrow arrays (and Series made from them without
        # a copy) point into it, and user code may keep them past the task.
        body = self._read_exact(blen) if blen else b""
        return kind, header, body

    def _read_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        got = self.rfile.readinto(buf)
        if got != n:
            self._read_rest(memoryview(buf)[got:])
        return buf

    def _read_rest(self, view: memoryview) -> None:
        while len(view):
            got = self.rfile.readinto(view)
            if not got:
                raise ProtocolError("end of file inside a frame")
            view = view[got:]

    def send(self, kind: int, header: dict, body=()) -> None:
        """Send one frame; body is a list of buffers (bytes, pyarrow.Buffer), sent without copies."""
        h = json.dumps(header, separators=(",", ":")).encode()
        views = [memoryview(b) for b in body]
        blen = sum(v.nbytes for v in views)
        send_all(self.sock, [PREFIX.pack(kind, len(h), blen) + h, *views])

    # The loop.

    def serve(self) -> int:
        self.send(READY, {"pid": os.getpid(), "python": platform.python_version(),
                          "lease": self.leases is not None})
        while True:
            frame = self.read_frame()
            if frame is None:
                return 0
            kind, header, body = frame
            if kind == SHUTDOWN:
                return 0
            if kind == LEASE:
                if self.leases is None:
                    raise ProtocolError("LEASE, but this worker has no lease channel (fd 5)")
                self._release_pins()
                self.send(LEASE_END, _lease.serve(self.leases, header, self.functions.get(str(header.get("fn", "")))))
                continue
            if kind == LOAD:
                fn_id = str(header.get("fn", ""))
                if fn_id not in self.functions:
                    try:
                        n = concurrency_of(header)
                    except ValueError as e:
                        raise ProtocolError(str(e)) from None
                    f = self.functions[fn_id] = load_blob(str(header.get("name") or fn_id), body)
                    f.concurrency = n
                    if row_wise(f.fn):
                        f.fn.concurrency = n
                continue
            self.run_task(header, body)

    def run_task(self, header: dict, body) -> None:
        task = header.get("task")
        view = None  # the arguments in the arena
        out_off = 0  # where the result may go in the arena
        if "arena_size" in header:
            self._map_arena(header["arena_size"])
        if header.get("arena") is not None:
            view, out_off = self._arena_view(header["arena"])
            body = view
        self._release_pins()
        kind, reply, parts = self._answer(task, header, body, out_off)
        body = None
        if view is not None:
            # Nothing of this task is left but what user code kept (a class that
            # stores its input, a global): then the node must not overwrite it.
            if not release(view):
                self.pins.append(view)
            view = None
        self._release_pins()  # the task may have let go of earlier ones
        if self.pins:
            reply["pinned"] = True
        self.send(kind, reply, parts)

    def _answer(self, task, header: dict, body, out_off: int):
        """Run the task: (RESULT or ERROR, header, body parts)."""
        fn_id = str(header.get("fn", ""))
        f = self.functions.get(fn_id)
        try:
            if f is None:
                raise LookupError(f"function {fn_id!r} was not loaded on this worker "
                                  "(the node sends LOAD before the first TASK)")
            if f.load_error is not None:
                etype, msg, tb = f.load_error
                return ERROR, {"task": task, "type": etype, "message": msg, "traceback": tb,
                               "fn": f.name}, ()
            batch = read_batch(body)
            rows = batch.num_rows
            try:
                parts = parts_of(header, rows)
            except PartsError as e:
                raise ProtocolError(str(e)) from None
            with running(header.get("context")):
                if parts is None:
                    result, ms = self.call(f, batch)
                else:
                    result, ms, outcomes = run_parts(lambda b: self.call(f, b), batch, parts,
                                                     f.schema.field(0).type, f.name, _SKIP)
            reply = {"task": task, "rows": rows, "ms": ms}
            if parts is not None:
                reply["parts"] = outcomes
            return RESULT, reply, self._result_parts(f, result, reply, out_off)
        except BaseException as e:  # noqa: BLE001  (sys.exit in user code is an error, not an exit)
            if isinstance(e, (KeyboardInterrupt, ProtocolError)):
                raise
            return ERROR, {"task": task, **error_fields(e, f.name if f is not None else fn_id, _SKIP)}, ()

    # The arena.

    def _map_arena(self, size) -> None:
        """Map fd 4 at the node's size of it, again when the node grew it."""
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ProtocolError(f"bad arena_size {size!r}")
        if self.arena is None or size > len(self.arena):
            try:
                mm = mmap.mmap(ARENA_FD, size, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
            except (OSError, ValueError) as e:
                raise ProtocolError(f"cannot map the arena (fd {ARENA_FD}, {size} bytes): {e}") from None
            old, self.arena = self.arena, mm
            if old is not None:
                try:
                    old.close()
                except BufferError:
                    pass  # pinned arguments use it; it goes with them
        self.arena_size = size

    def _arena_view(self, rng):
        """The arguments' bytes in the arena, and where the result may start."""
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in rng)):
            raise ProtocolError(f"bad arena range {rng!r}")
        off, n = rng
        if self.arena is None or off + n > self.arena_size:
            raise ProtocolError(f"arena range [{off}, {off + n}) outside the arena of {self.arena_size} bytes")
        whole = memoryview(self.arena)
        view = whole[off:off + n]
        whole.release()
        return view, -(-(off + n) // ARENA_ALIGN) * ARENA_ALIGN

    def _release_pins(self) -> None:
        if self.pins:
            self.pins = [v for v in self.pins if not release(v)]

    def _result_parts(self, f: _Function, result: pa.Array, reply: dict, out_off: int):
        """The result as an IPC stream: written into the arena at out_off when it
        fits there (reply names it; no body), else the body as buffers: the cached
        schema message, one record batch message and the end-of-stream marker."""
        if f.schema_msg is None:
            f.schema_msg = f.schema.serialize()
        batch = pa.RecordBatch.from_arrays(result if isinstance(result, list) else [result], schema=f.schema)
        if self.arena is not None and not self.pins:
            size = f.schema_msg.size + pa.ipc.get_record_batch_size(batch) + len(EOS)
            if out_off + size <= self.arena_size:
                n = write_stream(self.arena, out_off, size, f.schema, batch)
                if n:
                    reply["arena"] = [out_off, n]
                    return ()
        return [f.schema_msg, batch.serialize(), EOS]

    def call(self, f: _Function, batch: pa.RecordBatch):
        """Run the function on a batch; return (Arrow result, ms in the function). A
        table function's result is a list: [row indices, values]."""
        kind = f.kind
        if kind == "task":
            if batch.num_columns != 1:
                raise TypeError(f"{f.name} is a task: it takes one column of pickled arguments, "
                                f"got {batch.num_columns}")
            return run_task_rows(f.fn, batch.column(0), f.concurrency)
        if f.concurrency > 1 and kind != "table" and batch.num_rows > 1 and not row_wise(f.fn):
            if kind == "class" and f.instance is None:
                f.instance = f.fn()  # one, before the threads share it
            return run_slices(lambda part: self._call_batch(f, part), batch, f.concurrency)
        return self._call_batch(f, batch)

    def _call_batch(self, f: _Function, batch: pa.RecordBatch):
        """call for one batch (or one slice of it) of a function that is not a task's."""
        kind = f.kind
        if kind == "table":
            start = time.perf_counter()
            result = f.fn(*batch.columns)
            ms = (time.perf_counter() - start) * 1e3
            if f.returns is None:
                raise TypeError(f"{f.name} was registered without a result type")
            return table_result(f.name, result, f.returns), ms
        if kind == "arrow":
            args = batch.columns
            start = time.perf_counter()
            result = f.fn(*args)
        else:
            args = [arrow_to_pandas(c) for c in batch.columns]
            if kind == "class":
                start = time.perf_counter()
                if f.instance is None:
                    f.instance = f.fn()
                result = f.instance(*args)
            elif kind == "iterator":
                item = args[0] if len(args) == 1 else tuple(args)
                start = time.perf_counter()
                parts = list(f.fn(iter((item,))))
                result = concat_parts(parts)
            else:
                start = time.perf_counter()
                result = f.fn(*args)
        if inspect.isawaitable(result):  # an async def function: awaited on this thread's loop
            result = wait(result)
        ms = (time.perf_counter() - start) * 1e3
        if f.returns is None:
            raise TypeError(f"{f.name} was registered without a result type")
        if not hasattr(result, "__len__") or isinstance(result, (str, bytes)):
            expected = ("pyarrow.Array" if kind == "arrow" else
                        "pandas.DataFrame" if pa.types.is_struct(f.returns) else "pandas.Series")
            raise return_type_error(f.name, result, expected)
        rows = batch.num_rows
        if len(result) != rows:
            raise ValueError(f"{f.name} returned {len(result)} rows for {rows} input rows")
        return pandas_to_arrow(result, f.returns, timezone=f.timezone), ms


def main() -> int:
    try:
        sock = socket.socket(fileno=CONTROL_FD)
    except OSError as e:
        print(f"quiver.worker: no control channel on fd {CONTROL_FD} ({e}); "
              "this program is started by a quiver node", file=sys.stderr)
        return 2
    try:  # prints from user code reach the node's log promptly
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    worker = Worker(sock)
    try:
        return worker.serve()
    except ProtocolError as e:
        print(f"quiver.worker: protocol error: {e}", file=sys.stderr)
        return 3
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the node went away mid-frame
    finally:
        try:
            sock.close()
        except OSError:
            pass
