"""The map forms' side that runs in the node's workers: MapAdapter (a map function as a
table function, kind "table") and the encoding of the frames it yields (quiver._accel.mapform
is the wrapper's side). Imports only leaves, so that a worker unpickling it loads no driver code."""

from __future__ import annotations

import pickle

import pandas as pd
import pyarrow as pa

from .._convert import arrow_to_pandas

__all__ = ["RESULT_TYPE", "MapAdapter", "encode", "decode"]

RESULT_TYPE = pa.large_binary()  # one yielded frame per output row
_ARROW_TAG, _PICKLE_TAG = b"A", b"P"


class MapAdapter:
    """A map function as a table function (worker kind "table"): the task's rows as one
    frame in, one output row per yielded frame out, all tied to the task's first row."""

    def __init__(self, fn, names: tuple, pandas: bool):
        self.fn = fn
        self.names = names
        self.pandas = pandas

    def __call__(self, *columns):
        if self.pandas:
            frame = pd.DataFrame({n: arrow_to_pandas(c) for n, c in zip(self.names, columns)})
        else:
            frame = pa.RecordBatch.from_arrays(list(columns), names=list(self.names))
        out = [encode(f) for f in self.fn(iter([frame]))]
        return pa.array([0] * len(out), pa.int32()), pa.array(out, RESULT_TYPE)


def encode(frame) -> bytes:
    """A RecordBatch as an Arrow IPC stream; anything else (a DataFrame, or whatever the
    function yielded: Spark says what is wrong with it) pickled."""
    if isinstance(frame, pa.RecordBatch):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, frame.schema) as w:
            w.write_batch(frame)
        return _ARROW_TAG + sink.getvalue().to_pybytes()
    return _PICKLE_TAG + pickle.dumps(frame, protocol=5)


def decode(buf: pa.Buffer):
    tag, body = buf[:1].to_pybytes(), buf[1:]
    if tag == _ARROW_TAG:
        return pa.ipc.open_stream(body).read_next_batch()
    return pickle.loads(memoryview(body))
