"""quiver.spark's grouped helpers give exactly what Spark's own groupBy().applyInPandas,
applyInArrow and agg give on the same data, in a real Spark (local mode): nulls of every type
in values and keys, empty groups and partitions, batches of 3 rows, several and computed keys,
key-taking functions, iterator forms, columns by name and by position, schema and function
errors with their messages; and a skewed partition's groups run as many tasks on the node."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from decimal import Decimal
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pyspark")

from pyspark import cloudpickle as spark_cloudpickle
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType, BinaryType, BooleanType, DateType, DecimalType, DoubleType, FloatType, IntegerType,
    LongType, MapType, StringType, StructField, StructType, TimestampNTZType, TimestampType,
)

import quiver.spark as qs
from sparkchecks import error_line, same_error  # noqa: F401  (error_line: test_spark_cogroup)
from test_spark_types import same  # equality of collected values, NaN and nesting included

# Spark's workers and the node's workers cannot import this module: ship it by value (pyspark
# pickles with its own copy of cloudpickle).
cloudpickle.register_pickle_by_value(sys.modules[__name__])
spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

SCHEMA = StructType([
    StructField("k", LongType()),
    StructField("bo", BooleanType()),
    StructField("i", IntegerType()),
    StructField("f", FloatType()),
    StructField("d", DoubleType()),
    StructField("dec", DecimalType(38, 18)),
    StructField("s", StringType()),
    StructField("bin", BinaryType()),
    StructField("dt", DateType()),
    StructField("ts", TimestampType()),
    StructField("ntz", TimestampNTZType()),
    StructField("al", ArrayType(LongType())),
    StructField("m", MapType(StringType(), LongType())),
    StructField("st", StructType([StructField("a", IntegerType()), StructField("b", StringType())])),
])


def rows():
    """Groups k = 0..3 and a null k; every other column has nulls, in several groups."""
    out = []
    for n in range(20):
        k = None if n % 7 == 6 else n % 4
        null = n % 5 == 3
        out.append([
            k,
            None if null else n % 2 == 0,
            None if null else n * 1000 - 7,
            None if null else [1.5, float("nan"), -0.0, float("inf")][n % 4],
            None if null else [2.25, float("nan"), 1e300, -1.0][n % 4],
            None if null else Decimal(n) / Decimal(8) - Decimal("0.000000000000000001"),
            None if null else ["plain", "é😀中", "", "x" * 40][n % 4],
            None if null else bytes([n, 0, 255]),
            None if null else dt.date(1969, 12, 31) + dt.timedelta(days=n * 40),
            None if null else dt.datetime(2021, 3, 14, 1, 30) + dt.timedelta(minutes=17 * n),
            None if null else dt.datetime(1969, 12, 31, 23) + dt.timedelta(hours=n),
            None if null else [n, None, -n][: n % 4],
            None if null else ({"a": n, "b": None} if n % 2 else {}),
            None if null else Row(a=None if n % 3 else n, b=str(n)),
        ])
    return out


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(rows(), SCHEMA).repartition(3).cache()


def tasks_total(client) -> int:
    return client.status()["nodes"][0]["tasks_total"]


def check_same(plain, accelerated, min_rows: int = 1) -> list:
    """The same schema and the same rows (in any order)."""
    assert accelerated.schema == plain.schema
    p = sorted(plain.collect(), key=repr)
    a = sorted(accelerated.collect(), key=repr)
    assert len(p) >= min_rows, f"only {len(p)} rows"
    assert len(a) == len(p), f"plain {len(p)} rows, accelerated {len(a)}"
    bad = [f"plain {x!r:.300}\n  acc {y!r:.300}" for x, y in zip(p, a) if not same(x, y)]
    assert not bad, "\n".join(bad[:5])
    return p


def ran_on_node(client, before: int, at_least: int = 1) -> None:
    assert tasks_total(client) - before >= at_least, "the groups did not run as tasks on the node"


# Grouped map, pandas.

def identity(pdf: pd.DataFrame) -> pd.DataFrame:
    return pdf


def test_identity_keeps_every_type_and_null(frame, client):
    before = tasks_total(client)
    g = frame.groupBy("k")
    check_same(g.applyInPandas(identity, frame.schema),
               qs.apply_in_pandas(g, identity, frame.schema), min_rows=20)
    ran_on_node(client, before)


def test_keys_of_every_type_with_the_key_taking_form(frame, client):
    def describe(key, pdf):
        return pd.DataFrame({"key": [repr(key)], "n": [len(pdf)], "first_i": [pdf["i"].iloc[0]]})

    schema = "key string, n long, first_i double"
    before = tasks_total(client)
    # every type at once (the key tuple the function gets), then one by one where grouping
    # equal values is subtle: NaN and -0.0, strings, nested values, zoned timestamps
    every = ["bo", "i", "f", "d", "dec", "s", "bin", "dt", "ts", "ntz", "al", "st"]
    for cols in [every, ["f"], ["s"], ["st"], ["al"], ["ts"]]:
        g = frame.groupBy(*cols)
        check_same(g.applyInPandas(describe, schema), qs.apply_in_pandas(g, describe, schema), min_rows=3)
    ran_on_node(client, before)


def test_several_and_computed_keys_and_key_columns_in_output(frame):
    def summary(key, pdf):
        return pd.DataFrame({"k": [key[0]], "parity": [key[1]], "n": [len(pdf)],
                             "total": [pdf["i"].sum()]})

    schema = "k long, parity long, n long, total double"
    g = frame.groupBy("k", (F.col("i") % 2).alias("parity"))
    check_same(g.applyInPandas(summary, schema), qs.apply_in_pandas(g, summary, schema), min_rows=5)

    def echo_keys(pdf):
        return pdf[["k", "s"]].assign(n=len(pdf))

    g = frame.groupBy(F.col("k"), F.upper("s"))
    check_same(g.applyInPandas(echo_keys, "k long, s string, n long"),
               qs.apply_in_pandas(g, echo_keys, "k long, s string, n long"), min_rows=20)


def test_empty_results_partitions_and_frames(spark, frame, client):
    def odd_groups_only(pdf):
        if pdf["k"].iloc[0] in (0, 2) or pd.isna(pdf["k"].iloc[0]):
            return pd.DataFrame()  # no rows and no columns: Spark accepts it
        return pdf[["k", "i"]]

    def empty_typed(pdf):
        return pd.DataFrame({"k": pd.Series([], dtype="int64"), "i": pd.Series([], dtype="float64")})

    g = frame.groupBy("k")
    check_same(g.applyInPandas(odd_groups_only, "k long, i int"),
               qs.apply_in_pandas(g, odd_groups_only, "k long, i int"), min_rows=5)
    out = qs.apply_in_pandas(g, empty_typed, "k long, i int")
    check_same(g.applyInPandas(empty_typed, "k long, i int"), out, min_rows=0)
    assert out.count() == 0
    # one group, more partitions than groups, and an empty frame
    one = spark.range(0, 10, numPartitions=4).withColumn("k", F.lit(1))
    check_same(one.groupBy("k").applyInPandas(identity, one.schema),
               qs.apply_in_pandas(one.groupBy("k"), identity, one.schema), min_rows=10)
    none = frame.where("k > 100")
    check_same(none.groupBy("k").applyInPandas(identity, frame.schema),
               qs.apply_in_pandas(none.groupBy("k"), identity, frame.schema), min_rows=0)
    whole = frame.groupBy()  # no keys: every row one group
    check_same(whole.applyInPandas(lambda p: pd.DataFrame({"n": [len(p)]}), "n long"),
               qs.apply_in_pandas(whole, lambda p: pd.DataFrame({"n": [len(p)]}), "n long"))


def test_batches_of_3_and_iterator_forms(frame, batch_size):
    batch_size(3)

    def count_batches(key: tuple, it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sizes = [len(pdf) for pdf in it]
        yield pd.DataFrame({"key": [repr(key)], "batches": [len(sizes)], "rows": [sum(sizes)]})

    def per_batch(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in it:
            yield pdf[["k", "d"]]

    g = frame.groupBy("k")
    schema = "key string, batches long, rows long"
    got = check_same(g.applyInPandas(count_batches, schema), qs.apply_in_pandas(g, count_batches, schema))
    assert max(r.batches for r in got) > 1  # groups did arrive in several batches
    check_same(g.applyInPandas(per_batch, "k long, d double"),
               qs.apply_in_pandas(g, per_batch, "k long, d double"), min_rows=20)
    check_same(g.applyInPandas(identity, frame.schema), qs.apply_in_pandas(g, identity, frame.schema),
               min_rows=20)


def test_columns_by_name_by_position_and_coerced(frame, spark):
    def reordered(pdf):
        return pd.DataFrame({"s": pdf["s"], "total": pdf["i"] * 2, "k": pdf["k"]})

    def positional(pdf):
        return pd.DataFrame({0: pdf["k"], 1: pdf["i"].astype("float64") / 3})

    def coerced(pdf):  # ints into a double, floats into an int column, as Spark converts them
        return pd.DataFrame({"a": pdf["k"].fillna(0).astype("int64"), "b": pdf["d"].fillna(0) * 0})

    g = frame.groupBy("k")
    cases = [(reordered, "k long, total long, s string"), (positional, "k long, third double"),
             (coerced, "a double, b int")]
    for fn, schema in cases:
        check_same(g.applyInPandas(fn, schema), qs.apply_in_pandas(g, fn, schema), min_rows=5)
    key = "spark.sql.legacy.execution.pandas.groupedMap.assignColumnsByName"
    spark.conf.set(key, "false")
    try:  # the legacy setting: by position even for string labels
        fn, schema = reordered, "a string, b long, c long"
        check_same(g.applyInPandas(fn, schema), qs.apply_in_pandas(g, fn, schema), min_rows=5)
    finally:
        spark.conf.unset(key)


SCHEMA_ERRORS = {
    "wrong names": (lambda pdf: pd.DataFrame({"x": [1], "k": [2]}), "k long, y long",
                    "RESULT_COLUMN_NAMES_MISMATCH"),
    "wrong count": (lambda pdf: pd.DataFrame({0: [1], 1: [2], 2: [3]}), "k long, y long",
                    "RESULT_COLUMN_SCHEMA_MISMATCH"),
    "not a frame": (lambda pdf: 42, "k long", "UDF_RETURN_TYPE"),
    "incompatible": (lambda pdf: pd.DataFrame({"k": ["not a number"]}), "k long", "PySparkValueError"),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS)
def test_schema_errors_match_spark(frame, case):
    fn, schema, kind = SCHEMA_ERRORS[case]
    g = frame.groupBy("k")
    same_error(lambda: g.applyInPandas(fn, schema), lambda: qs.apply_in_pandas(g, fn, schema, fallback="error"), kind)


def test_function_exception_type_and_message(frame):
    def fails(key, pdf):
        if key[0] == 2:
            raise LookupError(f"no model for store {key[0]}")
        return pdf[["k"]]

    g = frame.groupBy("k")
    line, err = same_error(lambda: g.applyInPandas(fails, "k long"),
                           lambda: qs.apply_in_pandas(g, fails, "k long", fallback="error"), "LookupError")
    assert line == "LookupError: no model for store 2"
    assert "remote traceback" in str(err)


# Grouped map, Arrow.

def test_apply_in_arrow_matches_spark(frame, batch_size, client):
    def ident(table: pa.Table) -> pa.Table:
        return table

    def keyed(key, table):
        return pa.table({"key": [repr(key)], "n": [table.num_rows],
                         "top": [pc.max(table["i"]).as_py()]}).cast(
            pa.schema([("key", pa.string()), ("n", pa.int64()), ("top", pa.int32())]))

    def batches(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in it:
            yield pa.record_batch({"rows": pa.array([b.num_rows], pa.int64())})

    def reordered(table):
        return table.select(["s", "k"])

    # Spark hands timestamps over in the session zone and wants them back in UTC: an
    # identity over ts fails, in both, with the same message.
    g = frame.groupBy("k")
    same_error(lambda: g.applyInArrow(ident, frame.schema),
               lambda: qs.apply_in_arrow(g, ident, frame.schema, fallback="error"), "RESULT_COLUMN_TYPES_MISMATCH")
    no_ts = frame.drop("ts")
    g = no_ts.groupBy("k")
    before = tasks_total(client)
    check_same(g.applyInArrow(ident, no_ts.schema), qs.apply_in_arrow(g, ident, no_ts.schema), min_rows=20)
    ran_on_node(client, before)
    check_same(g.applyInArrow(keyed, "key string, n long, top int"),
               qs.apply_in_arrow(g, keyed, "key string, n long, top int"), min_rows=5)
    check_same(g.applyInArrow(reordered, "k long, s string"),
               qs.apply_in_arrow(g, reordered, "k long, s string"), min_rows=20)
    batch_size(3)
    check_same(g.applyInArrow(batches, "rows long"), qs.apply_in_arrow(g, batches, "rows long"), min_rows=5)
    same_error(lambda: g.applyInArrow(ident, "k int"),
               lambda: qs.apply_in_arrow(g, ident, "k int", fallback="error"), "RESULT_COLUMN_NAMES_MISMATCH")


# Grouped aggregates.

@pandas_udf(DoubleType())
def mean_udf(v: pd.Series) -> float:
    return v.mean()


@pandas_udf(LongType())
def count_udf(v: pd.Series) -> int:
    return len(v)


@pandas_udf(StringType())
def joined(s: pd.Series, i: pd.Series) -> str:
    return "|".join(sorted(f"{a}:{b}" for a, b in zip(s.fillna("-"), i.fillna(-1))))


@pandas_udf(ArrayType(LongType()))
def bounds(i: pd.Series) -> list:
    return [None if pd.isna(i.min()) else int(i.min()), None if pd.isna(i.max()) else int(i.max())]


def test_aggregates_match_spark(frame, batch_size, client):
    g = frame.groupBy("k")
    before = tasks_total(client)
    check_same(g.agg(mean_udf("d"), count_udf("i"), joined("s", "i"), bounds("i").alias("b")),
               qs.agg(g, (mean_udf, "d"), (count_udf, "i"), (joined, "s", "i"), b=(bounds, "i")),
               min_rows=5)
    ran_on_node(client, before)
    for keys in [("s",), ("k", F.col("i") % 3), ("ts",), ("dec", "bo")]:
        g = frame.groupBy(*keys)
        check_same(g.agg(mean_udf(F.col("d")), count_udf("k")),
                   qs.agg(g, (mean_udf, F.col("d")), (count_udf, "k")), min_rows=2)
    batch_size(3)
    whole = frame.groupBy()
    check_same(whole.agg(mean_udf("i"), count_udf("i")), qs.agg(whole, (mean_udf, "i"), (count_udf, "i")))
    none = frame.where("k > 100").groupBy("k")
    check_same(none.agg(mean_udf("i")), qs.agg(none, (mean_udf, "i")), min_rows=0)


def test_aggregate_errors(frame):
    @pandas_udf("double")
    def broken(v: pd.Series) -> float:
        raise ZeroDivisionError("empty basket")

    g = frame.groupBy("k")
    same_error(lambda: g.agg(broken("d")), lambda: qs.agg(g, (broken, "d"), fallback="error"), "ZeroDivisionError")
    with pytest.raises(TypeError, match="not a grouped aggregate pandas_udf"):
        qs.agg(g, (pandas_udf(lambda s: s, "double"), "d"))
    with pytest.raises(TypeError, match="tuple"):
        qs.agg(g, mean_udf("d"))
    with pytest.raises(TypeError, match="only groupBy"):
        qs.apply_in_pandas(frame.rollup("k"), identity, frame.schema)


# Skew, and no node.

def test_skewed_partition_runs_its_groups_as_many_tasks(spark, client):
    """Most groups hash to one partition; the node still runs them as one task each, on
    several workers (the node's counters and the workers' ids say so)."""
    parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    keys = spark.range(0, 400).withColumn("p", F.expr(f"pmod(hash(id), {parts})")).collect()
    hot = [r.id for r in keys if r.p == 0][:16]
    cold = [r.id for r in keys if r.p != 0][:2]
    df = spark.createDataFrame([(k, float(j)) for k in hot + cold for j in range(5)], "k long, v double")

    def work(key, pdf):
        time.sleep(0.03)  # long enough that the node gives each group a task of its own
        return pd.DataFrame({"k": [key[0]], "total": [pdf["v"].sum()],
                             "worker": [os.environ.get("QUIVER_WORKER_ID", "spark")]})

    g = df.groupBy("k")
    before = tasks_total(client)
    out = qs.apply_in_pandas(g, work, "k long, total double, worker string", fallback="error").collect()
    ran_on_node(client, before, len(hot))  # slow groups: the node gives each a task
    plain = g.applyInPandas(work, "k long, total double, worker string").collect()
    assert sorted((r.k, r.total) for r in out) == sorted((r.k, r.total) for r in plain)
    workers = {r.worker for r in out if r.k in hot}
    nworkers = client.status()["nodes"][0].get("workers", 1)
    assert "spark" not in workers
    if isinstance(nworkers, int) and nworkers > 1:
        assert len(workers) > 1, f"the hot partition's groups all ran on {workers}"


def test_many_small_groups_share_tasks(spark, client):
    """A partition of 300 cheap groups: past the first SOLO_GROUPS, several go to a task
    (fewer tasks than groups), every group's row comes back once, as plain Spark's; a
    group that fails inside a shared task fails the query with its own error."""
    from quiver.spark._partition import SOLO_GROUPS

    df = spark.createDataFrame([(k, float(j)) for k in range(300) for j in range(3)], "k long, v double")
    g = df.coalesce(1).groupBy("k")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        def total(key, pdf):
            return pd.DataFrame({"k": [key[0]], "total": [pdf["v"].sum()]})

        before = tasks_total(client)
        check_same(g.applyInPandas(total, "k long, total double"),
                   qs.apply_in_pandas(g, total, "k long, total double", fallback="error"), min_rows=300)
        tasks = tasks_total(client) - before
        assert SOLO_GROUPS < tasks < 300, f"{tasks} tasks for 300 cheap groups"

        def fails_late(key, pdf):
            if key[0] == 250:
                raise ValueError("group 250 is bad")
            return pd.DataFrame({"k": [key[0]], "total": [pdf["v"].sum()]})

        with pytest.raises(Exception) as got:
            qs.apply_in_pandas(g, fails_late, "k long, total double", fallback="error").collect()
        assert error_line(got, "group 250") == "ValueError: group 250 is bad"
    finally:
        spark.conf.unset("spark.sql.shuffle.partitions")


def test_no_node_falls_back_or_fails(frame, tmp_path):
    dead = f"grpc+unix://{tmp_path}/nobody.sock"
    g = frame.groupBy("k")
    with pytest.raises(Exception, match="no quiver node reachable.*nobody.sock"):
        qs.apply_in_pandas(g, identity, frame.schema, address=dead, fallback="error").collect()
    check_same(g.applyInPandas(identity, frame.schema),
               qs.apply_in_pandas(g, identity, frame.schema, address=dead), min_rows=20)
    check_same(g.agg(mean_udf("d")), qs.agg(g, (mean_udf, "d"), address=dead), min_rows=5)
    with pytest.raises(ValueError, match="fallback must be"):
        qs.apply_in_pandas(g, identity, frame.schema, fallback="maybe")
