"""Results carried pickled: for a pandas function whose result has no Arrow type the wrapper can know.

Without ``returns`` the wrapper infers the result type from a local run. Where
that result has no faithful Arrow type (values of mixed kinds, objects Arrow
cannot hold, a DataFrame whose column labels are not strings, which Spark
matches by position), inference must not be the reason the function fails or
stays local: the node runs ``PickledResult(fn)``, which returns, for each task,
the pickle of the function's whole result in the task's first row (and empty
bytes in its other rows), so the call keeps one row per input row; the wrapper
joins the pieces (``unpickle``) and hands Spark exactly what the function
returned, for Spark to convert with its declared type.
"""

from __future__ import annotations

import pickle

import pandas as pd
import pyarrow as pa

from .._util import concat_parts, return_type_error

__all__ = ["PICKLED", "CARRIER", "PickledResult", "unpickle", "needs_pickle"]


class _Pickled:
    """The result type "carried pickled" (a marker, not an Arrow type)."""

    def __repr__(self) -> str:
        return "pickled"


PICKLED = _Pickled()
CARRIER = pa.large_binary()  # the registered result type of a PickledResult


def needs_pickle(result) -> bool:
    """Whether a result must travel pickled though it converts: a DataFrame whose column
    labels are not all strings (Arrow field names are, and Spark treats the two apart)."""
    return isinstance(result, pd.DataFrame) and not all(isinstance(c, str) for c in result.columns)


class PickledResult:
    """fn as the node runs it: each task's result pickled into that task's first row.

    ``iterator``: fn takes an iterator of batches (the item is the arguments);
    ``is_class``: fn is a class, instantiated once per worker process."""

    def __init__(self, fn, *, is_class: bool = False, iterator: bool = False):
        self.fn = fn
        self.is_class = is_class
        self.iterator = iterator
        self._instance = None

    def __getstate__(self):
        return {"fn": self.fn, "is_class": self.is_class, "iterator": self.iterator}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._instance = None

    def __call__(self, *args):
        n = len(args[0])
        if self.iterator:
            item = args[0] if len(args) == 1 else tuple(args)
            result = concat_parts(list(self.fn(iter([item]))))
        elif self.is_class:
            if self._instance is None:
                self._instance = self.fn()
            result = self._instance(*args)
        else:
            result = self.fn(*args)
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        if not isinstance(result, (pd.Series, pd.DataFrame)):
            raise return_type_error(name, result, "pandas.Series")
        if len(result) != n:
            raise ValueError(f"{name} returned {len(result)} rows for {n} input rows")
        rows = [b""] * n
        if n:
            rows[0] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        return pd.Series(rows, dtype=object)


def unpickle(column, index):
    """The function's result from a call's carrier column: the pieces joined, rows the
    node made null (on_error="null") as None, with the input's index."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    parts: list = []  # pieces, and ints: runs of null rows
    for value in column.to_pylist():
        if value is None:
            if parts and isinstance(parts[-1], int):
                parts[-1] += 1
            else:
                parts.append(1)
        elif value:
            parts.append(pickle.loads(value))
    shape = next((p for p in parts if isinstance(p, pd.DataFrame)), None)
    result = concat_parts([_nulls(p, shape) if isinstance(p, int) else p for p in parts])
    if len(parts) > 1:
        result = _one_chunk(result)
    if len(result) == len(index):
        result.index = index
    return result


def _one_chunk(result):
    """pd.concat leaves pyarrow-backed columns (pandas' "str") in chunks, which Spark's
    conversion refuses; a function's own result has one: rebuild those columns."""
    if isinstance(result, pd.DataFrame):
        chunked = [c for c in range(result.shape[1]) if _chunked(result.iloc[:, c])]
        if chunked:
            result = result.copy()
            for c in chunked:
                result.isetitem(c, _rebuilt(result.iloc[:, c]))
        return result
    return _rebuilt(result) if _chunked(result) else result


def _chunked(s: pd.Series) -> bool:
    data = getattr(s.array, "_pa_array", None)
    return isinstance(data, pa.ChunkedArray) and data.num_chunks > 1


def _rebuilt(s: pd.Series) -> pd.Series:
    return pd.Series(pd.array(s.to_numpy(), dtype=s.dtype), index=s.index, name=s.name)


def _nulls(n: int, shape):
    """n rows of None: a Series, or a DataFrame with shape's columns."""
    if shape is not None:
        return pd.DataFrame({c: [None] * n for c in shape.columns})
    return pd.Series([None] * n, dtype=object)
