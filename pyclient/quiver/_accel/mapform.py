"""Map forms of any output length (mapInPandas, mapInArrow) on the node, as table calls.

A Spark map function takes a partition as an iterator of frames (pandas
DataFrames for mapInPandas, pyarrow RecordBatches for mapInArrow) and yields
frames of any length, none included. Accelerated, each input frame is one table
call (docs/protocol.md, "Table functions"): the node cuts its rows into tasks of
consecutive rows, and a worker runs the function on an iterator over one frame,
that task's rows. mapInPandas and mapInArrow promise nothing about where batches
are cut, so a task's slice is as valid an input as Spark's own batches. What the
function yields for a task comes back as the task's output rows, one per frame
it yielded, tied to the task's first input row; the wrapper yields the frames in
order: those of the first task, then the second, and so on, input frame after
input frame.

An input frame travels as Arrow columns, and a worker rebuilds each task's
slice as Spark built the frame (quiver._accel.frames): a RecordBatch with the
input's schema; a DataFrame with each column's pandas dtype, its object columns
of dates, decimals and bytes as Arrow and its other object columns (structs and
maps arrive as dicts, arrays as numpy arrays, nested to any depth) as one
pickled value per row, so the function sees the very objects Spark made. A
frame with no columns, duplicate names or a column that can travel neither way
runs here.

Output frames travel whole (values of type large_binary): a RecordBatch as an
Arrow IPC stream, anything else (a DataFrame) pickled. The node cannot know the
schema passed to mapInPandas/mapInArrow, and need not: Spark converts the frames
with it, by name, exactly as it does the plain function's, so its checks and
error messages are its own.

What accelerate needs of a map function: its output for a partition is the
concatenation of its outputs for consecutive pieces of it (per-row or per-frame
work: transforms, filters, explodes). A function that aggregates across its
iterator (yields a count at the end) gives one result per task instead: leave
it unaccelerated. on_error="null" has no meaning for frames and is refused.

The cheap-function switch (quiver._accel.policy.Adaptive) weighs a remote frame's wall
time against the function's cost here, measured once on the second frame (run here).
"""

from __future__ import annotations

import pickle
import time
import warnings

import numpy as np
import pyarrow as pa

from .. import _options
from .._convert import pandas_to_arrow
from .._taskcontext import headers as task_headers
from .._wire.conn import new_call_info
from .._wire.tablecall import exchange_table
from ..errors import FunctionNotFound, OverCapacity, Unavailable
from . import policy
from .forms import _BATCHES, _FRAMES
from .frames import RESULT_TYPE, MapAdapter, decode, pickle_cells
from .nodes import _node_for, _warn_fallback

__all__ = ["FORMS", "map_frames", "frame_names", "frame_key", "remote_fn"]

FORMS = (_BATCHES, _FRAMES)


def frame_names(item) -> tuple:
    return tuple(item.schema.names) if isinstance(item, pa.RecordBatch) else tuple(item.columns)


def frame_key(form: str, item) -> tuple:
    """What the node's adapter for this frame depends on: the names, and the schema
    (mapInArrow) or the columns' pandas dtypes (mapInPandas)."""
    if form == _BATCHES:
        return frame_names(item), item.schema.serialize().to_pybytes()
    return frame_names(item), tuple(repr(t) for t in item.dtypes)


def remote_fn(fn, form: str, item):
    """(object to register, node kind) for a map form."""
    if form == _BATCHES:
        return MapAdapter(fn, frame_names(item), False, schema=item.schema), "table"
    return MapAdapter(fn, frame_names(item), True, dtypes=tuple(item.dtypes)), "table"


def _columns(form: str, item) -> list | None:
    """The frame's columns as Arrow arrays, or None when they cannot travel."""
    names = frame_names(item)
    if not names or len(set(names)) != len(names):
        return None
    if form == _BATCHES:
        return list(item.columns)
    try:
        return [_column(item[n]) for n in names]
    except (TypeError, ValueError, AttributeError, pa.ArrowException, pickle.PicklingError):
        return None


# Object columns whose values Arrow gives back as the same objects (Spark hands each
# column's values of one type: decimals of the column's scale, dates, bytes).
_SAME_OBJECTS = (pa.types.is_decimal, pa.types.is_date32, pa.types.is_binary)


def _column(s) -> pa.Array:
    """One column of a DataFrame as frames.to_series rebuilds it: Arrow, or pickled values."""
    if isinstance(s.dtype, np.dtype) and s.dtype == object:
        first = next((v for v in s.values if v is not None), None)
        arr = None
        if not isinstance(first, (dict, list, tuple, np.ndarray)):  # nested: pickled at once
            try:
                arr = pandas_to_arrow(s)
            except (TypeError, ValueError, pa.ArrowException):
                pass
        if arr is None or not any(is_type(arr.type) for is_type in _SAME_OBJECTS):
            return pickle_cells(s)
        return arr
    return pandas_to_arrow(s)


def map_frames(acc, form: str, item):
    """Yield what acc's map function yields for one input frame: computed on the node
    when it answers, else here (as acc's options say)."""
    if acc.opts.on_error == "null":
        raise TypeError(f"quiver.accelerate: on_error='null' does not apply to map functions "
                        f"({acc.name} takes an iterator of frames): a failing row has no null "
                        "frame. Use on_error='raise'")
    if not len(item):
        yield from _here(acc, item)
        return
    cols = _columns(form, item)
    if cols is None:
        if not acc._warned_convert:
            acc._warned_convert = True
            warnings.warn(f"quiver.accelerate: cannot send the frames of {acc.name} to the node "
                          f"(columns {list(frame_names(item))}); running it in this process",
                          RuntimeWarning, stacklevel=4)
        yield from _here(acc, item)
        return
    node = _node_for(acc.opts)
    conn = node.get()
    if conn is None:
        if policy.fallback(acc.opts.fallback) == policy.RAISE:
            acc._unreachable(node, form, None, item)  # raises Unavailable
        _warn_fallback(node, acc.name)
        yield from _here(acc, item)
        return
    if acc.measuring() and acc.map_row_ms is None and acc.remote_batches:
        yield from _timed_here(acc, item)  # once: what a frame costs here, for the switch
        return
    batch = pa.RecordBatch.from_arrays(cols, names=[f"_{i}" for i in range(len(cols))])
    headers = acc.opts.headers + _TABLE_HEADER + task_headers()
    for attempt in range(2):
        info = new_call_info()
        try:
            name = acc._register(node, form, RESULT_TYPE, item)
            start = time.perf_counter()
            outs = list(exchange_table(conn, name, batch.schema, (batch,), conn.call_options(headers), info))
            wall = time.perf_counter() - start
        except FunctionNotFound:
            if attempt:
                raise
            acc._forget(node)  # the node restarted: register again
            continue
        except (Unavailable, OverCapacity) as e:
            if isinstance(e, Unavailable):
                node.mark_down(e)
            if policy.fallback(acc.opts.fallback) == policy.RAISE:
                raise
            yield from _here(acc, item)
            return
        break
    acc.remote_batches += 1
    # The node's work_ms holds the conversions a worker makes, not only the function's
    # time: the switch compares the wall time with this frame's measured cost here.
    acc._observe(info, wall, (acc.map_row_ms or 0.0) * len(item))
    for out in outs:
        col = out.column(1)
        for i in range(len(col)):
            yield decode(col[i].as_buffer())


def _here(acc, item):
    acc._ran_here()
    yield from acc.fn(iter([item]))


def _timed_here(acc, item):
    acc._ran_here()
    start = time.perf_counter()
    frames = list(acc.fn(iter([item])))
    acc.map_row_ms = (time.perf_counter() - start) * 1e3 / len(item)
    yield from frames


_TABLE_HEADER = _options.call_headers({"table_function": True})
