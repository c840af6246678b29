"""setup_cluster's token in local mode: made when none is given, user-only in the run
directory beside the socket, used by `quiver status` with no flag, gone after
shutdown_cluster(); and a node that quiver.connect() started for the driver first is
replaced by the cluster's."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
from nodeproc import quiver_bin

DRIVER = r"""
import json, os, subprocess, sys
from pyspark.sql import SparkSession
import quiver, quiver.spark

spark = (SparkSession.builder.master("local[1]").appName("cluster-token")
         .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate())
quiver.connect().close()   # this process's own node, on the default socket
info = quiver.spark.setup_cluster(spark, workers_per_node=1)
path = os.path.join(os.environ["QUIVER_RUN_DIR"], "token")
st = os.stat(path)
with open(path) as f:
    in_file = f.read().strip()
cli = subprocess.run([os.environ["QUIVER_BIN"], "status", "--json"], capture_output=True, text=True)
cli_self = json.loads(cli.stdout)["nodes"][0] if cli.returncode == 0 else {}
print(json.dumps({"token_ok": in_file == info.token and len(info.token) >= 32,
                  "mode": st.st_mode & 0o777, "repr_hides": info.token not in repr(info),
                  "gossip": info.gossip, "self": info.status()["nodes"][0]["gossip"],
                  "cli": cli.returncode, "cli_gossip": cli_self.get("gossip")}),
      flush=True)
quiver.spark.shutdown_cluster()
print(json.dumps({"left": os.path.exists(path)}), flush=True)
spark.stop()
"""


def test_token_made_kept_private_and_removed():
    pytest.importorskip("pyspark")
    run_dir = tempfile.mkdtemp(prefix="qv-tk-")
    os.rmdir(run_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
    env.update(QUIVER_RUN_DIR=run_dir, QUIVER_BIN=quiver_bin(), PYSPARK_PYTHON=sys.executable)
    try:
        p = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=180)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        assert p.returncode == 0 and len(lines) == 2, p.stdout + p.stderr[-6000:]
        got, after = lines
        assert got["token_ok"] and got["repr_hides"], got
        assert got["mode"] == stat.S_IRUSR | stat.S_IWUSR, oct(got["mode"])
        assert got["gossip"].startswith("127.0.0.1:") and got["gossip"] == got["self"] == got["cli_gossip"], got
        assert got["cli"] == 0
        assert after == {"left": False}, "the token file outlived shutdown_cluster()"
    finally:
        subprocess.run([quiver_bin(), "stop", "--run-dir", run_dir], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
