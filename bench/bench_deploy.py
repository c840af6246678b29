"""Deploying on Spark: quiver.spark.setup_cluster beside Ray on Spark
(ray.util.spark.setup_ray_cluster), in one process on local-cluster[2,2,3072] (two executor
JVMs of two cores; smaller ones leave Ray "no resources to launch Ray worker nodes").

    python bench/bench_deploy.py [--rows 3000] [--no-ray] [--json out.json]

(a) seconds from each setup call until all its nodes serve (Quiver: the cluster's nodes
    answer and its peers are alive; Ray: every node alive in ray.nodes());
(b) a heavy per-row pandas UDF (heavy_row, ~1 ms a row) on skewed data, 90% of the rows in
    one partition: plain, @quiver.accelerate on the setup_cluster cluster, and the recipe it
    replaces (ray.remote tasks inside the UDF, on the Ray on Spark cluster), rows
    cross-checked. The clusters run one after the other, each shut down before the next.
Prints Markdown table rows and, last, one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import bench_udf  # noqa: E402  (calibrate, say, QUIVER_PATH)

MASTER = "local-cluster[2,2,3072]"
HOT_SHARE = 0.9
ROWS_PER_TASK = 20
RAY_READY_S = 300


def heavy_body(n: int):
    """The heavy UDF body with its loop inline (pickled by value: no import of bench/ needed
    wherever it runs)."""

    def heavy(x: pd.Series) -> pd.Series:
        out = []
        for v in x.tolist():
            acc = v & 0xFFFF
            for i in range(n):
                acc = (acc * 1103515245 + i) % 2147483648
            out.append(acc)
        return pd.Series(out, dtype="int64")
    return heavy


def ray_body(n: int, address: str, rows_per_task: int):
    """The UDF that fans each batch out as ray.remote tasks on the Ray on Spark cluster."""
    chunk = heavy_body(n)
    state: dict = {}

    def heavy(x: pd.Series) -> pd.Series:
        import ray
        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        if "task" not in state:
            state["task"] = ray.remote(lambda v: chunk(pd.Series(v)).to_numpy())
        v = x.to_numpy()
        refs = [state["task"].remote(v[i:i + rows_per_task]) for i in range(0, len(v), rows_per_task)]
        return pd.Series(np.concatenate(ray.get(refs)) if refs else [], dtype="int64")
    return heavy


def start_spark(log_dir: str):
    from pyspark.sql import SparkSession
    env = {"PYSPARK_PYTHON": sys.executable, "RAY_AUTH_MODE": "disabled",
           "QUIVER_RUN_DIR": os.path.join(log_dir, "run"),  # the host's node, not another run's
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": os.pathsep.join(p for p in (bench_udf.QUIVER_PATH, os.environ.get("PYTHONPATH")) if p)}
    os.environ.update(env)  # the JVM, its executors and their Python workers inherit these
    os.environ.pop("QUIVER_ADAPTIVE", None)
    b = (SparkSession.builder.master(MASTER).appName("quiver-bench-deploy")
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.executor.memory", "1g").config("spark.sql.shuffle.partitions", "4")
         .config("spark.task.maxFailures", "1"))
    for k, v in env.items():
        b = b.config(f"spark.executorEnv.{k}", v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def skewed(spark, rows: int):
    from pyspark.sql import functions as F
    hot = int(rows * HOT_SHARE)
    return (spark.range(0, rows, 1, 4).withColumn("k", F.when(F.col("id") < hot, 0).otherwise(F.col("id") % 7 + 1))
            .repartition(4, "k").cache())


def run(df, fn) -> tuple[float, list]:
    from pyspark.sql import functions as F
    t = time.perf_counter()
    rows = df.select("id", fn(F.col("id")).alias("y")).collect()
    return time.perf_counter() - t, sorted((r.id, r.y) for r in rows)


def quiver_part(spark, df, n: int, res: dict) -> list:
    import quiver
    import quiver.spark
    from pyspark.sql.functions import pandas_udf
    t = time.perf_counter()
    info = quiver.spark.setup_cluster(spark)
    executor_hosts = {n_["host"] for n_ in info.nodes} - {info.nodes[0]["host"]}
    deadline = time.monotonic() + 60
    while True:  # nodes on other hosts: serving once the driver's node sees them alive
        st = info.status()
        if len([p for p in st["peers"] if p["state"] == "alive"]) >= len(executor_hosts) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    res["setup_s"]["quiver"] = time.perf_counter() - t
    res["nodes"]["quiver"] = 1 + len(st["peers"])
    try:
        fast = pandas_udf(quiver.accelerate(heavy_body(n), rows_per_task=ROWS_PER_TASK, fallback="error"), "long")
        run(df.limit(100), fast)  # the node's workers started, the function registered
        res["workers"]["quiver"] = info.status()["nodes"][0].get("workers", 0)
        res["udf_s"]["quiver"], rows = run(df, fast)
    finally:
        quiver.spark.shutdown_cluster()
    return rows


def ray_part(spark, df, n: int, res: dict) -> list:
    """A Ray worker node holds its Spark task's cores for as long as it runs: one core of
    each two-core executor, so that the UDF's own Spark tasks still get the other."""
    import ray
    from pyspark.sql.functions import pandas_udf
    from ray.util.spark import setup_ray_cluster, shutdown_ray_cluster
    t = time.perf_counter()
    address, _ = setup_ray_cluster(max_worker_nodes=2, num_cpus_worker_node=1, num_gpus_worker_node=0,
                                   num_cpus_head_node=0, num_gpus_head_node=0,
                                   object_store_memory_worker_node=256 << 20,
                                   object_store_memory_head_node=128 << 20,
                                   collect_log_to_path=None)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        deadline = time.monotonic() + RAY_READY_S
        while len([x for x in ray.nodes() if x["Alive"]]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        res["setup_s"]["ray"] = time.perf_counter() - t
        res["nodes"]["ray"] = len([x for x in ray.nodes() if x["Alive"]])
        res["workers"]["ray"] = int(ray.cluster_resources().get("CPU", 0))
        slow = pandas_udf(ray_body(n, address, ROWS_PER_TASK), "long")
        run(df.limit(100), slow)  # each Spark Python worker connected to the Ray cluster
        res["udf_s"]["ray"], rows = run(df, slow)
        return rows
    finally:
        ray.shutdown()
        shutdown_ray_cluster()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    n = bench_udf.calibrate()
    res = {"master": MASTER, "rows": args.rows, "hot_share": HOT_SHARE, "loop": n, "load_before": bench_udf.load(),
           "setup_s": {}, "udf_s": {}, "nodes": {}, "workers": {}, "agree": {}}
    with tempfile.TemporaryDirectory(prefix="qv-bd-") as d:
        t = time.perf_counter()
        spark = start_spark(d)
        res["spark_s"] = time.perf_counter() - t
        try:
            df = skewed(spark, args.rows)
            res["partitions"] = sorted(r["count"] for r in df.groupBy(F.spark_partition_id().alias("p")).count().collect())
            plain = pandas_udf(heavy_body(n), "long")
            run(df.limit(100), plain)
            bench_udf.say("plain")
            res["udf_s"]["plain"], want = run(df, plain)
            bench_udf.say("quiver")
            res["agree"]["quiver"] = quiver_part(spark, df, n, res) == want
            if not args.no_ray:
                bench_udf.say("ray on spark")
                try:
                    res["agree"]["ray"] = ray_part(spark, df, n, res) == want
                except Exception as e:  # noqa: BLE001  (reported, not fatal: the peer's failure)
                    res["ray_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        finally:
            spark.stop()
    res["load_after"] = bench_udf.load()
    for line in markdown(res):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res), flush=True)
    return 0 if all(res["agree"].values()) else 1


def markdown(res: dict) -> list[str]:
    s, u = res["setup_s"], res["udf_s"]
    L = ["| cluster | setup to all nodes serving, s | nodes | worker slots |", "| --- | --- | --- | --- |"]
    for k, name in (("quiver", "quiver.spark.setup_cluster"), ("ray", "ray.util.spark.setup_ray_cluster")):
        if k in s:
            L.append(f"| {name} | {s[k]:.1f} | {res['nodes'][k]} | {res['workers'][k]} |")
    L += ["", "| skewed heavy UDF | seconds | speedup vs plain | rows agree |", "| --- | --- | --- | --- |"]
    for k, name in (("plain", "plain pandas UDF"), ("quiver", "@quiver.accelerate (setup_cluster)"),
                    ("ray", "ray.remote inside the UDF (Ray on Spark)")):
        if k in u:
            L.append(f"| {name} | {u[k]:.2f} | {u['plain'] / u[k]:.2f}x | {res['agree'].get(k, 'reference')} |")
    return L


if __name__ == "__main__":
    sys.exit(main())
