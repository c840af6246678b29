"""quiver.spark.setup_cluster on Spark's local-cluster[2,1,1024] (two real executor JVMs),
from a driver process of the test's own: the nodes serve an accelerated UDF, and none is
left after shutdown_cluster(), after SparkContext.stop() alone, or after kill -9 of the
driver."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from nodeproc import quiver_bin

GONE_WITHIN_S = 10   # what the design promises
SLACK_S = 10         # a loaded test machine: a late exit still fails past this

DRIVER = r"""
import json, os, sys
import pandas as pd
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.functions import pandas_udf
import quiver, quiver.spark

mode = sys.argv[1]
env = {k: os.environ[k] for k in ("QUIVER_RUN_DIR", "QUIVER_BIN", "PYSPARK_PYTHON")}
b = (SparkSession.builder.master("local-cluster[2,1,1024]").appName("setup-cluster")
     .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
     .config("spark.driver.bindAddress", "127.0.0.1").config("spark.executor.memory", "512m")
     .config("spark.executorEnv.QUIVER_ADAPTIVE", "0"))
for k, v in env.items():
    b = b.config(f"spark.executorEnv.{k}", v)
spark = b.getOrCreate()
info = quiver.spark.setup_cluster(spark, workers_per_node=1)
print(json.dumps({"nodes": info.nodes, "address": info.address, "tcp": info.tcp}), flush=True)

@pandas_udf("long")
@quiver.accelerate(fallback="error")
def double(x: pd.Series) -> pd.Series:
    return x * 2

total = spark.range(0, 2000, 1, 4).select(double("id").alias("y")).agg(F.sum("y")).collect()[0][0]
with quiver.connect(info.address) as c:
    tasks = c.status()["nodes"][0]["python_tasks_total"]
print(json.dumps({"sum": total, "tasks": tasks}), flush=True)
if mode == "shutdown":
    quiver.spark.shutdown_cluster()
elif mode == "stop":
    spark.stop()
print(json.dumps({"done": mode}), flush=True)
sys.stdin.readline()   # stays alive until the test says so (or kills it)
"""


def quiver_pids(run_dir: str) -> list[int]:
    """The quiver processes serving run_dir, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"quiver" and run_dir.encode() in args:
            out.append(int(d))
    return out


def wait_none(run_dir: str, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = quiver_pids(run_dir)
        if not left:
            return []
        time.sleep(0.1)
    return quiver_pids(run_dir)


@pytest.fixture
def driver():
    pytest.importorskip("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("PySpark needs Java 17 or later")
    run_dir = tempfile.mkdtemp(prefix="qv-cl-")
    os.rmdir(run_dir)
    procs = []

    def start(mode: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
        env.update(QUIVER_RUN_DIR=run_dir, QUIVER_BIN=quiver_bin(), PYSPARK_PYTHON=sys.executable)
        p = subprocess.Popen([sys.executable, "-c", DRIVER, mode], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        procs.append(p)
        return p, run_dir

    yield start
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the driver and its JVMs
        except ProcessLookupError:
            pass
        p.wait(30)
    for pid in quiver_pids(run_dir):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(run_dir, ignore_errors=True)


def read(p: subprocess.Popen) -> dict:
    line = p.stdout.readline()
    if not line:
        p.wait(60)
        pytest.fail(f"the driver exited {p.returncode}:\n{p.stderr.read()[-6000:]}")
    return json.loads(line)


def started_ok(p) -> dict:
    setup = read(p)
    assert setup["nodes"] and all(n["pid"] for n in setup["nodes"]), setup
    assert setup["tcp"].startswith("grpc://127.0.0.1:") and not setup["tcp"].endswith(":0"), setup
    run = read(p)
    assert run["sum"] == 2 * sum(range(2000))
    assert run["tasks"] >= 1, "the UDF's rows did not run on the cluster's node"
    return setup


def test_shutdown_cluster_leaves_no_node(driver):
    p, run_dir = driver("shutdown")
    started_ok(p)
    assert read(p) == {"done": "shutdown"}
    assert wait_none(run_dir, 1.0) == [], "a node outlived shutdown_cluster()"


def test_sparkcontext_stop_alone_leaves_no_node(driver):
    p, run_dir = driver("stop")
    started_ok(p)
    assert read(p) == {"done": "stop"}
    assert p.poll() is None  # the driver lives on; its SparkContext is stopped
    assert wait_none(run_dir, GONE_WITHIN_S + SLACK_S) == [], "a node outlived SparkContext.stop()"


def test_kill_9_of_the_driver_leaves_no_node(driver):
    p, run_dir = driver("keep")
    started_ok(p)
    assert read(p) == {"done": "keep"}
    assert quiver_pids(run_dir), "no node to outlive the driver"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    assert wait_none(run_dir, GONE_WITHIN_S + SLACK_S) == [], "a node outlived kill -9 of the driver"
