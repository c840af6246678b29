"""Row-at-a-time @udf functions, accelerated: every row gives exactly what the plain UDF gives in
a real Spark (local mode, session zone America/Los_Angeles), classic and useArrow=True: every
type in and out with nulls, nested arrays/maps/structs, dates 1969 and 2262-04-12, pre-epoch
and DST timestamps, Arrow batches of 3 rows, empty partitions, Spark's coercions of results of
the wrong type, exceptions, on_error="null", and registration for SQL."""

from __future__ import annotations

import datetime as dt
import re
import sys
from decimal import Decimal

import cloudpickle
import pytest

pytest.importorskip("pyspark")

from pyspark import cloudpickle as spark_cloudpickle
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql.functions import udf
from pyspark.sql.types import (
    ArrayType, BinaryType, BooleanType, ByteType, DateType, DecimalType, DoubleType, FloatType,
    IntegerType, LongType, MapType, ShortType, StringType, StructField, StructType,
    TimestampNTZType, TimestampType,
)

import quiver

# Spark's and the node's workers cannot import this module: ship it by value (Spark pickles
# UDFs with its own copy of cloudpickle).
cloudpickle.register_pickle_by_value(sys.modules[__name__])
spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_spark_types import same  # noqa: E402

MODES = pytest.mark.parametrize("arrow", [False, True], ids=["classic", "arrow"])

INNER = StructType([StructField("a", IntegerType()), StructField("t", TimestampType())])
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
    StructField("dec5", DecimalType(5, 2)),
    StructField("s", StringType()),
    StructField("bin", BinaryType()),
    StructField("dt", DateType()),
    StructField("ts", TimestampType()),
    StructField("ntz", TimestampNTZType()),
    StructField("al", ArrayType(LongType())),
    StructField("aas", ArrayType(ArrayType(StringType()))),
    StructField("m", MapType(StringType(), LongType())),
    StructField("mad", MapType(StringType(), ArrayType(DateType()))),
    StructField("st", StructType([StructField("a", IntegerType()), StructField("b", StringType())])),
    StructField("nest", StructType([StructField("in", INNER), StructField("xs", ArrayType(INNER))])),
])


def rows():
    null = [0] + [None] * (len(SCHEMA) - 1)
    t0 = dt.datetime(1969, 12, 31, 23, 59, 59, 999999)
    return [
        null,
        [1, True, 1, 2, 3, 4, 1.5, 2.25, Decimal("1.5"), Decimal("1.25"), "plain", b"ab",
         dt.date(1969, 12, 31), dt.datetime(2020, 2, 29, 12, 0, 0, 123456), dt.datetime(2020, 2, 29, 12),
         [1, 2, 3], [["a", "b"], ["c"]], {"x": 1, "y": 2}, {"d": [dt.date(2262, 4, 12), None]},
         Row(a=1, b="one"), Row(**{"in": Row(a=1, t=t0), "xs": [Row(a=2, t=None), None]})],
        [2, False, -128, -32768, -2**31, 2**62, float("inf"), float("nan"),
         Decimal("-12345678901234567890.123456789012345678"), Decimal("-999.99"), "é😀中\u0000x",
         b"\x00\xff", dt.date(2262, 4, 12), dt.datetime(1900, 1, 1, 0, 0, 1), t0,
         [], [[], None, ["a", None]], {}, {}, Row(a=None, b=None), Row(**{"in": None, "xs": []})],
        [3, None, 127, 32767, 2**31 - 1, -2**63, float("-inf"), -0.0, Decimal("0.000000000000000001"),
         Decimal("0.01"), "", b"", dt.date(1970, 1, 1), dt.datetime(2021, 3, 14, 1, 59, 59),
         dt.datetime(2021, 3, 14, 2, 30), [None, 7], [[""]], {"k": None}, {"e": None},
         Row(a=-5, b=""), None],
        [4, True, None, 0, None, 0, None, 1e300, Decimal("6"), None, None, None, None,
         dt.datetime(2021, 11, 7, 1, 30), dt.datetime(2021, 11, 7, 1, 30), None, [], {"": 0}, None,
         None, Row(**{"in": Row(a=None, t=dt.datetime(2021, 11, 7, 1, 30)), "xs": None})],
        [5, False, 5, None, 6, None, 0.1, None, None, Decimal("5"), "tail", b"z", dt.date(1969, 1, 1),
         dt.datetime(1969, 7, 20, 20, 17, 40), None, [5, None, 6], None, None, None,
         Row(a=7, b="seven"), None],
    ]


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(rows(), SCHEMA).repartition(2, "id").cache()


def describe(v) -> str:
    """What a row function saw: Python types and values, dicts in sorted order (Spark's classic
    path hands over a Java HashMap's order)."""
    if isinstance(v, Row):
        return "Row(" + ", ".join(f"{k}={describe(x)}" for k, x in zip(v.__fields__, v)) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(sorted(f"{describe(k)}: {describe(x)}" for k, x in v.items())) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(describe(x) for x in v) + "]"
    if isinstance(v, float) and v != v:
        return "float:nan"
    return f"{type(v).__name__}:{v!r}"


def pair(fn, returns, arrow: bool, **options):
    plain = udf(fn, returns, useArrow=arrow)
    return plain, quiver.accelerate(plain, **options) if options else quiver.accelerate(plain)


def compare(df, pairs: dict, calls=None, key="id"):
    """Plain and accelerated side by side: every row must agree, and the node must have been called."""
    before = calls() if calls else 0
    cols = [F.col(key)]
    for name, (plain, accelerated, args) in pairs.items():
        cols += [plain(*args).alias(f"{name}__plain"), accelerated(*args).alias(f"{name}__acc")]
    out = df.select(*cols).collect()
    assert out
    bad = [f"{name} at {key}={r[key]}: plain {r[name + '__plain']!r:.300} != accelerated "
           f"{r[name + '__acc']!r:.300}"
           for r in out for name in pairs if not same(r[name + "__plain"], r[name + "__acc"])]
    assert not bad, "\n".join(bad)
    if calls:
        assert calls() - before >= len(pairs), "some accelerated UDFs did not reach the node"
    return out


def input_pairs(arrow: bool) -> dict:
    """Each column described as the row function sees it, and each column returned as it is."""
    pairs = {}
    for f in SCHEMA.fields[1:]:
        pairs[f"see_{f.name}"] = (*pair(describe, "string", arrow), (f.name,))
        pairs[f"id_{f.name}"] = (*pair(lambda x: x, f.dataType, arrow), (f.name,))
    pairs["two_args"] = (*pair(lambda s, i: None if s is None else f"{s}#{i}", "string", arrow), ("s", "i"))
    return pairs


@MODES
def test_every_type_in_and_out_matches_plain(frame, node_calls, arrow):
    compare(frame, input_pairs(arrow), node_calls)


@MODES
def test_batches_of_3_and_empty_partitions(spark, batch_size, node_calls, arrow):
    batch_size(3)
    df = spark.range(0, 24, numPartitions=4).where("id % 4 != 1 and (id < 6 or id >= 18)") \
        .withColumn("x", F.col("id") * 1.5).withColumn("s", F.col("id").cast("string"))
    pairs = {"x": (*pair(lambda x: x * 2, "double", arrow), ("x",)),
             "s": (*pair(lambda s, x: f"{s}:{x}", "string", arrow), ("s", "x"))}
    before = node_calls()
    assert len(compare(df, pairs)) == 9
    assert node_calls() - before >= 2 * 4  # partitions of 4, 0, 0 and 5 rows: 4 batches per UDF
    assert df.where("id < 0").select(pairs["x"][1]("x")).collect() == []


# Results of another type than declared: classic Spark makes most of them null (the JVM's
# makeFromJava), Arrow-optimized Spark converts them its own way (pyspark's converters).
MISMATCHES = {
    "int": [1, 1.5, "1", True, 2**40, -2**31, None],
    "bigint": [1, 2**40, 1.0, "7"],
    "tinyint": [127, 300, -129],
    "smallint": [40000, 5],
    "double": [1.5, 1, True, Decimal("1.5")],
    "float": [1.5, 1, 1e40],
    "boolean": [True, 1, "true"],
    "string": ["s", 1, 1.5, 1e10, 1.5e-5, True, Decimal("1.50"), [1, None, "a"], 2**40],
    "binary": [b"x", bytearray(b"y"), "str", 1],
    "decimal(5,2)": [Decimal("1.005"), Decimal("-1.234"), Decimal(7), 1, 1.5],
    "date": [dt.date(1969, 7, 20), dt.datetime(2262, 4, 12, 23, 59)],
    "timestamp": [dt.datetime(1969, 7, 20, 20, 17, 40), dt.datetime(2021, 3, 14, 3, 0),
                  dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc)],
    "array<int>": [[1, 2], (1, None), [1.5], "ab", {1}],
    "map<string,int>": [{"a": 1}, {"a": 1.5}, [("a", 1)]],
    "struct<a:int,b:string>": [Row(a=1, b="x"), (2, "y"), {"a": 3, "b": "z"}, [4, "w"]],
}


# Arrow-optimized Spark refuses many of them (each refusal costs a query of its own): fewer here.
ARROW_MISMATCHES = {
    "int": [1, 1.5, "1", True],
    "double": [1.5, 1, Decimal("1.5")],
    "string": ["s", 1, 1.5, True],
    "decimal(5,2)": [Decimal("1.005"), 1],
    "date": [dt.date(1969, 7, 20), dt.datetime(2262, 4, 12, 23, 59)],
    "timestamp": [dt.datetime(1969, 7, 20, 20, 17, 40), dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc)],
    "array<int>": [[1, 2], (1, None), [1.5]],
    "struct<a:int,b:string>": [Row(a=1, b="x"), (2, "y"), {"a": 3, "b": "z"}],
    "binary": [b"x", "str"],
}


def mismatch_pairs(arrow: bool, table: dict) -> dict:
    pairs = {}
    for i, (ddl, values) in enumerate(table.items()):
        pairs[f"m{i}"] = (*pair(lambda k, vs=values: vs[k % len(vs)], ddl, arrow), ("k",))
    return pairs


def outcome(df, column):
    try:
        return [r[0] for r in df.select(column).collect()]
    except Exception as e:  # noqa: BLE001  (the plain UDF's own failure is the expectation)
        return e


def test_classic_results_of_the_wrong_type_become_what_spark_makes_of_them(spark, node_calls):
    df = spark.range(0, 9, numPartitions=2).withColumn("k", F.col("id").cast("int"))
    compare(df, mismatch_pairs(False, MISMATCHES), node_calls)


def test_arrow_results_of_the_wrong_type_convert_or_fail_as_spark(spark):
    """A column per declared type; where plain Spark fails it, value by value up to the one it refuses."""
    df = spark.range(0, 9, numPartitions=1).withColumn("k", F.col("id").cast("int"))
    for ddl, values in ARROW_MISMATCHES.items():
        plain, accelerated = pair(lambda k, vs=values: vs[k % len(vs)], ddl, True)
        want = outcome(df, plain("k"))
        if not isinstance(want, Exception):
            got = outcome(df, accelerated("k"))
            assert not isinstance(got, Exception), f"{ddl}: plain gave {want}, accelerated: {got}"
            assert all(same(w, g) for w, g in zip(want, got)), f"{ddl}: plain {want} != accelerated {got}"
            continue
        for v in values:  # up to the first value plain Spark refuses
            plain, accelerated = pair(lambda k, v=v: v, ddl, True)
            want, got = outcome(df.limit(1), plain("k")), outcome(df.limit(1), accelerated("k"))
            if isinstance(want, Exception):
                assert isinstance(got, Exception), f"{ddl} <- {v!r}: plain failed ({want}), accelerated gave {got}"
                name = _error_name(want)
                assert name in str(got), f"{ddl} <- {v!r}: plain raised {name}; accelerated: {got}"
                break
            else:
                assert not isinstance(got, Exception), f"{ddl} <- {v!r}: plain gave {want}, accelerated: {got}"
                assert same(want, got), f"{ddl} <- {v!r}: plain {want} != accelerated {got}"


def _error_name(e: Exception) -> str:
    """What failed: the error class of an error the JVM raised ("[NUMERIC_VALUE_OUT_OF_RANGE...]"),
    else the Python exception type named last in Spark's PythonException text."""
    text = str(e)
    jvm = re.match(r"\s*\[([A-Z_.]+)\]", text)
    if jvm:
        return jvm.group(1)
    for line in reversed(text.splitlines()):
        m = re.fullmatch(r"(?:\w+\.)*([A-Z][a-z]\w*)(?:: .*)?", line.strip())  # [module.]Name[: message]
        if m:
            return m.group(1)
    return type(e).__name__


CLASSIC_ERRORS = [  # (declared type, returned value): plain Spark fails the query
    ("date", "2020-01-01"),
    ("decimal(3,2)", Decimal("12.5")),
    ("struct<a:int,b:string>", (1,)),
    ("struct<a:int,b:string>", 5),
]


@pytest.mark.parametrize("ddl,value", CLASSIC_ERRORS)
def test_classic_results_spark_refuses_fail_the_same_way(spark, ddl, value):
    df = spark.range(0, 3, numPartitions=1)
    plain, accelerated = pair(lambda i: value, ddl, False)
    want, got = outcome(df, plain("id")), outcome(df, accelerated("id"))
    assert isinstance(want, Exception) and isinstance(got, Exception), (want, got)
    assert _error_name(want) in str(got), (str(want)[-500:], str(got)[-500:])


@MODES
def test_exception_fails_the_query_with_type_message_and_name(spark, arrow):
    def reciprocal_of(x):
        if x == 3:
            raise ZeroDivisionError(f"no reciprocal for row {x}")
        return 1 / x

    df = spark.range(1, 6, numPartitions=1)
    plain, accelerated = pair(reciprocal_of, "double", arrow)
    with pytest.raises(Exception, match="no reciprocal for row 3") as want:
        df.select(plain("id")).collect()
    with pytest.raises(Exception, match="no reciprocal for row 3") as got:
        df.select(accelerated("id")).collect()
    assert "ZeroDivisionError" in str(want.value) and "ZeroDivisionError" in str(got.value)
    assert "reciprocal_of" in str(got.value)


@MODES
def test_on_error_null_nulls_only_failing_rows(spark, arrow):
    def inverse(x):
        if x % 4 == 0:
            raise ValueError("multiple of four")
        return 1 / x

    df = spark.range(1, 20, numPartitions=2)
    _, accelerated = pair(inverse, "double", arrow, on_error="null")
    out = df.select("id", accelerated("id").alias("y")).orderBy("id").collect()
    assert [(r.id, r.y) for r in out] == [(i, None if i % 4 == 0 else 1 / i) for i in range(1, 20)]


@MODES
def test_register_for_sql_keeps_name_type_and_determinism(spark, node_calls, arrow):
    def shout(s):
        return None if s is None else s.upper() + "!"

    plain, accelerated = pair(shout, "string", arrow)
    assert accelerated.__name__ == plain.__name__ == "shout"
    assert accelerated.returnType == plain.returnType
    assert accelerated.deterministic and not accelerated.asNondeterministic().deterministic
    name = f"qv_shout_{'arrow' if arrow else 'classic'}"
    registered = spark.udf.register(name, accelerated)
    assert registered.returnType == StringType()
    spark.udf.register(name + "_plain", plain)
    before = node_calls()
    got = spark.sql(f"SELECT id, {name}(CAST(id AS STRING)) AS a, {name}_plain(CAST(id AS STRING)) AS p "
                    "FROM range(5)").orderBy("id").collect()
    assert [r.a for r in got] == [r.p for r in got] == [f"{i}!" for i in range(5)]
    assert node_calls() > before
    nd = quiver.accelerate(udf(shout, "string", useArrow=arrow).asNondeterministic())
    assert nd.deterministic is False


@MODES
def test_keyword_arguments_bind_by_name(spark, arrow):
    def label(prefix, n=0):
        return f"{prefix}-{n}"

    df = spark.range(0, 4, numPartitions=1).withColumn("p", F.lit("r"))
    plain, accelerated = pair(label, "string", arrow)
    want = [r[0] for r in df.select(plain(n=F.col("id"), prefix=F.col("p"))).collect()]
    got = [r[0] for r in df.select(accelerated(n=F.col("id"), prefix=F.col("p"))).collect()]
    assert got == want == [f"r-{i}" for i in range(4)]
