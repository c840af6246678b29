"""Failures in a real Spark job: UDF exceptions with remote tracebacks, a node worker killed
mid-task, on_error="null", wrong result lengths, a configured node that is down, and a
driver's own node (quiver.connect()) shared with Spark's Python workers."""

from __future__ import annotations

import os
import sys
import warnings

import cloudpickle
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

import quiver
from quiver._wire import local

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="module")
def numbers(spark):
    return spark.range(0, 40, numPartitions=2).withColumn("x", F.col("id") * 0.5)


def test_udf_exception_surfaces_with_remote_traceback(numbers):
    @pandas_udf("double")
    @quiver.accelerate(returns="double")
    def quote(x: pd.Series) -> pd.Series:
        raise LookupError("no quote for instrument XYZ")

    with pytest.raises(Exception) as e:
        numbers.select(quote("x")).collect()
    text = str(e.value)
    assert "no quote for instrument XYZ" in text
    assert "Remote traceback" in text and "LookupError" in text


def test_killed_worker_costs_time_not_rows(numbers, node, tmp_path):
    marker = str(tmp_path / "killed")

    def double(x: pd.Series) -> pd.Series:
        if os.environ.get("QUIVER_WORKER_ID"):  # only in the node's workers, never in Spark's
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(17)  # the first attempt dies mid-task
        return x * 2

    fragile = pandas_udf(quiver.accelerate(returns="double", retries=3, rows_per_task=4,
                                           fallback="error")(double), "double")
    with quiver.connect(node.unix) as client:
        before = client.status()["nodes"][0]
        out = numbers.select("id", fragile("x").alias("y")).orderBy("id").collect()
        after = client.status()["nodes"][0]
    assert os.path.exists(marker), "no worker was killed"
    assert [(r.id, r.y) for r in out] == [(i, i * 0.5 * 2) for i in range(40)]
    assert after["task_retries_total"] > before["task_retries_total"]
    assert after["worker_restarts"] > before["worker_restarts"]


def test_on_error_null_nulls_only_failing_rows(numbers):
    @pandas_udf("double")
    @quiver.accelerate(on_error="null", rows_per_task=1)
    def inverse(x: pd.Series) -> pd.Series:
        if (x % 5 == 0).any():
            raise ZeroDivisionError("multiple of five")
        return 1 / x

    out = numbers.select("id", "x", inverse("x").alias("y")).orderBy("id").collect()
    assert len(out) == 40
    for r in out:
        assert r.y == (None if r.x % 5 == 0 else 1 / r.x), r


def test_wrong_result_length_is_a_clear_error(numbers):
    @pandas_udf("double")
    @quiver.accelerate
    def first_only(x: pd.Series) -> pd.Series:
        return x.iloc[:1]  # right for the one-row local run, wrong for every task after

    with pytest.raises(Exception, match=r"returned 1 rows for \d+ input rows"):
        numbers.select(first_only("x")).collect()


def with_env(fn, **env):
    """fn, run with these environment variables in the Spark worker (restored after: Spark
    reuses its workers for the next tests)."""

    def run(x: pd.Series) -> pd.Series:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return fn(x)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    return run


def test_node_down_fallback_local_gives_correct_results_and_warns(numbers, tmp_path):
    dead = f"grpc+unix://{tmp_path}/nobody.sock"  # QUIVER_ADDRESS names a socket nobody serves

    def triple(x: pd.Series) -> pd.Series:
        return x * 3

    accelerated = quiver.accelerate(triple)

    def warned(x: pd.Series) -> pd.Series:
        """Run the accelerated function and report its fallback warning, if any."""
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            out = accelerated(x)
        assert out.tolist() == (x * 3).tolist()
        msgs = [str(w.message) for w in got if "no quiver node reachable" in str(w.message)]
        return pd.Series([msgs[0] if msgs else None] * len(x))

    out = numbers.select("x", pandas_udf(with_env(warned, QUIVER_ADDRESS=dead), "string")("x").alias("w"),
                         pandas_udf(with_env(accelerated, QUIVER_ADDRESS=dead), "double")("x").alias("y"),
                         pandas_udf(triple, "double")("x").alias("p")).collect()
    assert len(out) == 40 and all(r.y == r.p == r.x * 3 for r in out)
    seen = {r.w for r in out if r.w}  # once per Spark worker process
    assert seen and all("nobody.sock" in w and "fallback='error'" in w for w in seen)


def test_node_down_fallback_error_fails_clearly(numbers, tmp_path):
    dead = f"grpc+unix://{tmp_path}/nobody.sock"

    def triple(x: pd.Series) -> pd.Series:
        return x * 3

    strict = pandas_udf(with_env(quiver.accelerate(fallback="error")(triple), QUIVER_ADDRESS=dead), "double")
    with pytest.raises(Exception, match="no quiver node reachable.*nobody.sock"):
        numbers.select(strict("x")).collect()


def test_driver_node_is_shared_with_spark_workers(spark, numbers, driver_run_dir, monkeypatch):
    """quiver.connect() on the driver starts a node in QUIVER_RUN_DIR; Spark's workers (which
    get the same QUIVER_RUN_DIR) find it on the default socket and use it."""
    monkeypatch.delenv("QUIVER_ADDRESS", raising=False)
    monkeypatch.setenv("QUIVER_RUN_DIR", driver_run_dir)
    client = quiver.connect()
    try:
        assert local.started_node() is not None, "the driver did not start its own node"
        before = client.status()["nodes"][0]
        inner = quiver.accelerate(returns="double")(lambda x: x + 1)

        @pandas_udf("double")
        def plus_one(x: pd.Series) -> pd.Series:
            # A Spark worker with no QUIVER_ADDRESS: what a user who only called
            # quiver.connect() on the driver has. (The session sets it for other tests.)
            saved = os.environ.pop("QUIVER_ADDRESS", None)
            try:
                return inner(x)
            finally:  # Spark reuses this worker for the next tests
                if saved is not None:
                    os.environ["QUIVER_ADDRESS"] = saved

        out = numbers.select("x", plus_one("x").alias("y")).collect()
        assert all(r.y == r.x + 1 for r in out)
        after = client.status()["nodes"][0]
        assert after["pid"] == before["pid"]
        assert after["calls_total"] >= before["calls_total"] + 2  # one per partition at least
    finally:
        client.close()
        quiver.shutdown()
