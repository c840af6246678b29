"""setup_cluster on a Spark standalone cluster of three hosts, here network namespaces on
one bridge (10.214.0.0/24, all private to the test): the driver's host runs the standalone
Master (pyspark's bin/spark-class) and the driver, each worker host a standalone Worker
with one core, its own hostname and its own quiver run directory. The driver sets
spark.driver.host to its host's bridge address, the one the workers reach it at.

setup_cluster (token generated) puts a node on each worker host; a heavy pandas UDF on
skewed data (90% of the rows in one partition), accelerated, returns the plain UDF's rows,
and the hot partition's tasks run on both worker hosts' nodes (their own task counts,
asked of each node over the bridge); after shutdown_cluster no quiver process is left in
any of the namespaces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from nodeproc import quiver_bin

SUBNET = "10.214.0"
DRIVER_IP = f"{SUBNET}.1"
WORKER_IPS = (f"{SUBNET}.2", f"{SUBNET}.3")
TIMEOUT_S = 240
GONE_WITHIN_S = 10

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"),
                                reason="needs root, iproute2 and unshare for network namespaces")

DRIVER = r"""
import json, math, sys, time
import pandas as pd
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.functions import pandas_udf
import quiver, quiver.spark

ip, py = sys.argv[1], sys.executable
t0 = time.monotonic()
times = {}
spark = (SparkSession.builder.master(f"spark://{ip}:7077").appName("standalone-netns")
         .config("spark.ui.enabled", "false").config("spark.driver.host", ip)
         .config("spark.driver.bindAddress", ip).config("spark.driver.memory", "512m")
         .config("spark.executor.memory", "512m").config("spark.executor.cores", "1")
         .config("spark.cores.max", "2").config("spark.sql.shuffle.partitions", "4")
         .config("spark.pyspark.python", py).config("spark.executorEnv.PYSPARK_PYTHON", py)
         .config("spark.executorEnv.QUIVER_ADAPTIVE", "0").getOrCreate())
times["spark"] = round(time.monotonic() - t0, 1)
info = quiver.spark.setup_cluster(spark, workers_per_node=1, driver_workers=False, timeout=120)
times["setup_cluster"] = round(time.monotonic() - t0, 1)
hosts = sorted(n["host"] for n in info.nodes)

def heavy(x: pd.Series) -> pd.Series:
    out = []
    for v in x:
        time.sleep(0.004)
        out.append(math.sin(v) * v)
    return pd.Series(out)

@pandas_udf("string")
def where(x: pd.Series) -> pd.Series:   # the executor's address: which host ran the partition
    from quiver.spark._hostnode import ip_toward
    return pd.Series([ip_toward(ip)] * len(x))

plain = pandas_udf(heavy, "double")
fast = pandas_udf(quiver.accelerate(heavy, rows_per_task=10, fallback="error"), "double")
df = (spark.range(0, 600, 1, 4).withColumn("k", F.when(F.col("id") < 540, 0).otherwise(F.col("id") % 5 + 1))
      .repartition(4, "k"))
rows, parts = {}, {}
for name, fn in (("plain", plain), ("fast", fast)):
    got = df.select("id", F.spark_partition_id().alias("part"), where("id").alias("at"), fn("id").alias("y")).collect()
    rows[name] = sorted((r.id, r.y) for r in got)
    if name == "fast":
        for r in got:
            n, at = parts.get(r.part, (0, r.at))
            parts[r.part] = (n + 1, at)
    times[name] = round(time.monotonic() - t0, 1)

def node_of(address):
    with quiver.connect("grpc://" + address, token=info.token) as c:
        return c.status()["nodes"][0]

deadline = time.monotonic() + 10
while True:   # the peers' gossiped counts lag by 100 ms or so
    peers = [p for p in info.status()["peers"] if p["state"] == "alive"]
    if sum(p["tasks_spilled_in"] for p in peers) > 0 or time.monotonic() > deadline:
        break
    time.sleep(0.2)
nodes = {p["address"]: node_of(p["address"]) for p in peers}
print(json.dumps({"times": times, "hosts": hosts, "token": len(info.token), "tcp": info.tcp,
                  "n": len(rows["fast"]), "same": rows["plain"] == rows["fast"],
                  "parts": sorted(parts.values()),
                  "nodes": {a: {k: n.get(k) for k in ("python_tasks_total", "tasks_spilled_in", "tasks_spilled_out")}
                            for a, n in nodes.items()}}), flush=True)
quiver.spark.shutdown_cluster()
print(json.dumps({"done": True}), flush=True)
sys.stdin.readline()   # alive (its JVM and SparkContext too) until the test has looked
"""


def sh(*args, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, **kw)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def spark_home() -> Path:
    pyspark = pytest.importorskip("pyspark")
    home = Path(pyspark.__file__).parent
    if not (home / "bin" / "spark-class").exists():
        pytest.skip("this pyspark has no bin/spark-class")
    return home


def java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        pytest.skip("Spark needs Java 17 or later")
    return str(Path(os.path.realpath(java)).parents[1])


@pytest.fixture
def hosts():
    """Three namespaces (driver, w1, w2), each with a veth into a bridge namespace; each with
    an /etc/hosts of its own (ip netns exec mounts /etc/netns/NAME/hosts) naming itself."""
    tag = uuid.uuid4().hex[:6]
    br = f"qsb{tag}"
    names = {"driver": f"qsd{tag}", "w1": f"qs1{tag}", "w2": f"qs2{tag}"}
    ips = {"driver": DRIVER_IP, "w1": WORKER_IPS[0], "w2": WORKER_IPS[1]}
    made = []
    try:
        for ns in (br, *names.values()):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", br, "link", "set", "br0", "up")
        lines = "".join(f"{ips[h]} {names[h]}\n" for h in names)
        for i, (host, ns) in enumerate(names.items()):
            a, b = f"qsa{tag}{i}", f"qsz{tag}{i}"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", br)
            sh("ip", "link", "set", b, "netns", ns)
            sh("ip", "-n", br, "link", "set", a, "master", "br0")
            sh("ip", "-n", br, "link", "set", a, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ips[host]}/24", "dev", b)
            sh("ip", "-n", ns, "link", "set", b, "up")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{lines}")
        yield {"ns": names, "ip": ips, "all": [br, *names.values()]}
    finally:
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def on_host(ns: str, name: str, *cmd) -> list[str]:
    """cmd in namespace ns, with a UTS namespace whose hostname is name (a host of its own)."""
    return ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
            name, *map(str, cmd)]


def quiver_pids(namespaces: list[str]) -> list[int]:
    """The quiver processes in any of the namespaces."""
    out = []
    for ns in namespaces:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "quiver":
                        out.append(int(pid))
            except OSError:
                pass
    return out


def read(p: subprocess.Popen, log: Path) -> dict:
    line = p.stdout.readline()
    if not line:
        p.wait(60)
        pytest.fail(f"the driver exited {p.returncode}:\n{log.read_text()[-6000:]}")
    return json.loads(line)


def test_standalone_cluster_of_namespaces(hosts, tmp_path):
    home, java = spark_home(), java_home()
    ns, ips = hosts["ns"], hosts["ip"]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("QUIVER_", "SPARK_", "PYSPARK_", "XDG_RUNTIME"))}
    base.update(SPARK_HOME=str(home), JAVA_HOME=java, PYSPARK_PYTHON=sys.executable,
                SPARK_DAEMON_MEMORY="256m", SPARK_NO_DAEMONIZE="1", QUIVER_BIN=quiver_bin(),
                SPARK_LOG_DIR=str(tmp_path), SPARK_CONF_DIR=str(tmp_path / "conf"))
    (tmp_path / "conf").mkdir()
    run_dirs = {h: tempfile.mkdtemp(prefix=f"qv-sa-{h}-") for h in ns}
    for d in run_dirs.values():
        os.rmdir(d)  # the node makes it, user-only
    spark_class = home / "bin" / "spark-class"
    procs: list[subprocess.Popen] = []

    def start(host: str, cmd: list, **kw) -> subprocess.Popen:
        env = dict(base, SPARK_LOCAL_IP=ips[host], SPARK_LOCAL_HOSTNAME=ips[host], QUIVER_RUN_DIR=run_dirs[host])
        log = open(tmp_path / f"{host}-{len(procs)}.log", "w")
        p = subprocess.Popen(on_host(ns[host], ns[host], *cmd), env=env, stdout=kw.pop("stdout", log),
                             stderr=log, start_new_session=True, text=True, **kw)
        procs.append(p)
        return p

    t0 = time.monotonic()
    try:
        start("driver", [spark_class, "org.apache.spark.deploy.master.Master", "--host", DRIVER_IP,
                         "--port", "7077", "--webui-port", "18080"])
        for w in ("w1", "w2"):
            start(w, [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", ips[w], "--cores", "1",
                      "--memory", "768m", "--webui-port", "18081", "--work-dir", tmp_path / f"work-{w}",
                      f"spark://{DRIVER_IP}:7077"])
        drv = start("driver", [sys.executable, "-c", DRIVER, DRIVER_IP], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE)
        out = read(drv, tmp_path / "driver-3.log")
        print("driver's seconds since start:", out["times"], "test's:", round(time.monotonic() - t0, 1),
              "nodes:", out["nodes"])

        assert out["hosts"] == sorted(ns.values()), f"not one node per host: {out['hosts']}"
        assert out["token"] >= 32 and out["tcp"].startswith(f"grpc://{DRIVER_IP}:"), out
        assert out["n"] == 600 and out["same"], "the accelerated UDF's rows differ from the plain UDF's"
        (hot, hot_at), *_ = sorted(out["parts"], reverse=True)
        assert hot >= 540, f"no hot partition: {out['parts']}"
        nodes = out["nodes"]
        assert {a.rsplit(":", 1)[0] for a in nodes} == set(WORKER_IPS), f"not a node per worker host: {nodes}"
        other = next(a for a in nodes if not a.startswith(hot_at + ":"))
        hot_node = next(a for a in nodes if a.startswith(hot_at + ":"))
        assert all(n["python_tasks_total"] > 0 for n in nodes.values()), nodes
        assert nodes[hot_node]["tasks_spilled_out"] > 0 and nodes[other]["tasks_spilled_in"] > 0, \
            f"the hot partition (on {hot_at}) did not reach the other host's node: {nodes}"

        assert read(drv, tmp_path / "driver-3.log") == {"done": True}
        deadline = time.monotonic() + GONE_WITHIN_S
        while quiver_pids(hosts["all"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert quiver_pids(hosts["all"]) == [], "a node outlived shutdown_cluster()"
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(30)
        for pid in quiver_pids(hosts["all"]):
            os.kill(pid, signal.SIGKILL)
        for d in run_dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        print("test's seconds:", round(time.monotonic() - t0, 1))
