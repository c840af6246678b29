"""A Spark Connect server of the test module's own (pyspark's bin/spark-submit running
SparkConnectServer on local[2], bound to loopback on a free port), and a Connect session
to it. Its Python workers run this interpreter and find the test node through
QUIVER_ADDRESS, set in the server's environment (local mode: workers inherit it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Connect server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the Connect server did not listen within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def connect_server(node):
    pyspark = pytest.importorskip("pyspark")
    pytest.importorskip("grpc")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("Spark needs Java 17 or later: no java on PATH and no JAVA_HOME")
    home = Path(pyspark.__file__).parent
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="qv-connect-"))
    log = work / "server.log"
    env = dict(os.environ, SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable,
               QUIVER_ADDRESS=node.unix, QUIVER_ADAPTIVE="0", QUIVER_RUN_DIR=str(work))
    args = [str(home / "bin" / "spark-submit"), "--master", "local[2]",
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf", f"spark.connect.grpc.binding.port={port}",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.shuffle.partitions=2",
            "--conf", "spark.driver.host=127.0.0.1",
            "--conf", "spark.driver.bindAddress=127.0.0.1",
            "--conf", f"spark.executorEnv.QUIVER_ADDRESS={node.unix}",
            "--conf", "spark.executorEnv.QUIVER_ADAPTIVE=0",
            "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
            "--conf", f"spark.local.dir={work}",
            "spark-internal"]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        wait_for_port(port, proc, log)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def connect(connect_server):
    """A Connect session for this module's tests. Making one switches this process's PySpark to
    Connect mode through environment variables (pandas_udf and friends then build Connect
    UDFs); they are restored when the module ends, so later tests get classic sessions."""
    from pyspark.sql import SparkSession

    saved = dict(os.environ)
    spark = SparkSession.builder.remote(connect_server).getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()
        os.environ.clear()
        os.environ.update(saved)
