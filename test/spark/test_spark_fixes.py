"""Cases that broke when tried as a new user would, in a real Spark (local mode), accelerated
against plain on the same data: nested structs built from dicts and Rows without returns=,
nested struct and array-of-struct inputs, a DataFrame with integer column labels for a struct,
Spark's TaskContext inside the function, and a scalar returned where a Series is due."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from pyspark import TaskContext
from pyspark import cloudpickle as pyspark_cloudpickle
from pyspark.sql import Row
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType, DoubleType, IntegerType, LongType, StringType, StructField, StructType,
)

import quiver
from test_spark_types import compare, series

# Spark's and the node's workers cannot import this module: ship it by value, with both
# picklers (pyspark pickles UDFs with its own copy of cloudpickle).
cloudpickle.register_pickle_by_value(sys.modules[__name__])
pyspark_cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

ADDRESS = StructType([StructField("city", StringType()), StructField("zip", IntegerType())])
ITEM = StructType([StructField("sku", StringType()), StructField("qty", LongType()),
                   StructField("price", DoubleType())])
SCHEMA = StructType([
    StructField("id", LongType()),
    StructField("name", StringType()),
    StructField("person", StructType([StructField("name", StringType()), StructField("address", ADDRESS)])),
    StructField("items", ArrayType(ITEM)),
])


def rows():
    out = []
    for i in range(12):
        person = None if i == 5 else Row(name=f"p{i}", address=None if i == 3 else Row(city=f"c{i % 3}", zip=i))
        items = None if i == 7 else [Row(sku=f"s{k}", qty=k + i, price=None if k == 1 else 1.5 * k)
                                     for k in range(i % 4)]
        out.append((i, f"first{i} last{i}", person, items))
    return out


@pytest.fixture(scope="module")
def people(spark):
    return spark.createDataFrame(rows(), SCHEMA).repartition(2, "id").cache()


def both(fn, spark_type, *cols, **options):
    return {fn.__name__: series(fn, spark_type, *cols, **options)}


# Nested struct results built from dicts and Rows, no returns=.

def struct_of_dicts(x: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"a": x * 1.5, "inner": [{"label": f"n{v}", "score": v / 4} for v in x]})


def struct_of_rows(x: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"a": x * 1.5, "inner": [Row(label=f"n{v}", score=v / 4) for v in x]})


def array_of_structs(x: pd.Series) -> pd.Series:
    return pd.Series([[{"k": f"k{j}", "v": j * 0.5, "n": j} for j in range(v % 3)] for v in x])


def map_of_structs(x: pd.Series) -> pd.Series:
    return pd.Series([{f"m{v}": {"label": str(v), "score": float(v)}} for v in x])


NESTED = "a double, inner struct<label: string, score: double>"


@pytest.mark.parametrize("fn, spark_type", [
    (struct_of_dicts, NESTED),
    (struct_of_rows, NESTED),
    (array_of_structs, "array<struct<k: string, v: double, n: int>>"),
    (map_of_structs, "map<string, struct<label: string, score: double>>"),
])
def test_nested_results_without_returns(people, node_calls, batch_size, fn, spark_type):
    batch_size(3)
    compare(people, both(fn, spark_type, "id"), node_calls)


# Nested struct and array-of-struct inputs run on the node.

def city_of(p: pd.DataFrame) -> pd.Series:
    return pd.Series([None if a is None else f"{a['city']}-{a['zip']}" for a in p["address"]])


def echo_person(p: pd.DataFrame) -> pd.DataFrame:
    return p


def basket_total(items: pd.Series) -> pd.Series:
    return pd.Series([None if b is None else sum((it["price"] or 0.0) * it["qty"] for it in b) for b in items])


def cheapest(items: pd.Series) -> pd.Series:
    return pd.Series([None if b is None or len(b) == 0 else min(b, key=lambda it: it["qty"])["sku"]
                      for b in items])


@pytest.mark.parametrize("fn, spark_type, col", [
    (city_of, "string", "person"),
    (echo_person, SCHEMA["person"].dataType, "person"),
    (basket_total, "double", "items"),
    (cheapest, "string", "items"),
])
def test_nested_inputs_run_on_the_node(people, node_calls, batch_size, fn, spark_type, col):
    batch_size(3)
    compare(people, both(fn, spark_type, col, fallback="error"), node_calls)


# A struct result from a DataFrame labelled 0, 1 (by position, as Spark takes it).

def split_name(s: pd.Series) -> pd.DataFrame:
    return s.str.split(" ", expand=True)


@pytest.mark.parametrize("options", [{}, {"returns": "first string, last string"}])
def test_integer_labelled_dataframe(people, node_calls, options):
    compare(people, both(split_name, "first string, last string", "name", **options), node_calls)


# Spark's TaskContext inside the function.

def task_info(x: pd.Series) -> pd.Series:
    tc = TaskContext.get()
    qc = quiver.task_context()
    where = (tc.partitionId(), tc.stageId(), tc.attemptNumber(), tc.taskAttemptId(), tc.cpus(),
             tc.getLocalProperty("quiver.test"), sorted(tc.resources()))
    assert (qc.partitionId(), qc.stageId(), qc.taskAttemptId()) == where[:2] + where[3:4]
    return pd.Series([repr(where)] * len(x))


def on_node(x: pd.Series) -> pd.Series:
    return pd.Series([os.environ.get("QUIVER_WORKER_ID") is not None] * len(x))


def test_task_context(spark, people, node_calls):
    spark.sparkContext.setLocalProperty("quiver.test", "prop-é")
    try:
        out = compare(people, both(task_info, "string", "id", returns="string"), node_calls)
        ran = people.select(pandas_udf(quiver.accelerate(returns="boolean")(on_node), "boolean")("id")
                            .alias("n")).collect()
    finally:
        spark.sparkContext.setLocalProperty("quiver.test", None)
    assert all(r.n for r in ran), "the function did not run on the node"
    seen = {r["task_info__acc"] for r in out}
    assert len(seen) == 2 and all("'prop-é'" in s for s in seen)  # one per partition


# A scalar where a Series is due: Spark's message, saying what came back.

def constant(x: pd.Series) -> pd.Series:
    return 1


@pytest.mark.parametrize("options", [{}, {"returns": "bigint"}])
def test_scalar_result_error(people, options):
    message = "Return type of the user-defined function should be pandas.Series, but is int"
    plain, accelerated, _ = series(constant, "bigint", **options)
    for udf in (plain, accelerated):
        with pytest.raises(Exception) as e:
            people.select(udf("id")).collect()
        assert message in str(e.value)
        assert "None rows" not in str(e.value)
