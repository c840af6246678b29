"""Spark end to end over a cluster of nodes: setup_cluster on local-cluster[2,1,1024] (two
real executor JVMs on this host, so one node serves the driver and both executors) plus
two peer nodes that join its gossip, as other hosts' nodes would. A heavy pandas UDF on
skewed data, accelerated: the hot partition's tasks spread to the peers (their
tasks_spilled_in, from the driver's cluster_status), and the result is the plain UDF's,
row for row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from nodeproc import start_node, stop_node, quiver_bin

import quiver

JOIN_WITHIN_S = 20
GOSSIP_WITHIN_S = 10

DRIVER = r"""
import json, math, os, sys, time
import pandas as pd
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.functions import pandas_udf
import quiver, quiver.spark

t0 = time.monotonic()
times = {}
env = {k: os.environ[k] for k in ("QUIVER_RUN_DIR", "QUIVER_BIN", "PYSPARK_PYTHON")}
b = (SparkSession.builder.master("local-cluster[2,1,1024]").appName("cluster-spill")
     .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
     .config("spark.driver.bindAddress", "127.0.0.1").config("spark.executor.memory", "512m")
     .config("spark.sql.shuffle.partitions", "4").config("spark.executorEnv.QUIVER_ADAPTIVE", "0"))
for k, v in env.items():
    b = b.config(f"spark.executorEnv.{k}", v)
spark = b.getOrCreate()
times["spark"] = round(time.monotonic() - t0, 1)
info = quiver.spark.setup_cluster(spark, workers_per_node=1)
times["setup_cluster"] = round(time.monotonic() - t0, 1)
print(json.dumps({"gossip": info.gossip, "tcp": info.tcp, "token": info.token}), flush=True)
sys.stdin.readline()   # the test's peers have joined
times["peers"] = round(time.monotonic() - t0, 1)

def heavy(x: pd.Series) -> pd.Series:
    out = []
    for v in x:
        time.sleep(0.005)
        out.append(math.sin(v) * v)
    return pd.Series(out)

plain = pandas_udf(heavy, "double")
fast = pandas_udf(quiver.accelerate(heavy, rows_per_task=10, fallback="error"), "double")

# 90% of the rows share one key, so one partition holds them after the shuffle.
df = (spark.range(0, 600, 1, 4).withColumn("k", F.when(F.col("id") < 540, 0).otherwise(F.col("id") % 5 + 1))
      .repartition(4, "k"))
rows, sizes = {}, {}
for name, fn in (("plain", plain), ("fast", fast)):
    got = df.select("id", F.spark_partition_id().alias("part"), fn("id").alias("y")).collect()
    rows[name] = sorted((r.id, r.y) for r in got)
    if name == "fast":
        for r in got:
            sizes[r.part] = sizes.get(r.part, 0) + 1
    times[name] = round(time.monotonic() - t0, 1)

deadline = time.monotonic() + 10
while True:  # peers gossip their counts every 100 ms or so
    st = info.status()
    if sum(p["tasks_spilled_in"] for p in st["peers"]) > 0 or time.monotonic() > deadline:
        break
    time.sleep(0.2)
times["gossiped"] = round(time.monotonic() - t0, 1)
print(json.dumps({"sizes": sorted(sizes.values()), "times": times, "n": len(rows["fast"]),
                  "same": rows["plain"] == rows["fast"], "status": st}), flush=True)
quiver.spark.shutdown_cluster()
print(json.dumps({"done": True}), flush=True)
"""


def read(p: subprocess.Popen) -> dict:
    line = p.stdout.readline()
    if not line:
        p.wait(60)
        pytest.fail(f"the driver exited {p.returncode}:\n{p.stderr.read()[-6000:]}")
    return json.loads(line)


def alive_peers(address: str, token: str) -> list[dict]:
    with quiver.connect(address, token=token) as c:
        return [p for p in c.status()["peers"] if p["state"] == "alive"]


def wait_peers(address: str, token: str, n: int) -> list[dict]:
    deadline = time.monotonic() + JOIN_WITHIN_S
    while True:
        peers = alive_peers(address, token)
        if len(peers) >= n or time.monotonic() > deadline:
            return peers
        time.sleep(0.2)


@pytest.fixture
def run_dir():
    pytest.importorskip("pyspark")
    d = tempfile.mkdtemp(prefix="qv-sp-")
    os.rmdir(d)
    yield d


def test_hot_partition_spreads_to_peers(run_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
    env.update(QUIVER_RUN_DIR=run_dir, QUIVER_BIN=quiver_bin(), PYSPARK_PYTHON=sys.executable)
    p = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, text=True, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    peers = []
    try:
        setup = read(p)
        assert setup["gossip"].startswith("127.0.0.1:") and setup["token"], setup
        token_file = tmp_path / "token"
        token_file.write_text(setup["token"] + "\n")
        token_file.chmod(0o600)
        for _ in range(2):
            peers.append(start_node(["--gossip", "127.0.0.1:0", "--join", setup["gossip"], "--workers", "1",
                                     "--token-file", str(token_file)]))
        joined = wait_peers(setup["tcp"], setup["token"], 2)
        assert len(joined) == 2, f"the peers did not join the driver's node: {joined}"
        for peer in peers:  # one cluster: each peer sees the other and the driver's node
            assert len(wait_peers(peer.tcp, setup["token"], 2)) == 2
        p.stdin.write("go\n")
        p.stdin.flush()

        out = read(p)
        print("driver's seconds since start:", out["times"])
        assert out["sizes"][-1] >= 540, f"no hot partition: {out['sizes']}"
        assert out["n"] == 600 and out["same"], "the accelerated UDF's rows differ from the plain UDF's"
        st = out["status"]
        spilled = {q["address"]: q["tasks_spilled_in"] for q in st["peers"]}
        assert set(spilled) == {peer.tcp.removeprefix("grpc://") for peer in peers}, st["peers"]
        assert all(n > 0 for n in spilled.values()), f"the hot partition did not reach every peer: {spilled}"
        assert st["nodes"][0]["tasks_spilled_out"] >= sum(spilled.values())
        assert read(p) == {"done": True}
        assert p.wait(60) == 0
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(30)
        for peer in peers:
            stop_node(peer)
        subprocess.run([quiver_bin(), "stop", "--run-dir", run_dir], capture_output=True)
