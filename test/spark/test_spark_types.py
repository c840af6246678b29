"""Every accelerated UDF gives exactly what the same UDF gives without accelerate, in a real
Spark (local mode): every type Spark's own pandas UDF tests cover, nulls everywhere,
Arrow batches of 3 rows, empty partitions, iterator, class and Arrow forms, mapInArrow."""

from __future__ import annotations

import datetime as dt
import math
import sys
from decimal import Decimal
from typing import Iterator, Tuple

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql.functions import arrow_udf, pandas_udf
from pyspark.sql.types import (
    ArrayType, BinaryType, BooleanType, ByteType, DateType, DecimalType, DoubleType, FloatType,
    IntegerType, LongType, MapType, ShortType, StringType, StructField, StructType,
    TimestampNTZType, TimestampType,
)

import quiver

# Spark's workers and the node's workers cannot import this module: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

SCHEMA = StructType([
    StructField("id", LongType()),
    StructField("bo", BooleanType()),
    StructField("by", ByteType()),
    StructField("sh", ShortType()),
    StructField("i", IntegerType()),
    StructField("l", LongType()),
    StructField("f", FloatType()),
    StructField("d", DoubleType()),
    StructField("dec", DecimalType(38, 18)),
    StructField("s", StringType()),
    StructField("bin", BinaryType()),
    StructField("dt", DateType()),
    StructField("ts", TimestampType()),
    StructField("ntz", TimestampNTZType()),
    StructField("al", ArrayType(LongType())),
    StructField("aas", ArrayType(ArrayType(StringType()))),
    StructField("m", MapType(StringType(), LongType())),
    StructField("st", StructType([StructField("a", IntegerType()), StructField("b", StringType())])),
])

LONG_STRING = "ü" * 50_000 + "end"


def rows():
    """Row 0 is all nulls, so result types are inferred past null first rows. (Longs stay within
    2**53: Spark hands a long column with nulls to pandas as float64.)"""
    null = [0] + [None] * (len(SCHEMA) - 1)
    return [
        null,
        [1, True, 1, 2, 3, 4, 1.5, 2.25, Decimal("1.5"), "plain", b"ab", dt.date(2020, 2, 29),
         dt.datetime(2020, 2, 29, 12, 0, 0, 123456), dt.datetime(2020, 2, 29, 12, 0, 0),
         [1, 2, 3], [["a", "b"], ["c"]], {"x": 1, "y": 2}, Row(a=1, b="one")],
        [2, False, -128, -32768, -2**31, 2**53, float("inf"), float("nan"),
         Decimal("-12345678901234567890.123456789012345678"), "é😀中\u0000x", b"\x00\xff\x00",
         dt.date(1969, 1, 1), dt.datetime(1900, 1, 1, 0, 0, 1), dt.datetime(1969, 12, 31, 23, 59, 59),
         [], [[], None, ["a", None]], {}, Row(a=None, b=None)],
        [3, None, 127, 32767, 2**31 - 1, -2**53, float("-inf"), -0.0,
         Decimal("0.000000000000000001"), LONG_STRING, b"", dt.date(2262, 4, 12),
         dt.datetime(2021, 3, 14, 1, 59, 59), dt.datetime(2021, 3, 14, 2, 30, 0),
         [None, 7], [[""]], {"k": None}, Row(a=-5, b="")],
        [4, True, None, 0, None, 0, None, 1e300, Decimal("99999999999999999999.999999999999999999"),
         "", None, dt.date(1970, 1, 1), dt.datetime(2021, 3, 14, 3, 0, 0),
         dt.datetime(2021, 11, 7, 1, 30, 0), None, [], {"": 0}, None],
        [5, False, 5, None, 6, None, 0.1, None, Decimal("-0.5"), "tail", b"z", None,
         dt.datetime(2021, 11, 7, 1, 30, 0), None, [5, None, 6], None, None, Row(a=7, b="seven")],
        [6, True, 6, 6, 6, 6, 6.0, 6.0, Decimal("6"), "six", b"6", dt.date(2000, 1, 1),
         dt.datetime(1969, 7, 20, 20, 17, 40), dt.datetime(2262, 4, 11, 0, 0, 0),
         [6], [["six"]], {"six": 6}, Row(a=6, b="six")],
    ]


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(rows(), SCHEMA).repartition(2, "id").cache()


def same(a, b) -> bool:
    """Equality of collected values, with NaN equal to NaN, through lists, dicts and Rows."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, Row) and isinstance(b, Row):
        return a.asDict().keys() == b.asDict().keys() and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def compare(df, pairs: dict, calls=None, key: str = "id"):
    """Select plain and accelerated versions side by side; every row must agree, and each
    accelerated UDF must have called the node (when `calls` counts the node's calls)."""
    before = calls() if calls else 0
    cols = [F.col(key)]
    for name, (plain, accelerated, args) in pairs.items():
        cols += [plain(*args).alias(f"{name}__plain"), accelerated(*args).alias(f"{name}__acc")]
    out = df.select(*cols).collect()
    assert out, "no rows"
    bad = []
    for row in out:
        for name in pairs:
            p, a = row[f"{name}__plain"], row[f"{name}__acc"]
            if not same(p, a):
                bad.append(f"{name} at {key}={row[key]}: plain {p!r:.200} != accelerated {a!r:.200}")
    assert not bad, "\n".join(bad)
    if calls:
        assert calls() - before >= len(pairs), "some accelerated UDFs did not reach the node"
    return out


def series(fn, spark_type, *args, **options):
    """A scalar pandas UDF of fn (one Series argument per column) with and without accelerate."""
    plain = pandas_udf(fn, spark_type)
    accelerated = pandas_udf(quiver.accelerate(**options)(fn), spark_type)
    return plain, accelerated, args


def s1(body):
    def f(x: pd.Series) -> pd.Series:
        return body(x)
    return f


def nullsafe(g):
    return lambda x: x.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else g(v))


def scalar_pairs() -> dict:
    ident = s1(lambda x: x)
    types = {f.name: f.dataType for f in SCHEMA.fields}
    pairs = {f"id_{c}": series(ident, types[c], c) for c in types if c not in ("id", "st")}

    def swap(p: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"b": p["b"].str.upper(), "a": p["a"] * 10})

    def plus(a: pd.Series, b: pd.Series) -> pd.Series:
        return a + b

    pairs.update({
        "not_bo": series(s1(nullsafe(lambda v: not v)), "boolean", "bo"),
        "i_x2": series(s1(lambda x: x * 2), "long", "i"),
        "f_p1": series(s1(lambda x: x + 1), "float", "f"),
        "d_x": series(s1(lambda x: x * 2.5), "double", "d"),
        "dec_neg": series(s1(nullsafe(lambda v: v.copy_negate())), "decimal(38,18)", "dec"),
        "s_up": series(s1(lambda x: x.str.upper()), "string", "s"),
        "s_len": series(s1(lambda x: x.str.len()), "int", "s"),
        "bin_rev": series(s1(nullsafe(lambda b: bytes(reversed(b)))), "binary", "bin"),
        "dt_1st": series(s1(nullsafe(lambda v: v.replace(day=1))), "date", "dt"),
        "ts_90m": series(s1(lambda x: x + pd.Timedelta(minutes=90)), "timestamp", "ts"),
        "ntz_90m": series(s1(lambda x: x - pd.Timedelta(minutes=90)), "timestamp_ntz", "ntz"),
        "al_len": series(s1(nullsafe(len)), "long", "al"),
        "aas_flat": series(s1(nullsafe(lambda a: [s for inner in a if inner is not None for s in inner])),
                           "array<string>", "aas"),
        "m_inc": series(s1(nullsafe(lambda m: {k: None if v is None else v + 1 for k, v in m.items()})),
                        "map<string,bigint>", "m"),
        "m_len": series(s1(nullsafe(len)), "int", "m"),
        "st_swap": series(swap, "b string, a int", "st"),
        "st_id": series(s1(lambda p: p), SCHEMA["st"].dataType, "st"),
        "plus": series(plus, "double", "i", "d"),
        "explicit": series(s1(lambda x: x * 3), "double", "d", returns="double"),
    })
    # accelerate outside pandas_udf takes the UDF's own type
    f = s1(lambda x: x - 1)
    pairs["outside"] = (pandas_udf(f, "double"), quiver.accelerate(pandas_udf(f, "double")), ("d",))
    return pairs


def other_form_pairs() -> dict:
    def it_add1(it: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for x in it:
            yield x + 1

    def it_concat(it: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        for i, s in it:
            yield s.str.cat(i.astype("str"), sep="#")

    class Scale:
        def __init__(self):
            self.k = 3.0

        def __call__(self, x: pd.Series) -> pd.Series:
            return x * self.k

    def scale(x: pd.Series) -> pd.Series:
        return x * 3.0

    def a_upper(x: pa.Array) -> pa.Array:
        return pc.utf8_upper(x)

    def a_ident(x: pa.Array) -> pa.Array:
        return x

    def a_hours(ts: pa.Array, n: pa.Array) -> pa.Array:
        return pc.add(ts, pc.cast(pc.multiply(pc.fill_null(n, 0), 3_600_000_000), pa.duration("us")))

    def a_iter(it: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for a in it:
            yield pc.multiply(a, 2)

    def arrows(fn, returns, *args):
        return arrow_udf(fn, returns), arrow_udf(quiver.accelerate(fn), returns), args

    return {
        "iter": (pandas_udf(it_add1, "double"), pandas_udf(quiver.accelerate(it_add1), "double"), ("d",)),
        "iter_tuple": (pandas_udf(it_concat, "string"), pandas_udf(quiver.accelerate(it_concat), "string"),
                       ("i", "s")),
        "class": (pandas_udf(scale, "double"), pandas_udf(quiver.accelerate(Scale), "double"), ("d",)),
        "arrow_upper": arrows(a_upper, "string", "s"),
        "arrow_ts": arrows(a_ident, "timestamp", "ts"),
        "arrow_map": arrows(a_ident, "map<string,bigint>", "m"),
        "arrow_dec": arrows(a_ident, "decimal(38,18)", "dec"),
        "arrow_2args": arrows(a_hours, "timestamp", "ts", "by"),
        "arrow_iter": arrows(a_iter, "double", "d"),
    }


def test_scalar_udfs_match_plain(frame, node_calls):
    compare(frame, scalar_pairs(), node_calls)


def test_scalar_udfs_match_plain_in_batches_of_3(frame, batch_size, node_calls):
    batch_size(3)
    pairs = scalar_pairs()
    before = node_calls()
    compare(frame, pairs)
    # 7 rows in 2 partitions, batches of at most 3: at least 3 batches per UDF
    assert node_calls() - before >= 3 * len(pairs)


def test_iterator_class_and_arrow_forms_match_plain(frame, batch_size, node_calls):
    batch_size(3)
    compare(frame, other_form_pairs(), node_calls)


def test_empty_partitions_and_empty_frames(spark, node_calls):
    df = spark.range(0, 3, numPartitions=6).withColumn("x", F.col("id") * 1.5)
    pairs = {"x": series(s1(lambda x: x * 2), "double", "x")}
    assert len(compare(df, pairs, node_calls)) == 3
    assert df.where("id < 0").select(pairs["x"][1]("x")).collect() == []


def test_map_in_arrow_per_row(frame, batch_size, node_calls):
    batch_size(3)
    before = node_calls()

    def enrich(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in it:
            yield pa.RecordBatch.from_arrays(
                [b["id"], pc.utf8_length(b["s"]), pc.multiply(b["d"], 2.0)], names=["id", "n", "d2"])

    schema = "id long, n int, d2 double"
    src = frame.select("id", "s", "d")
    plain = sorted(src.mapInArrow(enrich, schema).collect())
    accelerated = sorted(src.mapInArrow(quiver.accelerate(enrich), schema).collect())
    assert len(plain) == len(rows())
    assert all(same(p, a) for p, a in zip(plain, accelerated)), (plain, accelerated)
    assert node_calls() - before >= 3
