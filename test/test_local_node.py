"""quiver.connect() with no address: start a node for this machine, reuse it from other
processes, stop it when the process that started it exits (quiver._wire.local)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import pandas as pd
import pytest

import quiver
from quiver._wire import local
from nodeproc import quiver_bin

# A process that connects, reports, and waits for a line on stdin before exiting.
CLIENT = r"""
import json, sys
import quiver
from quiver._wire import local
c = quiver.connect()
node = c.status()["nodes"][0]
print(json.dumps({"address": c.address, "pid": node["pid"], "socket": node["socket"],
                  "started": local.started_node() is not None}), flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def run_dir():
    d = tempfile.mkdtemp(prefix="qv-local-")  # short: unix socket paths max ~107 bytes
    os.rmdir(d)  # connect() must create it
    yield d
    if os.path.exists(os.path.join(d, "quiver.pid")):  # a test failed half way: stop its node
        subprocess.run([quiver_bin(), "stop", "--run-dir", d], capture_output=True, timeout=60)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def local_env(run_dir, monkeypatch):
    monkeypatch.delenv("QUIVER_ADDRESS", raising=False)
    monkeypatch.delenv("QUIVER_TOKEN", raising=False)
    monkeypatch.setenv("QUIVER_RUN_DIR", run_dir)
    monkeypatch.setenv("QUIVER_BIN", quiver_bin())
    return dict(os.environ)


def spawn(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report(p: subprocess.Popen) -> dict:
    line = p.stdout.readline()
    if not line:
        p.wait(30)
        pytest.fail(f"client exited {p.returncode}: {p.stderr.read()}")
    return json.loads(line)


def finish(p: subprocess.Popen) -> None:
    p.stdin.close()
    assert p.wait(60) == 0, p.stderr.read()


def gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_starts_reuses_and_stops_at_exit_of_the_starter(local_env, run_dir):
    first = spawn(local_env)
    a = report(first)
    assert a["started"] and a["address"] == f"grpc+unix://{run_dir}/quiver.sock"
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    second = spawn(local_env)
    b = report(second)
    assert b["pid"] == a["pid"] and not b["started"]  # the same node, reused
    finish(second)
    os.kill(a["pid"], 0)  # a process that reused the node leaves it running
    finish(first)
    assert gone(a["pid"]), "the node outlived the process that started it"
    assert not local.answers(a["address"])


def test_concurrent_starters_start_one_node(local_env):
    procs = [spawn(local_env) for _ in range(3)]
    reports = [report(p) for p in procs]
    assert len({r["pid"] for r in reports}) == 1
    assert sum(r["started"] for r in reports) == 1
    starter = next(p for p, r in zip(procs, reports) if r["started"])
    for p in procs:
        if p is not starter:
            finish(p)
    finish(starter)
    assert gone(reports[0]["pid"])


def test_started_node_runs_python_on_this_interpreter(local_env):
    c = quiver.connect()
    try:
        assert local.started_node() is not None

        def pyver(x: pd.Series) -> pd.Series:
            import sys
            return pd.Series([sys.executable] * len(x))

        name = c.register(pyver, name="pyver", returns="string")
        got = c.call(name, pd.DataFrame({"x": [1]})).tolist()
        assert [os.path.realpath(p) for p in got] == [os.path.realpath(sys.executable)]
        pid = c.status()["nodes"][0]["pid"]
    finally:
        quiver.shutdown()
    assert local.started_node() is None
    assert gone(pid)


def test_a_stale_socket_file_does_not_stop_a_start(local_env, run_dir):
    os.makedirs(run_dir, mode=0o700)
    open(os.path.join(run_dir, "quiver.sock"), "w").close()
    p = spawn(local_env)
    r = report(p)
    assert r["started"]
    finish(p)
    assert gone(r["pid"])


def test_no_binary_is_a_clear_unavailable(local_env, monkeypatch, tmp_path):
    monkeypatch.setenv("QUIVER_BIN", str(tmp_path / "no-such-quiver"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(local, "__file__", str(tmp_path / "local.py"))  # no bundled _bin/quiver
    with pytest.raises(quiver.Unavailable, match="no quiver binary.*QUIVER_BIN"):
        quiver.connect()


def test_explicit_address_never_starts_a_node(local_env, run_dir, tmp_path):
    c = quiver.connect(f"grpc+unix://{tmp_path}/nothing.sock")  # lazy, as before
    assert c.address.endswith("nothing.sock")
    assert not os.path.exists(os.path.join(run_dir, "quiver.pid"))


def test_a_starter_killed_with_sigkill_leaves_no_node(local_env):
    """No atexit runs under kill -9: the node watches its starter and ends itself."""
    p = spawn(local_env)
    r = report(p)
    assert r["started"]
    p.kill()
    p.wait(30)
    assert gone(r["pid"]), "the node outlived a starter killed with SIGKILL"


# A Spark application whose pandas UDF calls quiver.connect() inside a task, with no node
# running: the Spark Python worker starts one. It prints the node's pid and stops.
SPARK_APP = r"""
import json, os, sys
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

spark = (SparkSession.builder.master("local[1]").appName("autostart")
         .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate())

@pandas_udf("long")
def node_pid(x: pd.Series) -> pd.Series:
    import quiver
    from quiver._wire import local
    c = quiver.connect()
    pid = c.status()["nodes"][0]["pid"]
    assert local.started_node() is not None, "this task did not start the node"
    return pd.Series([pid] * len(x))

pid = spark.range(1).select(node_pid("id")).collect()[0][0]
print(json.dumps({"pid": pid}), flush=True)
spark.stop()
"""


def test_a_node_started_in_a_spark_task_ends_when_idle(local_env):
    pytest.importorskip("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("PySpark needs Java 17 or later")
    env = dict(local_env, PYSPARK_PYTHON=sys.executable, QUIVER_IDLE_EXIT="2s")
    app = subprocess.run([sys.executable, "-c", SPARK_APP], env=env, capture_output=True,
                         text=True, timeout=300)
    assert app.returncode == 0, app.stdout + app.stderr[-4000:]
    pid = json.loads(app.stdout.strip().splitlines()[-1])["pid"]
    # The application is over and its workers are gone: nothing holds a connection, so
    # the node ends after its idle time, though nobody stopped it.
    assert gone(pid), "a node started in a Spark task outlived its application"
