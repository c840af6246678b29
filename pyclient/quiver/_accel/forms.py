"""The value forms accelerate handles: which form a call is, adapters for the
Arrow-native forms, result-type widening, slicing and joining arguments and
results, converting a node's result back to the call's form, and pickling a
function's module by value.

    form          the arguments                      the node runs it as
    pandas        Series/DataFrames                  "series" (or "class")
    arrow         pyarrow Arrays                     "arrow"
    pandas_iter   an iterator of Series (or tuples)  "iterator"
    arrow_iter    an iterator of Arrays (or tuples)  "arrow" (_ArrowIterAdapter)
    batches       an iterator of RecordBatches       "table" (mapInArrow: quiver._accel.mapform)
    frames        an iterator of DataFrames          "table" (mapInPandas: quiver._accel.mapform)
"""

from __future__ import annotations

import collections.abc
import sys
import sysconfig
import threading

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.types as pat

from .._convert import arrow_to_pandas, pandas_to_arrow
from ..errors import UDFError

_ARROW_ARRAYS = (pa.Array, pa.ChunkedArray)
_PANDAS_OBJS = (pd.Series, pd.DataFrame)

_PANDAS, _ARROW, _PANDAS_ITER, _ARROW_ITER, _BATCHES = "pandas", "arrow", "pandas_iter", "arrow_iter", "batches"
_FRAMES = "frames"


def _form_of(values) -> str | None:
    if values and all(isinstance(v, _PANDAS_OBJS) for v in values):
        return _PANDAS
    if values and all(isinstance(v, _ARROW_ARRAYS) for v in values):
        return _ARROW
    return None


def _item_form(item) -> tuple[str, list] | None:
    """The form of one item of an input iterator, and its values (the arguments)."""
    if isinstance(item, pa.RecordBatch):
        return _BATCHES, list(item.columns)
    if isinstance(item, pd.DataFrame):  # mapInPandas (or one struct argument: the same)
        return _FRAMES, [item]
    values = list(item) if isinstance(item, tuple) else [item]
    form = _form_of(values)
    if form == _PANDAS:
        return _PANDAS_ITER, values
    if form == _ARROW:
        return _ARROW_ITER, values
    return None


def _is_stream(x) -> bool:
    return isinstance(x, collections.abc.Iterator) and not isinstance(x, (*_PANDAS_OBJS, *_ARROW_ARRAYS))


def _remote_fn(fn, is_class: bool, form: str, item):
    """(object to register, node kind) for a form."""
    if form == _ARROW_ITER:
        return _ArrowIterAdapter(fn), "arrow"
    if form == _ARROW:
        return fn, "arrow"
    if form == _PANDAS_ITER:
        return fn, "iterator"
    return fn, "class" if is_class else "series"


def _from_arrow(form: str, out: pa.Array, values):
    """A result as the call's form: a RecordBatch, an Array, or pandas with the input's index."""
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    if form in (_ARROW, _ARROW_ITER):
        return out
    result = arrow_to_pandas(out)
    index = values[0].index
    if len(index) == len(result):
        result.index = index
    if isinstance(result, pd.Series):
        result.name = None  # not the node's internal function name
    return result


class _ArrowIterAdapter:
    """Iterator[pa.Array] -> Iterator[pa.Array] as fn(*arrays) -> Array, one task at a time."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *arrays):
        item = arrays[0] if len(arrays) == 1 else tuple(arrays)
        parts = list(self.fn(iter([item])))
        if not parts:
            raise ValueError(f"{_fn_name(self.fn)} yielded nothing for a batch of {len(arrays[0])} rows")
        return pa.chunked_array(parts).combine_chunks() if len(parts) > 1 else parts[0]


def _short_name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _fn_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# Helpers.

def _result_type(returns) -> pa.DataType:
    from ..types import to_arrow_type
    return to_arrow_type(returns)


def _to_arrow(form: str, v) -> pa.Array:
    if isinstance(v, pa.ChunkedArray):
        return v.combine_chunks()
    if isinstance(v, pa.Array):
        return v
    return pandas_to_arrow(v)


def _widen_type(t: pa.DataType) -> pa.DataType:
    """decimal128(p, s) -> decimal128(38, s) throughout: inferred precision varies by batch."""
    if pat.is_decimal128(t):
        return pa.decimal128(38, t.scale) if t.precision != 38 else t
    if pat.is_map(t):
        return pa.map_(t.key_field.with_type(_widen_type(t.key_type)),
                       t.item_field.with_type(_widen_type(t.item_type)))
    if pat.is_list(t):
        return pa.list_(t.value_field.with_type(_widen_type(t.value_type)))
    if pat.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_widen_type(t.value_type)))
    if pat.is_struct(t):
        return pa.struct([f.with_type(_widen_type(f.type)) for f in t])
    return t


def _widen_array(a: pa.Array) -> pa.Array:
    t = _widen_type(a.type)
    return a if t.equals(a.type) else a.cast(t)


def _has_null_type(t: pa.DataType) -> bool:
    if pat.is_null(t):
        return True
    return any(_has_null_type(t.field(i).type) for i in range(t.num_fields))


def _is_result_type_error(e: UDFError) -> bool:
    """The worker could not convert the function's result to the registered type.

    The node reports it as the function raising a TypeError from quiver's
    converter; nothing structured tells it apart yet, so this reads the message.
    """
    msg = e.message
    return "raised TypeError: quiver: cannot convert" in msg and "to Arrow type" in msg


def _length(result) -> int | None:
    if isinstance(result, pa.RecordBatch):
        return result.num_rows
    if isinstance(result, (str, bytes)) or not hasattr(result, "__len__"):
        return None
    return len(result)


def _head(v, rows: int):
    return _slice(v, 0, rows)


def _slice(v, start: int, rows: int):
    if isinstance(v, _PANDAS_OBJS):
        return v.iloc[start:start + rows]
    return v.slice(start, rows)


def _head_item(item, rows: int):
    return _slice_item(item, 0, rows)


def _slice_item(item, start: int, rows: int):
    if item is None:
        return None
    if isinstance(item, pa.RecordBatch):
        return item.slice(start, rows)
    if isinstance(item, tuple):
        return tuple(_slice(v, start, rows) for v in item)
    return _slice(item, start, rows)


_by_value_lock = threading.Lock()
_NOT_BY_VALUE = tuple({p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"),
                                   sysconfig.get_paths().get("platlib")) if p})


class _pickled_by_value:
    """Pickle fn's own module by value while registering, unless it is installed or stdlib.

    cloudpickle pickles functions of importable modules by reference; the
    node's workers (another working directory, another sys.path) often cannot
    import a user's own module (a test file, a job's helpers), so ship it.
    """

    def __init__(self, fn):
        self.module = None
        name = getattr(fn, "__module__", None)
        mod = sys.modules.get(name) if name and name != "__main__" else None
        path = getattr(mod, "__file__", None) or ""
        if mod is not None and path and not path.startswith(_NOT_BY_VALUE) \
                and not name.startswith("quiver") and "site-packages" not in path:
            self.module = mod

    def __enter__(self):
        if self.module is not None:
            _by_value_lock.acquire()
            try:
                cloudpickle.register_pickle_by_value(self.module)
            except (ValueError, TypeError):
                _by_value_lock.release()
                self.module = None
        return self

    def __exit__(self, *exc):
        if self.module is not None:
            try:
                cloudpickle.unregister_pickle_by_value(self.module)
            except (ValueError, TypeError):
                pass
            _by_value_lock.release()
