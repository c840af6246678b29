"""@quiver.accelerate in a job written against a Spark Connect session: the function
still runs on the server's Python workers, which hand its batches to the node; the
results equal the plain UDF's."""

from __future__ import annotations

import sys
from typing import Iterator

import cloudpickle
import pandas as pd
import pytest

import quiver

pytest.importorskip("grpc")
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.functions import pandas_udf  # noqa: E402

# Functions defined here travel by value: Spark's workers cannot import this module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def node_python_tasks(node) -> int:
    with quiver.connect(node.unix) as c:
        return sum(n["python_tasks_total"] for n in c.status()["nodes"])


def test_the_connect_session_has_no_spark_context(connect):
    with pytest.raises(Exception):
        connect.sparkContext  # noqa: B018  (Connect sessions have none)


def test_scalar_pandas_udf(connect, node):
    def score(x: pd.Series, y: pd.Series) -> pd.Series:
        return (x * 3 + y).where(x % 7 != 0, None)

    plain = pandas_udf("double")(score)
    fast = pandas_udf("double")(quiver.accelerate(score))
    df = connect.range(0, 5000, 1, 4).select(F.col("id").cast("double").alias("x"),
                                               (F.col("id") % 13).cast("double").alias("y"))
    before = node_python_tasks(node)
    got = df.select(F.col("x"), fast("x", "y").alias("r")).orderBy("x").toPandas()
    want = df.select(F.col("x"), plain("x", "y").alias("r")).orderBy("x").toPandas()
    pd.testing.assert_frame_equal(got, want)
    assert got["r"].isna().sum() == len(range(0, 5000, 7))
    assert node_python_tasks(node) > before, "no task ran on the node"


def test_iterator_pandas_udf(connect, node):
    def running(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for s in batches:
            yield s.str.len() * 2

    plain = pandas_udf("long")(running)
    fast = pandas_udf("long")(quiver.accelerate(running))
    df = connect.range(0, 3000, 1, 3).select(F.concat(F.lit("w"), F.col("id").cast("string")).alias("s"))
    before = node_python_tasks(node)
    got = df.select("s", fast("s").alias("n")).orderBy("s").toPandas()
    want = df.select("s", plain("s").alias("n")).orderBy("s").toPandas()
    pd.testing.assert_frame_equal(got, want)
    assert node_python_tasks(node) > before, "no task ran on the node"


def test_a_raising_udf_fails_the_query_with_its_message(connect):
    def boom(x: pd.Series) -> pd.Series:
        raise ValueError("connect says no")

    fast = pandas_udf("double")(quiver.accelerate(boom))
    with pytest.raises(Exception, match="connect says no"):
        connect.range(10).select(fast(F.col("id").cast("double"))).collect()


def test_setup_cluster_says_a_connect_session_has_no_sparkcontext(connect):
    import quiver.spark

    with pytest.raises(quiver.QuiverError, match="classic SparkSession"):
        quiver.spark.setup_cluster(connect)
