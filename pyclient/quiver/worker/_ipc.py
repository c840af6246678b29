"""IPC streams in the worker: reading a TASK's batch, writing a RESULT's stream into the arena."""

from __future__ import annotations

import pyarrow as pa

EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC end-of-stream marker


def read_batch(body) -> pa.RecordBatch:
    """The one record batch of a TASK's IPC stream (an empty one if it has none)."""
    reader = pa.ipc.open_stream(pa.py_buffer(body))
    try:
        return reader.read_next_batch()
    except StopIteration:
        schema = reader.schema
        return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def write_stream(arena, off: int, size: int, schema: pa.Schema, batch: pa.RecordBatch) -> int:
    """Write the batch as an IPC stream into arena[off:off+size]; its length, or
    0 when it did not fit (the caller then sends it in the body)."""
    view = memoryview(arena)[off:off + size]
    try:
        sink = pa.FixedSizeBufferWriter(pa.py_buffer(view))
        try:
            writer = pa.ipc.new_stream(sink, schema)
            writer.write_batch(batch)
            writer.close()
            return sink.tell()
        except (pa.ArrowException, OSError):
            return 0
        finally:
            writer = None
            sink.close()
            sink = None
    finally:
        release(view)


def release(view: memoryview) -> bool:
    """Release a view of the arena; False while something still uses its bytes."""
    try:
        view.release()
        return True
    except BufferError:
        return False
