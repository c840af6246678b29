"""pandas <-> Arrow for function arguments and results, as Spark's pandas UDFs see them.

The accelerate wrapper runs inside Spark's Python worker: it turns the pandas
objects Spark handed it into Arrow with ``pandas_to_arrow``; a quiver worker
turns them back with ``arrow_to_pandas`` and calls the function; the result
travels the same way back. The two functions are an exact round trip of what
Spark hands a scalar pandas UDF, so the function sees the dtypes and values it
would have seen in Spark (pyspark 4.x with pandas 3):

    Arrow type                  pandas, as Spark gives it
    bool                        bool; object (True/False/None) with nulls
    int8..int64                 int8..int64; float64 with NaN for nulls
    float32, float64            float32, float64; NaN for nulls (NaN travels as null)
    string, large_string        "str" (StringDtype(na_value=nan))
    binary                      object of bytes, None
    decimal128(p, s)            object of decimal.Decimal, None
    date32                      object of datetime.date, None
    timestamp[unit] (naive)     datetime64[ns], naive wall-clock time (datetime64[unit]
                                for values outside the ns range)
    timestamp[unit, tz=Z]       datetime64[ns, Z]
    list<T>                     object of numpy arrays (int arrays with nulls: object)
    map<K, V>                   object of dicts, None
    struct<...>                 a DataFrame, one column per field (nested: dicts)

Conventions (they matter for Spark, see DESIGN.md "Spark facts"):

- Timestamps stay naive on this wire and are never shifted: a naive value is a
  wall-clock time in Spark's session time zone both ways. A tz-aware Series
  converted to a naive type becomes wall-clock time in ``timezone`` (UTC when
  not given). Casting to a coarser unit truncates, as Spark does (ns -> us).
- Decimals keep the precision and scale of ``type`` when one is given (values
  with more digits are an error, never rounded); without a type they are
  inferred from the values (the widest scale and precision seen).
- Casts are otherwise safe: 1.5 to an int type, or an overflow, is a TypeError
  naming the Arrow type, not a silent truncation.
- Without a type, a column of dicts becomes a map (pyarrow alone would infer a
  struct) when their values have one type, else a struct; Rows (namedtuples)
  become structs; a DataFrame becomes a struct; an empty object column becomes
  Arrow's null type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.types as pat

__all__ = ["arrow_to_pandas", "pandas_to_arrow"]

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                 TypeError, ValueError, OverflowError)

# Options for nested values, as Spark's legacy path (pyspark.sql.conversion) uses them.
_NESTED = {"date_as_object": True, "integer_object_nulls": True,
           "coerce_temporal_nanoseconds": True, "maps_as_pydicts": "strict"}

_EXT_INTS = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
             pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
             pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
             pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}


# Arrow -> pandas.

def arrow_to_pandas(arr, *, name=None):
    """A pandas Series (a DataFrame for a struct) from an Arrow Array or ChunkedArray."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    conv = _TOP.get(arr.type)
    if conv is None:
        conv = _TOP.setdefault(arr.type, _top_converter(arr.type))
    out = conv(arr)
    if name is not None and isinstance(out, pd.Series):
        out.name = name
    return out


_TOP: dict = {}  # Arrow type -> converter of a top-level column


def _top_converter(t: pa.DataType):
    if pat.is_struct(t):
        return _struct_to_frame
    if pat.is_timestamp(t):
        return _timestamp_ns
    if _is_nested(t):
        return _nested
    return _plain


def _plain(arr: pa.Array) -> pd.Series:
    return arr.to_pandas()


def _nested(arr: pa.Array) -> pd.Series:
    try:
        return arr.to_pandas(**_NESTED)
    except pa.ArrowInvalid:  # timestamps inside, beyond the ns range
        return arr.to_pandas(**{**_NESTED, "coerce_temporal_nanoseconds": False})


def _timestamp_ns(arr: pa.Array) -> pd.Series:
    """datetime64[ns] as Spark gives it, or the array's own unit when ns cannot hold it."""
    t = arr.type
    if t.unit != "ns":
        try:
            arr = arr.cast(pa.timestamp("ns", t.tz))
        except pa.ArrowInvalid:
            pass
    return arr.to_pandas()


def _timestamp_us(arr: pa.Array) -> pd.Series:
    """datetime64[us]: what Spark's legacy path gives under pandas 3 (struct fields)."""
    s = _timestamp_ns(arr)
    return s.astype("datetime64[us]") if s.dtype == "datetime64[ns]" else s


def _legacy_field(arr: pa.Array) -> pd.Series:
    """A struct field when Spark converts the struct the legacy way: nullable ints as IntNDtype."""
    t = arr.type
    if pat.is_integer(t):
        if not arr.null_count:
            return arr.to_pandas()
        ext = _EXT_INTS[t]
        return arr.to_pandas(types_mapper=lambda _: ext)  # exact, never through float64
    if pat.is_timestamp(t):
        return _timestamp_us(arr) if t.tz is None else _timestamp_ns(arr)
    if pat.is_struct(t) or _is_nested(t):
        return _nested(arr)
    return _plain(arr)


def _struct_to_frame(arr: pa.Array) -> pd.DataFrame:
    """One column per field. Like Spark: fields of numpy-friendly types convert as
    top-level columns do, otherwise all fields the legacy way; nested structs are dicts."""
    t = arr.type
    if t.num_fields == 0:
        return pd.DataFrame(index=pd.RangeIndex(len(arr)))
    children = arr.flatten()  # struct-level nulls propagate to every field
    if all(_numpy_friendly(t.field(i).type) for i in range(t.num_fields)):
        cols = [arrow_to_pandas(c) for c in children]
    else:
        cols = [_legacy_field(c) for c in children]
    frame = pd.concat([c.rename(i) for i, c in enumerate(cols)], axis=1)
    frame.columns = [t.field(i).name for i in range(t.num_fields)]
    return frame


def _numpy_friendly(t: pa.DataType) -> bool:
    return (pat.is_null(t) or pat.is_binary(t) or pat.is_large_binary(t) or pat.is_boolean(t)
            or pat.is_integer(t) or pat.is_floating(t) or pat.is_date(t) or pat.is_time(t)
            or pat.is_timestamp(t))


def _is_nested(t: pa.DataType) -> bool:
    return (pat.is_list(t) or pat.is_large_list(t) or pat.is_fixed_size_list(t)
            or pat.is_list_view(t) or pat.is_large_list_view(t) or pat.is_map(t)
            or pat.is_struct(t))


# pandas -> Arrow.

def pandas_to_arrow(obj, type=None, *, timezone: str | None = None) -> pa.Array:
    """An Arrow Array from a pandas Series or DataFrame (or an Arrow array, list, ndarray).

    With ``type`` (a pyarrow DataType or Spark DDL string) the result has exactly
    that type, or a TypeError says why not; without one the type is inferred as
    described in the module doc. ``timezone`` is the zone whose wall-clock time a
    tz-aware Series becomes when ``type`` is a naive timestamp (default UTC).
    """
    if type is not None and not isinstance(type, pa.DataType):
        from .types import to_arrow_type
        type = to_arrow_type(type)
    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks() if obj.num_chunks != 1 else obj.chunk(0)
    if isinstance(obj, pa.Array):
        return _exact(obj, type, obj)
    if isinstance(obj, pd.DataFrame):
        return _frame_to_struct(obj, type, timezone)
    if not isinstance(obj, pd.Series):
        if isinstance(obj, (list, tuple, np.ndarray, pd.Index, pd.api.extensions.ExtensionArray)):
            obj = pd.Series(obj, dtype=object if isinstance(obj, (list, tuple)) and not obj else None)
        else:
            raise TypeError(f"quiver: expected a pandas Series or DataFrame, got {_what(obj)}")
    return _series_to_arrow(obj, type, timezone)


def _series_to_arrow(s: pd.Series, type, timezone) -> pa.Array:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype) and not (type is not None and pat.is_dictionary(type)):
        s = s.astype(dtype.categories.dtype)
        dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and type is not None and pat.is_timestamp(type) \
            and type.tz is None:
        s = s.dt.tz_convert(timezone or "UTC").dt.tz_localize(None)
        dtype = s.dtype
    # numpy-backed columns convert from their ndarray: the same result, several times faster.
    data = s.values if isinstance(dtype, np.dtype) and dtype.kind in "biufM" else s
    if type is None:
        if dtype == object:
            return _infer_object(s)
        return _one(pa.Array.from_pandas(data))
    if dtype.kind == "M" and pat.is_timestamp(type):
        arr = _one(pa.Array.from_pandas(data))
        return _exact(arr, type, s, truncate=_unit_rank(arr.type.unit) > _unit_rank(type.unit))
    try:
        arr = _one(pa.Array.from_pandas(data, type=type, safe=True))
    except _ARROW_ERRORS as e:
        first = e
    else:
        return _exact(arr, type, s)
    # pyarrow refused the pandas data as it is.
    if dtype.kind in "iu" and pat.is_decimal(type):
        try:  # exact Python ints; an int64 cast would ask for precision 19 + scale
            return _one(pa.array(s.tolist(), type=type))
        except _ARROW_ERRORS as e:
            raise _cannot(s, type, e) from e
    try:  # infer, then cast safely
        inferred = _infer_object(s) if dtype == object else _one(pa.Array.from_pandas(data))
        return _exact(inferred, type, s)
    except _ARROW_ERRORS as e:
        if dtype != object:
            raise _cannot(s, type, first) from first
        second = e
    try:  # e.g. arrays of dicts to a list of structs; Python floats never reach an int type here
        if _has_int(type) and _has_float(s):
            raise second
        return _one(pa.array(_plain_values(s), type=type, from_pandas=True))
    except _ARROW_ERRORS:
        raise _cannot(s, type, first) from first


def _has_int(t: pa.DataType) -> bool:
    if pat.is_integer(t):
        return True
    return any(_has_int(t.field(i).type) for i in range(t.num_fields))


def _has_float(s: pd.Series) -> bool:
    """Whether an object column holds Python or numpy floats anywhere inside."""
    def walk(v) -> bool:
        if isinstance(v, (float, np.floating)):
            return v == v  # NaN is a null
        if isinstance(v, np.ndarray):
            return v.dtype.kind == "f" or (v.dtype == object and any(walk(x) for x in v))
        if isinstance(v, (list, tuple)):
            return any(walk(x) for x in v)
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        return False
    return any(walk(v) for v in s)


def _plain_values(s: pd.Series) -> list:
    """The Series' values as Python objects, numpy arrays inside made lists."""
    return [_plain_value(v) for v in s.tolist()]


def _plain_value(v):
    if isinstance(v, np.ndarray):
        return [_plain_value(x) for x in v.tolist()] if v.dtype == object else v.tolist()
    if _is_row(v):
        return {k: _plain_value(x) for k, x in _row_dict(v).items()}
    if isinstance(v, (list, tuple)):
        return [_plain_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain_value(x) for k, x in v.items()}
    return v


def _frame_to_struct(df: pd.DataFrame, type, timezone) -> pa.Array:
    if type is None:
        arrays = [pandas_to_arrow(df.iloc[:, i], None, timezone=timezone) for i in range(df.shape[1])]
        if not arrays:
            return pa.array([{}] * len(df), pa.struct([]))
        return pa.StructArray.from_arrays(arrays, names=[str(c) for c in df.columns])
    if not pat.is_struct(type):
        raise TypeError(f"quiver: a DataFrame converts only to a struct type, not to Arrow type "
                        f"{type} (columns {list(df.columns)})")
    names = [type.field(i).name for i in range(type.num_fields)]
    columns = [str(c) for c in df.columns]
    if len(columns) != len(names):
        raise TypeError(f"quiver: cannot convert a DataFrame with columns {columns} to Arrow type "
                        f"{type}: {len(columns)} columns for {len(names)} fields")
    if len(set(columns)) == len(columns) and set(names) == set(columns):
        cols = [df.iloc[:, columns.index(n)] for n in names]  # by name
    else:
        cols = [df.iloc[:, i] for i in range(len(names))]  # by position
    if not names:
        return pa.array([{}] * len(df), type)
    arrays = []
    for col, f in zip(cols, type):
        try:
            arrays.append(pandas_to_arrow(col, f.type, timezone=timezone))
        except TypeError as e:
            raise TypeError(f"quiver: field {f.name!r} of Arrow type {type}: {e}") from e
    return pa.StructArray.from_arrays(arrays, fields=list(type))


def _infer_object(s: pd.Series) -> pa.Array:
    """Infer an object column's type; dicts of one value type make maps (pyarrow would
    infer structs), other dicts and Rows make structs."""
    first = next((v for v in s if v is not None), None)
    try:
        if _has_row(first):
            raise TypeError("Rows are structs")  # pyarrow would infer lists from the tuples
        arr = _one(pa.Array.from_pandas(s))
    except _ARROW_ERRORS as e:
        try:
            t = _infer_type(s.tolist())
            return _one(pa.array(_plain_values(s), type=t, from_pandas=True))
        except _ARROW_ERRORS:
            raise TypeError(f"quiver: cannot convert {_what(s)} to Arrow: {e}") from e
    if _has_struct(arr.type):
        t = _infer_type(s.tolist())
        if t != arr.type:
            return _one(pa.array(_plain_values(s), type=t, from_pandas=True))
    return arr


def _infer_type(values: list) -> pa.DataType:
    """The Arrow type of Python values: dicts whose values have one type are maps,
    other dicts and Rows (namedtuples) structs."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if not vals:
        return pa.null()
    if all(isinstance(v, dict) for v in vals):
        keys = _infer_type([k for d in vals for k in d])
        try:
            items = _infer_type([x for d in vals for x in d.values()])
        except _ARROW_ERRORS:
            if not pat.is_string(keys):
                raise
            return _struct_type(vals)  # values of several types: not a map
        return pa.map_(pa.string() if pat.is_null(keys) else keys, items)
    if all(_is_row(v) for v in vals):
        return _struct_type([_row_dict(v) for v in vals])
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in vals):
        return pa.list_(_infer_type([x for v in vals for x in v]))
    return pa.array(vals, from_pandas=True).type


def _struct_type(dicts: list) -> pa.DataType:
    """A struct of the keys of dicts, in the order first seen, each of its values' type."""
    names: dict = {}
    for d in dicts:
        for k in d:
            names.setdefault(k, None)
    return pa.struct([(k, _infer_type([d.get(k) for d in dicts])) for k in names])


def _is_row(v) -> bool:
    """A pyspark Row with field names or a namedtuple: a struct by field name."""
    return isinstance(v, tuple) and (hasattr(v, "__fields__") or hasattr(v, "_asdict"))


def _row_dict(v) -> dict:
    return v.asDict() if hasattr(v, "__fields__") else v._asdict()


def _has_row(v) -> bool:
    """Whether a value holds a Row anywhere (looking at the first element of sequences)."""
    if _is_row(v):
        return True
    if isinstance(v, dict):
        return any(_has_row(x) for x in v.values())
    if isinstance(v, (list, tuple, np.ndarray)) and len(v):
        return _has_row(next((x for x in v if x is not None), None))
    return False


def _has_struct(t: pa.DataType) -> bool:
    if pat.is_struct(t):
        return True
    if pat.is_map(t):
        return _has_struct(t.key_type) or _has_struct(t.item_type)
    if _is_nested(t):
        return _has_struct(t.value_type)
    return False


def _exact(arr: pa.Array, type, source, truncate: bool = False) -> pa.Array:
    """arr, cast to exactly `type` (child field names and nullability included)."""
    if type is None:
        return arr
    t = arr.type
    if t == type and (t.num_fields == 0 or (str(t) == str(type) and _fields_match(t, type))):
        return arr
    try:
        return arr.cast(type, safe=not truncate)
    except _ARROW_ERRORS as e:
        raise _cannot(source, type, e) from e


def _fields_match(a: pa.DataType, b: pa.DataType) -> bool:
    """Nullability of nested fields, which DataType equality ignores."""
    if a.num_fields == 0:
        return True
    return all(a.field(i).nullable == b.field(i).nullable and _fields_match(a.field(i).type, b.field(i).type)
               for i in range(a.num_fields))


def _unit_rank(unit: str) -> int:
    return {"s": 0, "ms": 1, "us": 2, "ns": 3}[unit]


def _one(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _cannot(source, type, err) -> TypeError:
    return TypeError(f"quiver: cannot convert {_what(source)} to Arrow type {type}: {err}")


def _what(obj) -> str:
    """A short description of a value for error messages: its kind, dtype and a sample."""
    if isinstance(obj, pd.Series):
        sample = next((v for v in obj.head(20) if v is not None and not _isnan(v)), None)
        return f"a Series of dtype {obj.dtype} (e.g. {_short(sample)})"
    if isinstance(obj, pa.Array):
        return f"an Arrow array of type {obj.type}"
    return f"{type(obj).__name__} {_short(obj)}"


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."

