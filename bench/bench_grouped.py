"""Grouped map benchmark: quiver.spark.apply_in_pandas against Spark's own applyInPandas and a Pool.

1,000 groups (--groups) of 20 rows, each group ~5 ms of pure Python (a calibrated
busy loop), 90% of the groups in one of Spark's two shuffle partitions (keys
chosen by Spark's own hash partitioning; AQE's coalescing off so the shuffle
keeps its two partitions), Spark local[2]:

    plain        df.groupBy("k").applyInPandas(work, schema)
    accelerated  quiver.spark.apply_in_pandas(df.groupBy("k"), work, schema)
    serial       work(key, pdf) for every group, in one process
    Pool         multiprocessing.Pool(os.cpu_count()).starmap over the same groups

The figure of merit is accelerated speedup (plain / accelerated) over Pool
speedup (serial / Pool); goal >= 0.85. All four results are cross-checked. It
starts its own node (bin/quiver, or --quiver-bin) with Python workers on this
interpreter. Timings run in rounds (--repeat), interleaved, best of each kept.
Prints a Markdown table row set and one JSON line.

    .venv/bin/python bench/bench_grouped.py [--quick] [--groups N] [--repeat N]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import sys
import time

import cloudpickle
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_udf import (  # noqa: E402
    Node, _best, _timed, add_quiver_bin, command_line, heavy_row, load, machine, say, start_spark,
)

import quiver  # noqa: E402  (bench_udf put the package on the path if it is not installed)
import quiver.spark as qs  # noqa: E402

# Spark's and the node's workers cannot import bench_udf: ship it by value (pyspark has its own cloudpickle).
cloudpickle.register_pickle_by_value(sys.modules["bench_udf"])

TARGET_GROUP_S = 5e-3   # the Python work of one group
ROWS_PER_GROUP = 20
HOT_SHARE = 0.9         # of the groups, in one partition
SCHEMA = "k long, total double, check long"

LOOPS = 1  # heavy_row's loop count for TARGET_GROUP_S; set by main() before anything forks or pickles


def work(key: tuple, pdf: pd.DataFrame) -> pd.DataFrame:
    """One group's work: ~TARGET_GROUP_S of Python, then a one-row summary."""
    check = heavy_row(int(key[0]), LOOPS)
    return pd.DataFrame({"k": [int(key[0])], "total": [float(pdf["v"].sum())], "check": [check]})


def calibrate() -> int:
    n = 20_000
    for _ in range(3):
        per_call = _best(lambda: heavy_row(7, n), 5)
        n = max(1, round(n * TARGET_GROUP_S / per_call))
    return n


def skewed_keys(spark, groups: int, parts: int) -> list[int]:
    """groups keys, HOT_SHARE of them in shuffle partition 0 (Spark's hash of the key)."""
    from pyspark.sql import functions as F

    hot_n = round(groups * HOT_SHARE)
    cand = (spark.range(0, groups * parts * 4).withColumn("p", F.expr(f"pmod(hash(id), {parts})"))
            .collect())
    hot = [r.id for r in cand if r.p == 0][:hot_n]
    cold = [r.id for r in cand if r.p != 0][:groups - hot_n]
    return hot + cold


def rows_of(results) -> list[tuple]:
    return sorted((int(k), round(float(t), 6), int(c)) for k, t, c in results)


def main() -> int:
    global LOOPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 groups, one round")
    ap.add_argument("--groups", type=int, help="groups (default 1,000; quick 200)")
    ap.add_argument("--repeat", type=int, help="rounds, best kept (default 3; quick 1)")
    add_quiver_bin(ap)
    args = ap.parse_args()
    groups = args.groups or (200 if args.quick else 1000)
    repeat = args.repeat or (1 if args.quick else 3)
    cores = os.cpu_count() or 1
    command = command_line("bench_grouped.py")
    load_before = load()

    LOOPS = calibrate()
    group_ms = _best(lambda: heavy_row(7, LOOPS), 5) * 1e3
    say(f"group work: {LOOPS} iterations, {group_ms:.2f} ms")
    pool = multiprocessing.get_context("fork").Pool(cores)  # before any JVM or gRPC thread
    pool.starmap(work, [((i,), pd.DataFrame({"v": [1.0]})) for i in range(cores * 2)])
    node = Node(args.quiver_bin)
    spark = None
    times: dict[str, list[float]] = collections.defaultdict(list)
    same = True
    try:
        client = quiver.Client(node.address)
        workers = node.wait_workers(client, cores)
        say(f"node up: {workers} Python workers")
        spark, why_not = start_spark(node)
        if spark is None:
            sys.exit(f"bench: Spark does not start: {why_not}")
        from pyspark import cloudpickle as spark_cloudpickle
        spark_cloudpickle.register_pickle_by_value(sys.modules["bench_udf"])
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
        parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
        keys = skewed_keys(spark, groups, parts)
        data = [(k, float(j + k % 7)) for k in keys for j in range(ROWS_PER_GROUP)]
        df = spark.createDataFrame(data, "k long, v double").repartition(4).cache()
        df.count()
        local_groups = [((k,), g.reset_index(drop=True))
                        for k, g in pd.DataFrame(data, columns=["k", "v"]).groupby("k")]
        g = df.groupBy("k")
        plain = lambda: g.applyInPandas(work, SCHEMA).collect()  # noqa: E731
        accelerated = lambda: qs.apply_in_pandas(g, work, SCHEMA, fallback="error").collect()  # noqa: E731
        small = spark.createDataFrame(data[:ROWS_PER_GROUP * 4], "k long, v double").groupBy("k")
        small.applyInPandas(work, SCHEMA).collect()  # warm: Spark's Python workers, registration
        qs.apply_in_pandas(small, work, SCHEMA, fallback="error").collect()
        tasks_before = client.status()["nodes"][0]["tasks_total"]
        for r in range(repeat):
            say(f"round {r + 1}/{repeat}: serial, Pool({cores}), Spark plain, Spark accelerated; "
                f"{groups} groups")
            t, want = _timed(lambda: [work(k, p).iloc[0].tolist() for k, p in local_groups])
            times["serial"].append(t)
            want = rows_of(want)
            t, got = _timed(lambda: pool.starmap(work, local_groups))
            times["pool"].append(t)
            same &= rows_of(x.iloc[0].tolist() for x in got) == want
            t, got = _timed(plain)
            times["plain"].append(t)
            same &= rows_of(got) == want
            t, got = _timed(accelerated)
            times["accel"].append(t)
            same &= rows_of(got) == want
            say("  " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()) + f"; load {load()}")
        node_tasks = client.status()["nodes"][0]["tasks_total"] - tasks_before
        client.close()
    finally:
        if spark is not None:
            spark.stop()
        node.stop()
        pool.close()
        pool.join()

    best = {k: min(v) for k, v in times.items()}
    pool_x = best["serial"] / best["pool"]
    accel_x = best["plain"] / best["accel"]
    ratio = accel_x / pool_x
    differ = "" if same else " (RESULTS DIFFER)"
    print(f"Machine: {machine()}; load average {load_before} before, {load()} after; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; `{command}`; node with {workers} Python workers; "
          f"{groups} groups x {ROWS_PER_GROUP} rows, {group_ms:.2f} ms of work each, "
          f"{HOT_SHARE:.0%} in one of {parts} partitions; best of {repeat}; "
          f"{node_tasks} node tasks in all.\n")
    print("| measurement | figure | goal |")
    print("| --- | --- | --- |")
    print(f"| serial loop over the groups | {best['serial']:.2f} s | |")
    print(f"| `multiprocessing.Pool({cores})` over the groups | {best['pool']:.2f} s, "
          f"**{pool_x:.2f}x** serial{differ} | |")
    print(f"| Spark local[2] `applyInPandas` | {best['plain']:.2f} s | |")
    print(f"| `quiver.spark.apply_in_pandas` | {best['accel']:.2f} s, **{accel_x:.2f}x** plain{differ} | |")
    print(f"| grouped map, {groups:,} groups, {HOT_SHARE:.0%} in one partition: accelerated speedup / "
          f"Pool speedup | **{ratio:.2f}** | >= 0.85 {'met' if ratio >= 0.85 else 'missed'} |")
    print(json.dumps({"bench": "grouped", "groups": groups, "group_ms": round(group_ms, 3),
                      "cores": cores, "workers": workers, "serial_s": round(best["serial"], 3),
                      "pool_s": round(best["pool"], 3), "plain_s": round(best["plain"], 3),
                      "accel_s": round(best["accel"], 3), "pool_speedup": round(pool_x, 3),
                      "accel_speedup": round(accel_x, 3), "ratio": round(ratio, 3), "same": same,
                      "node_tasks": node_tasks, "repeat": repeat}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
