"""quiver.spark's grouped and cogrouped helpers in a job written against a Spark Connect
session: the plan they build (the groups' shuffle, sorted, mapInArrow) is sent to the server
like any other, its groups run as tasks on the node, and the results equal plain Spark
Connect's groupBy().applyInPandas, applyInArrow, agg and cogroup().applyInPandas and
applyInArrow on the same data; errors too."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import quiver
import quiver.spark as qs

pytest.importorskip("grpc")
from pyspark import cloudpickle as spark_cloudpickle  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.functions import pandas_udf  # noqa: E402
from sparkchecks import same_error  # noqa: E402

# Functions defined here travel by value: Spark's workers cannot import this module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

LEFT = "k long, i int, d double, s string, dec decimal(10,2), ts timestamp, st struct<a:int, b:string>"
RIGHT = "k long, label string, w double"


def left_rows() -> list:
    """Keys 0..3 and null, nulls in every column."""
    out = []
    for n in range(16):
        k = None if n % 7 == 6 else n % 4
        null = n % 5 == 3
        out.append((k,) + (None,) * 6 if null else (
            k, n * 10 - 3, [1.5, float("nan"), -0.0, 2.0][n % 4], ["x", "é😀", "", None][n % 4],
            Decimal(n) / 4, dt.datetime(2021, 3, 14, 1, 30) + dt.timedelta(hours=n), (n, str(n))))
    return out


def right_rows() -> list:
    """Keys 1 and 2 (also on the left), 7 (right only) and null."""
    return [(k, None if n % 3 == 2 else f"r{n}", n / 3) for n, k in enumerate([1, 2, 2, 7, 7, None, 1])]


@pytest.fixture(scope="module")
def left(connect):
    return connect.createDataFrame(left_rows(), LEFT).repartition(3)


@pytest.fixture(scope="module")
def right(connect):
    return connect.createDataFrame(right_rows(), RIGHT).repartition(2)


def tasks_total(node) -> int:
    with quiver.connect(node.unix) as c:
        return sum(n["tasks_total"] for n in c.status()["nodes"])


def check_same(plain, accelerated, min_rows: int = 1) -> list:
    """The same schema and the same rows (in any order, NaN equal to NaN)."""
    assert accelerated.schema == plain.schema
    p = sorted(map(repr, plain.collect()))
    a = sorted(map(repr, accelerated.collect()))
    assert len(p) >= min_rows, f"only {len(p)} rows"
    assert a == p
    return p


def describe(key, pdf):
    return pd.DataFrame({"key": [repr(key)], "n": [len(pdf)], "dtypes": [repr(list(pdf.dtypes))],
                         "rows": ["\n".join(sorted(repr(r) for r in pdf.to_dict("records")))]})


def test_apply_in_pandas(left, node):
    schema = "key string, n long, dtypes string, rows string"
    before = tasks_total(node)
    for g in (left.groupBy("k"), left.groupBy("k", (F.col("i") % 2).alias("p")), left.groupBy()):
        check_same(g.applyInPandas(describe, schema),
                   qs.apply_in_pandas(g, describe, schema, fallback="error"))
    assert tasks_total(node) - before >= 5, "the groups did not run as tasks on the node"

    def reordered(pdf):
        return pd.DataFrame({"s": pdf["s"], "k": pdf["k"]})

    g = left.groupBy("k")
    check_same(g.applyInPandas(reordered, "k long, s string"),
               qs.apply_in_pandas(g, reordered, "k long, s string"), min_rows=16)


def test_session_settings_reach_the_groups(connect, left):
    """Batch size (iterator forms) and the legacy by-position setting, read from the Connect
    session as Spark's workers read them."""
    def count_batches(key: tuple, it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sizes = [len(pdf) for pdf in it]
        yield pd.DataFrame({"key": [repr(key)], "batches": [len(sizes)], "rows": [sum(sizes)]})

    def reordered(pdf):
        return pd.DataFrame({"s": pdf["s"], "k": pdf["k"]})

    g = left.groupBy("k")
    settings = {"spark.sql.execution.arrow.maxRecordsPerBatch": "2",
                "spark.sql.legacy.execution.pandas.groupedMap.assignColumnsByName": "false"}
    for key, value in settings.items():
        connect.conf.set(key, value)
    try:
        rows = check_same(g.applyInPandas(count_batches, "key string, batches long, rows long"),
                          qs.apply_in_pandas(g, count_batches, "key string, batches long, rows long"))
        assert any("batches=2" in r for r in rows), rows
        check_same(g.applyInPandas(reordered, "a string, b long"),
                   qs.apply_in_pandas(g, reordered, "a string, b long"), min_rows=16)
    finally:
        for key in settings:
            connect.conf.unset(key)


def test_no_node_falls_back_or_fails(left, right, tmp_path):
    dead = f"grpc+unix://{tmp_path}/nobody.sock"
    g = left.groupBy("k")
    schema = "key string, n long, dtypes string, rows string"
    with pytest.raises(Exception, match="no quiver node reachable"):
        qs.apply_in_pandas(g, describe, schema, address=dead, fallback="error").collect()
    check_same(g.applyInPandas(describe, schema), qs.apply_in_pandas(g, describe, schema, address=dead))


def test_apply_in_arrow(left, node):
    def keyed(key, table):  # no hints: Connect's applyInArrow fails on partial ones
        return pa.table({"key": [repr(key)], "n": [table.num_rows], "top": [pc.max(table["i"]).as_py()],
                         "schema": [str(table.schema)]}).cast(
            pa.schema([("key", pa.string()), ("n", pa.int64()), ("top", pa.int32()), ("schema", pa.string())]))

    g = left.drop("ts").groupBy("k")
    schema = "key string, n long, top int, schema string"
    before = tasks_total(node)
    check_same(g.applyInArrow(keyed, schema), qs.apply_in_arrow(g, keyed, schema, fallback="error"), min_rows=5)
    assert tasks_total(node) > before, "the groups did not run as tasks on the node"


def test_agg(left, node):
    @pandas_udf("double")
    def mean_udf(v: pd.Series) -> float:
        return v.mean()

    @pandas_udf("string")
    def joined(s: pd.Series, i: pd.Series) -> str:
        return "|".join(sorted(f"{a}:{b}" for a, b in zip(s.fillna("-"), i.fillna(-1))))

    before = tasks_total(node)
    for g in (left.groupBy("k"), left.groupBy("s", (F.col("k") % 2).alias("odd")), left.groupBy()):
        check_same(g.agg(mean_udf("d"), joined("s", "i").alias("j")),
                   qs.agg(g, (mean_udf, "d"), j=(joined, "s", "i"), fallback="error"))
    assert tasks_total(node) - before >= 5, "the groups did not run as tasks on the node"


def pair(key, lpdf, rpdf):
    return pd.DataFrame({"key": [repr(key)], "nl": [len(lpdf)], "nr": [len(rpdf)],
                         "dtypes": [repr((list(lpdf.dtypes), list(rpdf.dtypes)))],
                         "right": ["\n".join(sorted(repr(r) for r in rpdf.to_dict("records")))]})


def test_cogroup_apply_in_pandas(left, right, node):
    schema = "key string, nl long, nr long, dtypes string, right string"
    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    before = tasks_total(node)
    rows = check_same(cg.applyInPandas(pair, schema),
                      qs.cogroup_apply_in_pandas(cg, pair, schema, fallback="error"), min_rows=6)
    assert tasks_total(node) - before >= 6, "the pairs did not run as tasks on the node"
    assert any("key='(np.int64(7),)', nl=0, nr=2" in r for r in rows), rows
    empty = left.where("k > 100").groupBy("k").cogroup(right.groupBy("k"))
    check_same(empty.applyInPandas(pair, schema), qs.cogroup_apply_in_pandas(empty, pair, schema), min_rows=4)


def test_cogroup_apply_in_arrow(left, right):
    def sizes(key, lt, rt):
        return pa.table({"key": [repr(key)], "nl": [lt.num_rows], "nr": [rt.num_rows]})

    cg = left.drop("ts").groupBy("k").cogroup(right.groupBy("k"))
    schema = "key string, nl long, nr long"
    check_same(cg.applyInArrow(sizes, schema), qs.cogroup_apply_in_arrow(cg, sizes, schema), min_rows=6)


def test_errors_match_spark_connect(left, right):
    def fails(key, pdf):
        if key[0] == 2:
            raise LookupError(f"no model for store {key[0]}")
        return pdf[["k"]]

    g = left.groupBy("k")
    same_error(lambda: g.applyInPandas(fails, "k long"),
               lambda: qs.apply_in_pandas(g, fails, "k long", fallback="error"), "LookupError")

    def wrong(lpdf, rpdf):
        return pd.DataFrame({"x": [1]})

    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    same_error(lambda: cg.applyInPandas(wrong, "k long"),
               lambda: qs.cogroup_apply_in_pandas(cg, wrong, "k long", fallback="error"),
               "RESULT_COLUMN_NAMES_MISMATCH")
    with pytest.raises(ValueError, match="Cogroup keys must have same size: 2 != 1"):
        qs.cogroup_apply_in_pandas(left.groupBy("k", "s").cogroup(right.groupBy("k")), wrong, "k long")
    with pytest.raises(TypeError, match="only groupBy"):
        qs.apply_in_pandas(left.rollup("k"), describe, "key string")
