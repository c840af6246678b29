"""mapInPandas and mapInArrow of any output length, accelerated, give exactly what the plain
functions give in a real Spark (local mode): explode 0-3 rows per row, filters, nothing at all,
several frames per input, empty partitions, batches of 3, nulls of every type, nested types,
columns yielded in another order, errors and wrong schemas with Spark's own messages."""

from __future__ import annotations

import datetime as dt
import re
import sys
from decimal import Decimal
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import Row
from pyspark.sql.types import (
    ArrayType, BinaryType, BooleanType, DateType, DecimalType, DoubleType, IntegerType, LongType,
    MapType, StringType, StructField, StructType, TimestampType,
)

import quiver
from test_spark_types import same  # noqa: E402  (NaN-aware equality of collected values)

# Spark's workers and the node's workers cannot import this module: ship it by value (Spark
# pickles with its own copy of cloudpickle, the node's with the package).
from pyspark import cloudpickle as spark_cloudpickle  # noqa: E402

for _pickler in (cloudpickle, spark_cloudpickle):
    _pickler.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

FLAT = StructType([
    StructField("id", LongType(), False),
    StructField("bo", BooleanType()),
    StructField("i", IntegerType()),
    StructField("l", LongType()),
    StructField("d", DoubleType()),
    StructField("dec", DecimalType(38, 18)),
    StructField("s", StringType()),
    StructField("bin", BinaryType()),
    StructField("dt", DateType()),
    StructField("ts", TimestampType()),
])
NESTED = StructType(FLAT.fields + [
    StructField("al", ArrayType(LongType())),
    StructField("m", MapType(StringType(), LongType())),
    StructField("st", StructType([StructField("a", IntegerType()), StructField("b", StringType())])),
])


def nested_rows() -> list:
    """Row 1 is null in every column but id; ids 0..14, so explode yields 0-3 rows each."""
    out = [[0, True, 1, 2, 1.5, Decimal("1.5"), "plain", b"ab", dt.date(2020, 2, 29),
            dt.datetime(2020, 2, 29, 12, 0, 0, 123456), [1, 2], {"x": 1}, Row(a=1, b="one")],
           [1] + [None] * (len(NESTED) - 1),
           [2, False, -2**31, 2**53, float("nan"), Decimal("-12345678901234567890.123456789012345678"),
            "é😀中", b"\x00\xff", dt.date(1969, 1, 1), dt.datetime(1900, 1, 1, 0, 0, 1), [], {}, Row(a=None, b=None)],
           [3, None, 2**31 - 1, -2**53, float("-inf"), Decimal("0.000000000000000001"), "", b"",
            dt.date(2262, 4, 12), dt.datetime(2021, 3, 14, 2, 30, 0), [None, 7], {"k": None}, Row(a=-5, b="")]]
    for i in range(4, 15):
        out.append([i, i % 2 == 0, i, i * 1000, i / 3, Decimal(i) / 7, f"s{i}", bytes([i]), dt.date(2000, 1, i),
                    dt.datetime(2001, 2, 3, 4, 5, i), [i, None], {str(i): i}, Row(a=i, b=str(i))])
    return out


@pytest.fixture(scope="module")
def nested(spark):
    return spark.createDataFrame(nested_rows(), NESTED).repartition(3, "id").cache()


@pytest.fixture(scope="module")
def flat(nested):
    return nested.select(*FLAT.fieldNames())


def check(plain_df, accelerated_df, calls=None, least: int = 1):
    """Both sides give the same rows (as a multiset); the accelerated one called the node."""
    before = calls() if calls else 0
    key = lambda r: repr(r)  # noqa: E731
    plain, acc = sorted(plain_df.collect(), key=key), sorted(accelerated_df.collect(), key=key)
    assert len(plain) == len(acc), (len(plain), len(acc))
    bad = [(p, a) for p, a in zip(plain, acc) if not same(p, a)]
    assert not bad, bad[:3]
    if calls:
        assert calls() - before >= least, "the accelerated function did not reach the node"
    return plain


# The functions, pandas and Arrow. id % 4 rows for row id (0-3), deterministic.

def explode_pd(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for df in it:
        out = df.loc[df.index.repeat(df["id"] % 4)]
        yield out.assign(k=out.groupby(level=0).cumcount().astype("int32")).reset_index(drop=True)


def explode_arrow(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for b in it:
        reps = pc.bit_wise_and(b["id"], 3).to_pylist()
        idx = [i for i, r in enumerate(reps) for _ in range(r)]
        ks = [k for r in reps for k in range(r)]
        out = b.take(pa.array(idx, pa.int64()))
        yield pa.RecordBatch.from_arrays(out.columns + [pa.array(ks, pa.int32())], names=out.schema.names + ["k"])


def with_k(schema: StructType) -> StructType:
    return StructType(schema.fields + [StructField("k", IntegerType())])


@pytest.mark.parametrize("size", [3, 10_000])
def test_explode_pandas(flat, batch_size, node_calls, size):
    batch_size(size)
    rows = check(flat.mapInPandas(explode_pd, with_k(FLAT)),
                 flat.mapInPandas(quiver.accelerate(explode_pd), with_k(FLAT)), node_calls)
    assert len(rows) == sum(i % 4 for i in range(15))


def test_explode_arrow_nested(nested, batch_size, node_calls):
    batch_size(3)
    check(nested.mapInArrow(explode_arrow, with_k(NESTED)),
          nested.mapInArrow(quiver.accelerate(explode_arrow), with_k(NESTED)), node_calls, least=3)


def test_explode_pandas_nested(nested, batch_size, node_calls):
    """Nested columns (arrays, maps, structs) travel to the node too."""
    batch_size(4)
    check(nested.mapInPandas(explode_pd, with_k(NESTED)),
          nested.mapInPandas(quiver.accelerate(explode_pd), with_k(NESTED)), node_calls, least=3)


def test_decorated_filter_several_yields_and_empty_frames(flat, batch_size, node_calls):
    batch_size(5)

    @quiver.accelerate
    def odd_rows_one_by_one(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            yield df.iloc[:0]
            for _, row in df[df["id"] % 2 == 1].iterrows():
                yield row.to_frame().T.astype(df.dtypes.to_dict())

    plain = odd_rows_one_by_one.__wrapped__
    rows = check(flat.mapInPandas(plain, FLAT), flat.mapInPandas(odd_rows_one_by_one, FLAT), node_calls)
    assert sorted(r.id for r in rows) == list(range(1, 15, 2))


def test_nothing_at_all(flat, node_calls):
    @quiver.accelerate
    def nothing(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _ in it:
            yield from ()

    assert check(flat.mapInArrow(nothing.__wrapped__, FLAT), flat.mapInArrow(nothing, FLAT), node_calls) == []


def test_empty_partitions(spark, node_calls):
    df = spark.range(0, 5, numPartitions=8).where("id != 2")
    schema = "id long, k int"
    check(df.mapInPandas(explode_pd, schema), df.mapInPandas(quiver.accelerate(explode_pd), schema), node_calls)
    empty = df.where("id < 0")
    assert empty.mapInPandas(quiver.accelerate(explode_pd), schema).collect() == []


def with_task_context(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from pyspark import TaskContext
    tc = TaskContext.get()
    # The stage differs between the two runs; the partition and attempt do not.
    where = f"{tc.partitionId()}/{tc.attemptNumber()}/{tc.getLocalProperty('quiver.test')}"
    for df in it:
        yield pd.DataFrame({"id": df["id"], "where": [where] * len(df)})


def test_task_context_on_the_node(spark, node_calls):
    """TaskContext.get() inside a map function that runs on the node is Spark's task's."""
    df = spark.range(0, 40, numPartitions=4)
    schema = "id long, where string"

    @quiver.accelerate
    def on_node(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import os
        assert os.environ.get("QUIVER_WORKER_ID") is not None, "not on the node"
        yield from with_task_context(it)

    spark.sparkContext.setLocalProperty("quiver.test", "prop")
    try:
        rows = check(df.mapInPandas(with_task_context, schema), df.mapInPandas(on_node, schema), node_calls, least=4)
    finally:
        spark.sparkContext.setLocalProperty("quiver.test", None)
    assert len({r.where for r in rows}) == 4 and all(r.where.endswith("/prop") for r in rows)


def test_columns_by_name(flat, node_calls):
    def reversed_columns(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in explode_pd(it):
            yield df[list(reversed(df.columns))]

    check(flat.mapInPandas(reversed_columns, with_k(FLAT)),
          flat.mapInPandas(quiver.accelerate(reversed_columns), with_k(FLAT)), node_calls)


def error_text(run) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        run()
    return type(info.value), str(info.value)


def test_errors_say_what_the_function_raised(flat):
    def fails(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            if (df["id"] == 7).any():
                raise ValueError("id 7 is not welcome")
            yield df

    plain_type, plain = error_text(lambda: flat.mapInPandas(fails, FLAT).collect())
    acc_type, acc = error_text(lambda: flat.mapInPandas(quiver.accelerate(fails), FLAT).collect())
    assert acc_type is plain_type
    for text in (plain, acc):
        assert "ValueError" in text and "id 7 is not welcome" in text


@pytest.mark.parametrize("schema", ["id long, missing string", "id long, s long"])
def test_wrong_schema_fails_as_plain_spark(flat, schema):
    plain_type, plain = error_text(lambda: flat.mapInPandas(explode_pd, schema).collect())
    acc_type, acc = error_text(lambda: flat.mapInPandas(quiver.accelerate(explode_pd), schema).collect())
    assert acc_type is plain_type
    classes = lambda text: set(re.findall(r"\[([A-Z_]+)\]", text))  # noqa: E731
    assert classes(plain) and classes(plain) <= classes(acc), (plain[:500], acc[:500])
