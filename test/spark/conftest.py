"""One SparkSession (local[2]) and one quiver node for the whole test session.

Spark's Python workers find the node through QUIVER_ADDRESS, set both in the
environment the JVM inherits and as spark.executorEnv (DESIGN.md: in local mode
pass settings both ways). QUIVER_ADAPTIVE=0 keeps every batch on the node (cheap
test functions would otherwise move back in-process after three batches), and
QUIVER_RUN_DIR is a private directory for the test where the driver starts its
own node with quiver.connect(). The driver's own environment is restored once
the JVM has started, so tests outside this folder never see these settings.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

SPARK_TZ = "America/Los_Angeles"  # not UTC: timestamps must survive the session zone


@pytest.fixture(scope="session")
def driver_run_dir():
    """Where test_driver_node_is_shared starts a node from the driver (short: socket path limit)."""
    d = tempfile.mkdtemp(prefix="qv-spark-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def spark(node, driver_run_dir):
    pytest.importorskip("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("PySpark needs Java 17 or later: no java on PATH and no JAVA_HOME")
    from pyspark.sql import SparkSession

    worker_env = {
        "QUIVER_ADDRESS": node.unix,
        "QUIVER_ADAPTIVE": "0",
        "QUIVER_RUN_DIR": driver_run_dir,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    saved = {k: os.environ.get(k) for k in worker_env}
    os.environ.update(worker_env)
    try:
        builder = (SparkSession.builder.master("local[2]").appName("quiver-tests")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.default.parallelism", "2")
                   .config("spark.sql.session.timeZone", SPARK_TZ)
                   .config("spark.python.worker.reuse", "true")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.sql.execution.pyspark.udf.faulthandler.enabled", "true"))
        for k, v in worker_env.items():
            builder = builder.config(f"spark.executorEnv.{k}", v)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield session
    session.stop()


@pytest.fixture(scope="module")
def client(node):
    """A client of the session's node."""
    import quiver

    with quiver.connect(node.unix) as c:
        yield c


@pytest.fixture(scope="session")
def node_calls(node):
    """A function that returns how many calls the session's node has served."""
    import quiver

    client = quiver.connect(node.unix)
    yield lambda: client.status()["nodes"][0]["calls_total"]
    client.close()


@pytest.fixture
def batch_size(spark):
    """Set spark.sql.execution.arrow.maxRecordsPerBatch for one test."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    old = spark.conf.get(key)
    yield lambda n: spark.conf.set(key, str(n))
    spark.conf.set(key, old)
