"""The map forms' side that runs in the node's workers: MapAdapter (a map function as a
table function, kind "table") and the encoding of the frames it yields (quiver._accel.mapform
is the wrapper's side). Imports only leaves, so that a worker unpickling it loads no driver code.

A task's slice of a frame is rebuilt as Spark built the frame. A RecordBatch
gets the input batch's schema back (field nullability and metadata included).
A DataFrame gets each column back with the pandas dtype Spark gave it: a column
that travelled as Arrow converts back to that dtype; an object column of nested
values (struct and map columns arrive as dicts, arrays as numpy arrays, with
NaN and None kept apart) travels as one pickled value per row (PICKLED_CELLS)
and comes back as the very same objects.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["RESULT_TYPE", "PICKLED_CELLS", "MapAdapter", "encode", "decode", "pickle_cells"]

RESULT_TYPE = pa.large_binary()  # one yielded frame per output row
PICKLED_CELLS = pa.large_binary()  # an object column, one pickled value per row
_ARROW_TAG, _PICKLE_TAG = b"A", b"P"


class MapAdapter:
    """A map function as a table function (worker kind "table"): the task's rows as one
    frame in, one output row per yielded frame out, all tied to the task's first row.

    names   the frame's column names
    pandas  True for mapInPandas (DataFrames), False for mapInArrow (RecordBatches)
    dtypes  mapInPandas: each column's pandas dtype, as Spark gave it
    schema  mapInArrow: the input batches' schema
    """

    def __init__(self, fn, names: tuple, pandas: bool, dtypes: tuple | None = None,
                 schema: pa.Schema | None = None):
        self.fn = fn
        self.names = names
        self.pandas = pandas
        self.dtypes = dtypes
        self.schema = schema

    def __call__(self, *columns):
        if self.pandas:
            frame = pd.DataFrame({n: to_series(c, t, n) for n, c, t in zip(self.names, columns, self.dtypes)})
        elif self.schema is not None:
            frame = pa.RecordBatch.from_arrays(list(columns), schema=self.schema)
        else:
            frame = pa.RecordBatch.from_arrays(list(columns), names=list(self.names))
        out = [encode(f) for f in self.fn(iter([frame]))]
        return pa.array([0] * len(out), pa.int32()), pa.array(out, RESULT_TYPE)


def to_series(arr: pa.Array, dtype, name) -> pd.Series:
    """A column of a task's slice, with the dtype and values of the wrapper's column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if isinstance(dtype, np.dtype) and dtype == object and arr.type == PICKLED_CELLS:
        values = np.empty(len(arr), dtype=object)
        for i, cell in enumerate(arr):
            values[i] = pickle.loads(cell.as_buffer())
        return pd.Series(values, name=name, copy=False)
    from_arrow = getattr(dtype, "__from_arrow__", None)  # pandas extension dtypes (Int32, str, ...)
    if from_arrow is not None:
        return pd.Series(from_arrow(arr), name=name, copy=False)
    s = arr.to_pandas()
    if s.dtype != dtype:  # bools without nulls in this slice of an object column, ...
        s = s.astype(dtype)
    return s.rename(name)


def pickle_cells(s: pd.Series) -> pa.Array:
    """An object column as one pickled value per row (to_series unpickles them)."""
    return pa.array([pickle.dumps(v, protocol=5) for v in s.tolist()], PICKLED_CELLS)


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
