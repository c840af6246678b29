"""Result types: Spark DDL strings (and pyspark DataTypes) to Arrow types.

    to_arrow_type("double")                       -> pa.float64()
    to_arrow_type("array<struct<a:int,b:string>>") -> list<element: struct<a: int32, b: string>>
    to_arrow_type("a int, b map<string,bigint>")  -> struct<a: int32, b: map<string, int64>>

The mapping is Spark's own (pyspark.sql.pandas.types.to_arrow_type), with one
deliberate difference: "timestamp" maps to a *naive* ``timestamp[us]``, the same
as "timestamp_ntz". Inside a pandas UDF Spark hands the function naive wall-clock
times in the session time zone and takes naive wall-clock times back; Quiver
ships exactly those values, unshifted, so the wire carries no zone. (Spark's own
wire between the JVM and Python uses ``timestamp[us, tz=<session zone>]``; the
accelerate wrapper sits on the pandas side of that conversion.)

Other choices: "string" is ``utf8`` (``string``), "decimal" alone is
decimal(10,0) as in Spark, arrays are lists whose child is named "element", maps
have a non-nullable "key" and a "value", struct fields are nullable unless the
DDL says NOT NULL.
"""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = ["to_arrow_type"]

_ATOMS = {
    "boolean": pa.bool_(), "bool": pa.bool_(),
    "tinyint": pa.int8(), "byte": pa.int8(),
    "smallint": pa.int16(), "short": pa.int16(),
    "int": pa.int32(), "integer": pa.int32(),
    "bigint": pa.int64(), "long": pa.int64(),
    "float": pa.float32(), "real": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),      # naive on this wire: see the module doc
    "timestamp_ltz": pa.timestamp("us"),
    "timestamp_ntz": pa.timestamp("us"),
    "void": pa.null(), "null": pa.null(),
}
_DECIMALS = ("decimal", "dec", "numeric")
_STRINGS = ("varchar", "char")  # varchar(n), char(n): strings to Arrow

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|`(?P<quoted>(?:[^`]|``)*)`"
                    r"|(?P<num>\d+)|'(?P<str>(?:[^'\\]|\\.)*)'|(?P<punct>[<>(),:]))")


def to_arrow_type(returns) -> pa.DataType:
    """An Arrow type from a pyarrow DataType, a Spark DDL string or a pyspark DataType.

    DDL is case-insensitive and may nest freely: "double", "decimal(38,18)",
    "array<array<string>>", "map<string,bigint>", "struct<a:int,b:string>", or
    the top-level field list "a int, b string" (a struct). A string that is
    not DDL may be a pyarrow type alias ("int64", "float32"). Raises ValueError
    for DDL it cannot parse and TypeError for anything else.
    """
    if isinstance(returns, pa.DataType):
        return returns
    if isinstance(returns, str):
        try:
            return _Parser(returns).parse()
        except ValueError:
            # A pyarrow type name ("int64", "large_string") is a natural thing to try.
            try:
                return pa.type_for_alias(returns.strip())
            except (ValueError, KeyError):
                pass
            raise
    spark = _from_pyspark(returns)
    if spark is not None:
        return spark
    raise TypeError(f"quiver: a result type must be a pyarrow DataType, a Spark DDL string "
                    f"such as 'double' or a pyspark DataType, not {type(returns).__name__}")


def _from_pyspark(dt) -> pa.DataType | None:
    """Convert a pyspark DataType, structurally so that nullability survives; None if it is not one."""
    try:
        from pyspark.sql import types as T
    except ImportError:
        return None
    if not isinstance(dt, T.DataType):
        return None
    if isinstance(dt, T.ArrayType):
        return pa.list_(pa.field("element", _from_pyspark(dt.elementType), dt.containsNull))
    if isinstance(dt, T.MapType):
        return pa.map_(pa.field("key", _from_pyspark(dt.keyType), False),
                       pa.field("value", _from_pyspark(dt.valueType), dt.valueContainsNull))
    if isinstance(dt, T.StructType):
        return pa.struct([pa.field(f.name, _from_pyspark(f.dataType), f.nullable) for f in dt.fields])
    return to_arrow_type(dt.simpleString())


class _Parser:
    """A recursive-descent parser of Spark's DDL type syntax."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, position)
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self._error(f"unexpected character {text[pos]!r}", pos)
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "quoted":
                value = value.replace("``", "`")
            self.tokens.append((kind, value, m.start(kind) if kind != "quoted" else m.start() + 1))
            pos = m.end()
        self.i = 0

    def _error(self, what: str, pos: int | None = None) -> ValueError:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return ValueError(f"quiver: cannot parse Spark type {self.text!r}: {what} at position {pos}")

    def parse(self) -> pa.DataType:
        if not self.tokens:
            raise self._error("empty type", 0)
        try:
            t = self._type()
            if self.i == len(self.tokens):
                return t
            first = self._error(f"unexpected {self._peek_text()}")
        except ValueError as e:
            first = e
        # Not one type: perhaps a top-level field list, "a int, b string".
        self.i = 0
        try:
            fields = self._fields(end=None)
        except ValueError as e:
            looks_like_fields = len(self.tokens) > 1 and self.tokens[1][1] not in ("<", "(")
            raise (e if looks_like_fields else first) from None
        return pa.struct(fields)

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None, len(self.text))

    def _peek_text(self) -> str:
        kind, value, _ = self._peek()
        return "end of text" if kind is None else repr(value)

    def _accept(self, punct: str) -> bool:
        kind, value, _ = self._peek()
        if kind == "punct" and value == punct:
            self.i += 1
            return True
        return False

    def _expect(self, punct: str) -> None:
        if not self._accept(punct):
            raise self._error(f"expected {punct!r}, got {self._peek_text()}")

    def _int(self) -> int:
        kind, value, _ = self._peek()
        if kind != "num":
            raise self._error(f"expected a number, got {self._peek_text()}")
        self.i += 1
        return int(value)

    def _type(self) -> pa.DataType:
        kind, value, pos = self._peek()
        if kind != "name":
            raise self._error(f"expected a type, got {self._peek_text()}")
        self.i += 1
        name = value.lower()
        if name in _ATOMS:
            return _ATOMS[name]
        if name in _DECIMALS:
            precision, scale = 10, 0
            if self._accept("("):
                precision = self._int()
                if self._accept(","):
                    scale = self._int()
                self._expect(")")
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise self._error(f"decimal({precision},{scale}) needs 1 <= precision <= 38 "
                                  f"and 0 <= scale <= precision", pos)
            return pa.decimal128(precision, scale)
        if name in _STRINGS:
            self._expect("(")
            self._int()
            self._expect(")")
            return pa.string()
        if name == "array":
            self._expect("<")
            elem = self._type()
            self._expect(">")
            return pa.list_(pa.field("element", elem))
        if name == "map":
            self._expect("<")
            key = self._type()
            self._expect(",")
            value_type = self._type()
            self._expect(">")
            return pa.map_(pa.field("key", key, nullable=False), pa.field("value", value_type))
        if name == "struct":
            self._expect("<")
            if self._accept(">"):
                return pa.struct([])
            fields = self._fields(end=">")
            self._expect(">")
            return pa.struct(fields)
        raise self._error(f"unknown type {value!r}", pos)

    def _fields(self, end: str | None) -> list[pa.Field]:
        fields = []
        while True:
            kind, value, _ = self._peek()
            if kind not in ("name", "quoted"):
                raise self._error(f"expected a field name, got {self._peek_text()}")
            self.i += 1
            self._accept(":")
            t = self._type()
            nullable = True
            kind2, word, _ = self._peek()
            if kind2 == "name" and word.lower() == "not":
                self.i += 1
                kind3, word3, _ = self._peek()
                if kind3 != "name" or word3.lower() != "null":
                    raise self._error(f"expected NULL after NOT, got {self._peek_text()}")
                self.i += 1
                nullable = False
            kind2, word, _ = self._peek()
            if kind2 == "name" and word.lower() == "comment":
                self.i += 1
                if self._peek()[0] != "str":
                    raise self._error(f"expected a quoted comment, got {self._peek_text()}")
                self.i += 1
            fields.append(pa.field(value, t, nullable))
            if not self._accept(","):
                break
        if end is None and self.i != len(self.tokens):
            raise self._error(f"unexpected {self._peek_text()}")
        return fields
