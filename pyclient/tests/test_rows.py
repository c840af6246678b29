"""quiver._rows without Spark running: the classic path's coercions as the JVM applies them, Java's
strings of doubles, and rows run in another process's local time zone (a node worker's TZ differs
from the Spark worker's). Spark itself is compared in test/spark/test_spark_rows.py."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import cloudpickle
import pyarrow as pa
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import types as T  # noqa: E402

from quiver._rows.classic import _java_double, column_values, result_converter  # noqa: E402
from quiver._rows.run import RowUDF  # noqa: E402


@pytest.mark.parametrize("d,java", [
    (1.0, "1.0"), (1e10, "1.0E10"), (1.5e-5, "1.5E-5"), (123456.789, "123456.789"), (1e7, "1.0E7"),
    (9999999.0, "9999999.0"), (0.001, "0.001"), (1e-4, "1.0E-4"), (-2.5e20, "-2.5E20"),
    (-0.0, "-0.0"), (float("nan"), "NaN"), (float("-inf"), "-Infinity"),
])
def test_java_double_to_string(d, java):
    assert _java_double(d) == java


@pytest.mark.parametrize("spark_type,value,stored", [
    (T.IntegerType(), 7, 7),
    (T.IntegerType(), 1.5, None),               # a Double where an int is declared
    (T.IntegerType(), True, None),              # a Boolean
    (T.IntegerType(), "7", None),
    (T.IntegerType(), 2**40 + 5, 5),            # a Long, narrowed as Java does
    (T.ByteType(), 300, 44),
    (T.LongType(), 2**70, None),                # a BigInteger
    (T.DoubleType(), 1, None),                  # an Integer where a double is declared
    (T.StringType(), 1.5e-5, "1.5E-5"),
    (T.StringType(), True, "true"),
    (T.StringType(), [1, None, "a"], "[1, null, a]"),
    (T.BinaryType(), "é", "é".encode()),
    (T.DecimalType(5, 2), Decimal("1.005"), Decimal("1.01")),  # ROUND_HALF_UP
    (T.DecimalType(5, 2), 1, None),
    (T.ArrayType(T.IntegerType()), (1, 2.5), [1, None]),
    (T.ArrayType(T.IntegerType()), {1}, None),  # a set is no List
    (T.MapType(T.StringType(), T.IntegerType()), {"a": 1.5}, [("a", None)]),
    (T.DateType(), dt.datetime(2262, 4, 12, 23, 59), dt.date(2262, 4, 12)),
])
def test_classic_results_as_the_jvm_stores_them(spark_type, value, stored):
    assert result_converter(spark_type)(value) == stored


def test_classic_refusals_raise_as_spark_does():
    with pytest.raises(AttributeError, match="toordinal"):
        result_converter(T.DateType())("2020-01-01")
    with pytest.raises(ArithmeticError, match="NUMERIC_VALUE_OUT_OF_RANGE"):
        result_converter(T.DecimalType(3, 2))(Decimal("12.5"))
    with pytest.raises(ValueError, match="STRUCT_ARRAY_LENGTH_MISMATCH"):
        result_converter(T.StructType([T.StructField("a", T.IntegerType()),
                                       T.StructField("b", T.StringType())]))((1,))
    with pytest.raises(TypeError, match="toString"):
        result_converter(T.StringType())({"a": 1, "b": 2})


def test_classic_arguments_rows_and_nested_values():
    st = T.StructType([T.StructField("a", T.IntegerType()), T.StructField("d", T.DateType())])
    arr = pa.array([{"a": 1, "d": dt.date(1969, 12, 31)}, None], pa.struct([("a", pa.int32()), ("d", pa.date32())]))
    got = column_values(arr.slice(0, 2), st)
    assert got[0] == T.Row(a=1, d=dt.date(1969, 12, 31)) and got[0].d == dt.date(1969, 12, 31)
    assert got[1] is None
    maps = pa.array([[("k", [1, None])], None], pa.map_(pa.string(), pa.list_(pa.int64())))
    assert column_values(maps.slice(1), T.MapType(T.StringType(), T.ArrayType(T.LongType()))) == [None]
    assert column_values(maps, T.MapType(T.StringType(), T.ArrayType(T.LongType())))[0] == {"k": [1, None]}


@pytest.mark.parametrize("arrow", [False, True], ids=["classic", "arrow"])
def test_rows_see_the_spark_workers_local_zone_wherever_they_run(arrow):
    rows = RowUDF(lambda t: None if t is None else t.hour, T.IntegerType(), arrow=arrow)
    rows.tz = "Asia/Tokyo"  # the Spark worker's zone, recorded before the call
    rows = cloudpickle.loads(cloudpickle.dumps(rows))  # as a node's worker gets it
    mine = os.environ.get("TZ")
    ts = pa.array([0, None], pa.int64()).cast(pa.timestamp("us", tz="America/Los_Angeles"))
    assert rows(ts).to_pylist() == [9, None]  # 1970-01-01 00:00 UTC is 09:00 in Tokyo
    assert os.environ.get("TZ") == mine, "the process's zone is restored after the call"


@pytest.mark.parametrize("arrow", [False, True], ids=["classic", "arrow"])
def test_row_exceptions_propagate_unchanged(arrow):
    def inverse(x):
        return 1 / x

    rows = RowUDF(inverse, T.DoubleType(), arrow=arrow)
    assert rows(pa.array([1, 2], pa.int64())).to_pylist() == [1.0, 0.5]
    with pytest.raises(ZeroDivisionError):
        rows(pa.array([1, 0], pa.int64()))
