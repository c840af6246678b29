"""What a classic (pickled, SQL_BATCHED_UDF) Spark UDF sees and what Spark makes of its result.

In. The JVM pickles each row with its schema and the Python worker rebuilds it
with the schema's ``fromInternal``: dates from days, timestamps from
microseconds (naive wall-clock time in this process's local zone), structs as
``Row``, maps as dicts. ``column_values`` gives the same values from an Arrow
column: Spark's internal values read from Arrow, then pyspark's own
``DataType.fromInternal``.

Out. The worker applies the return type's ``toInternal`` (pyspark's), pickles
the value, and the JVM unpickles it into Java objects (Pyrolite: an int is an
Integer or a Long by size, a float a Double, a tuple an Object[], a list a
List, a dict a Map) and converts them with ``EvaluatePython.makeFromJava``,
which turns a value of an unexpected Java class into null (a float for an int
column, an int for a double column, a str for an int column) and converts
anything to a string column with Java's ``toString``. ``result_converter``
replays that in Python and gives values that ``pa.array`` takes for the
return type's Arrow type.
"""

from __future__ import annotations

import datetime
import decimal
import math

import pyarrow as pa
import pyarrow.types as pat
from pyspark.sql import types as T

__all__ = ["column_values", "result_converter"]

_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_EPOCH_UTC = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)

# In.

def column_values(arr: pa.Array, dt: T.DataType) -> list:
    """The Python values a classic UDF gets for a column (pyspark's fromInternal of Spark's internal values)."""
    values = _internal(arr)
    if not dt.needConversion():
        return values
    conv = dt.fromInternal
    return [None if v is None else conv(v) for v in values]


def _internal(arr: pa.Array) -> list:
    """Spark's internal values: days, microseconds, tuples for structs, dicts for maps."""
    t = arr.type
    if pat.is_timestamp(t):
        if t.unit != "us":
            arr = arr.cast(pa.timestamp("us", t.tz))
        return arr.cast(pa.int64()).to_pylist()
    if pat.is_date32(t):
        return arr.cast(pa.int32()).to_pylist()
    if pat.is_struct(t):
        fields = [_internal(arr.field(i)) for i in range(t.num_fields)]
        rows = list(zip(*fields)) if fields else [()] * len(arr)
        return _masked(arr, rows)
    if pat.is_map(t):
        offsets, start, n = _span(arr)
        keys = _internal(arr.keys.slice(start, n))
        items = _internal(arr.items.slice(start, n))
        rows = [dict(zip(keys[a - start:b - start], items[a - start:b - start]))
                for a, b in zip(offsets, offsets[1:])]
        return _masked(arr, rows)
    if pat.is_list(t) or pat.is_large_list(t):
        offsets, start, n = _span(arr)
        flat = _internal(arr.values.slice(start, n))
        return _masked(arr, [flat[a - start:b - start] for a, b in zip(offsets, offsets[1:])])
    return arr.to_pylist()


def _span(arr) -> tuple[list, int, int]:
    offsets = arr.offsets.to_pylist()
    return offsets, offsets[0], offsets[-1] - offsets[0]


def _masked(arr: pa.Array, rows: list) -> list:
    if arr.null_count == 0:
        return rows
    return [r if ok else None for r, ok in zip(rows, arr.is_valid().to_pylist())]


# Out.

# The Java class Pyrolite makes of a Python value (by exact type, as pickle does).
_NULL, _BOOL, _INT, _LONG, _BIGINT, _DOUBLE, _STR, _BYTES, _DEC, _LIST, _ARRAY, _MAP, _OTHER = range(13)
_KINDS = {bool: _BOOL, float: _DOUBLE, str: _STR, bytes: _BYTES, bytearray: _BYTES,
          decimal.Decimal: _DEC, list: _LIST, tuple: _ARRAY, dict: _MAP}


def _java(v) -> int:
    if v is None:
        return _NULL
    t = type(v)
    if t is int:
        if -2**31 <= v < 2**31:
            return _INT
        return _LONG if -2**63 <= v < 2**63 else _BIGINT
    kind = _KINDS.get(t)
    if kind is not None:
        return kind
    if t.__module__ == "numpy":
        raise TypeError(f"Spark cannot take a {t.__module__}.{t.__name__} from a classic Python UDF: "
                        "its JVM cannot unpickle numpy values (net.razorvine.pickle.PickleException); "
                        "return a Python value")
    return _OTHER


def result_converter(dt: T.DataType):
    """value -> what Spark stores for it (as pa.array takes it for dt's Arrow type), or raises as Spark does."""
    to_internal = dt.toInternal if dt.needConversion() else None
    from_java = _from_java(dt)

    def convert(value):
        if to_internal is not None and value is not None:
            value = to_internal(value)
        return from_java(value)

    return convert


def _wrap(bits: int):
    half, whole = 1 << (bits - 1), 1 << bits

    def to_bits(v):  # Java's narrowing conversion: the low bits, two's complement
        v &= whole - 1
        return v - whole if v >= half else v
    return to_bits


def _only(*kinds, then=lambda v: v):
    def conv(v):
        return then(v) if _java(v) in kinds else None
    return conv


def _from_java(dt: T.DataType):
    """EvaluatePython.makeFromJava(dt) over the Java value Pyrolite makes, to an Arrow-ready value."""
    if isinstance(dt, T.BooleanType):
        return _only(_BOOL)
    if isinstance(dt, (T.ByteType, T.ShortType, T.IntegerType)):
        bits = {T.ByteType: 8, T.ShortType: 16, T.IntegerType: 32}[type(dt)]
        return _only(_INT, _LONG, then=_wrap(bits))
    if isinstance(dt, T.LongType):
        return _only(_INT, _LONG)
    if isinstance(dt, (T.FloatType, T.DoubleType)):
        return _only(_DOUBLE)
    if isinstance(dt, T.DecimalType):
        return _only(_DEC, then=_decimal(dt.precision, dt.scale))
    if isinstance(dt, T.DateType):
        return _only(_INT, then=lambda v: datetime.date.fromordinal(v + _EPOCH_ORDINAL))
    if isinstance(dt, T.TimestampType):
        return _only(_INT, _LONG, then=lambda v: _EPOCH_UTC + datetime.timedelta(microseconds=v))
    if isinstance(dt, T.TimestampNTZType):
        return _only(_INT, _LONG, then=lambda v: _EPOCH_NAIVE + datetime.timedelta(microseconds=v))
    if isinstance(dt, T.DayTimeIntervalType):
        return _only(_INT, _LONG, then=lambda v: datetime.timedelta(microseconds=v))
    if isinstance(dt, T.StringType):
        return lambda v: None if v is None else _java_string(v)
    if isinstance(dt, T.BinaryType):
        def binary(v):
            kind = _java(v)
            if kind == _STR:
                return v.encode("utf-8")
            return bytes(v) if kind == _BYTES else None
        return binary
    if isinstance(dt, T.ArrayType):
        elem = _from_java(dt.elementType)
        return _only(_LIST, _ARRAY, then=lambda v: [elem(e) for e in v])
    if isinstance(dt, T.MapType):
        key, value = _from_java(dt.keyType), _from_java(dt.valueType)
        return _only(_MAP, then=lambda v: [(key(k), value(x)) for k, x in v.items()])
    if isinstance(dt, T.StructType):
        names = dt.names
        convs = [_from_java(f.dataType) for f in dt.fields]

        def struct(v):
            if v is None or _java(v) != _ARRAY:
                return None
            if len(v) != len(convs):
                raise ValueError(f"[STRUCT_ARRAY_LENGTH_MISMATCH] Input row doesn't have expected number of values required by the "
                                 f"schema. {len(convs)} fields are required while {len(v)} values "
                                 "are provided.")
            return {n: c(x) for n, c, x in zip(names, convs, v)}
        return struct
    if isinstance(dt, T.UserDefinedType):
        return _from_java(dt.sqlType())
    return lambda v: None  # NullType and types a classic UDF cannot return


def _decimal(precision: int, scale: int):
    exp = decimal.Decimal(1).scaleb(-scale)
    ctx = decimal.Context(prec=max(precision, 1) + 100, rounding=decimal.ROUND_HALF_UP)

    def conv(v: decimal.Decimal):
        if not v.is_finite():  # Pyrolite builds a java.math.BigDecimal from its string
            raise ValueError(f"net.razorvine.pickle.PickleException: cannot unpickle Decimal {v}")
        q = v.quantize(exp, context=ctx)  # BigDecimal.setScale(scale, ROUND_HALF_UP)
        digits = len(q.as_tuple().digits)
        if digits > precision:
            raise ArithmeticError(f"[NUMERIC_VALUE_OUT_OF_RANGE.WITHOUT_SUGGESTION]  The {q} rounded "
                                  f"half up from {v} cannot be represented as Decimal({precision}, {scale}).")
        return q
    return conv


def _java_string(v) -> str:
    """Java's toString of the object Pyrolite makes of v (makeFromJava for a string column)."""
    kind = _java(v)
    if kind == _STR:
        return v
    if kind == _BOOL:
        return "true" if v else "false"
    if kind in (_INT, _LONG, _BIGINT):
        return str(v)
    if kind == _DOUBLE:
        return _java_double(v)
    if kind == _DEC:
        return str(v)  # both follow the same to-scientific-string rules
    if kind == _LIST:
        return "[" + ", ".join("null" if e is None else _java_string(e) for e in v) + "]"
    raise TypeError(f"quiver: Spark would store Java's toString of a {type(v).__name__} in this string "
                    "column (an identity hash, or an order quiver cannot reproduce); return a str")


def _java_double(d: float) -> str:
    """Double.toString(d)."""
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    if 1e-3 <= abs(d) < 1e7:
        return repr(d)  # shortest digits, plain, with ".0" for whole numbers
    sign, digits, exponent = decimal.Decimal(repr(d)).as_tuple()
    exp10 = exponent + len(digits) - 1
    digits = "".join(map(str, digits)).rstrip("0") or "0"
    return f"{'-' if sign else ''}{digits[0]}.{digits[1:] or '0'}E{exp10}"
