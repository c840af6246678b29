"""Row-at-a-time @udf, accelerated: a heavy per-row function over skewed partitions, side by side.

Spark local[2]; a classic ``@udf`` doing ~1 ms of pure Python per row (bench_udf.heavy_row,
calibrated here); partitions skewed: 90% of the rows in one partition, the rest spread over
three. Timed in one run, interleaved over rounds (best of each kept):

    serial      a plain loop over the rows in this process
    Pool        multiprocessing.Pool(os.cpu_count()) over the same rows: the machine's limit
    plain       the plain @udf in Spark
    pandas      the same function as a plain scalar pandas UDF (a list comprehension)
    accelerated quiver.accelerate(the @udf): its rows run as tasks on a node

Figures: Pool speedup = serial / Pool; accelerated speedup = plain / accelerated; the goal
is accelerated speedup / Pool speedup >= 0.9 and accelerated faster than the pandas UDF.
Every run's sum of results is cross-checked against the serial loop's. Prints Markdown
table rows and one JSON line; progress goes to stderr. Starts its own node (bin/quiver or
--quiver-bin) on a private run directory and stops it at the end.

    .venv/bin/python bench/bench_rows.py [--quick] [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Spark's and the node's Python workers import the workload from bench/ as well.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)

from bench_udf import (  # noqa: E402
    QUIVER_PATH, Limits, Node, _best, add_quiver_bin, calibrate, command_line, heavy_row, load,
    machine, node_rows, say, spark_sum, start_spark,
)

import quiver  # noqa: E402

SKEW = 0.9  # the share of rows in the big partition


def row_fn(n: int):
    """The heavy function as a row UDF body (x -> int)."""
    def heavy(x):
        return heavy_row(x, n)
    return heavy


def pandas_fn(n: int):
    """The same function as a pandas UDF body."""
    def heavy(x: pd.Series) -> pd.Series:
        return pd.Series([heavy_row(v, n) for v in x.tolist()], dtype="int64")
    return heavy


def skewed(spark, rows: int):
    big = int(rows * SKEW)
    df = spark.range(0, big, numPartitions=1).union(spark.range(big, rows, numPartitions=3)).cache()
    df.count()
    return df


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (1,000 rows, one round)")
    ap.add_argument("--rows", type=int, help="rows (default 8,000; quick 1,000)")
    ap.add_argument("--repeat", type=int, help="rounds, best of each kept (default 3; quick 1)")
    add_quiver_bin(ap)
    args = ap.parse_args()
    rows = args.rows or (1_000 if args.quick else 8_000)
    repeat = args.repeat or (1 if args.quick else 3)
    cores = os.cpu_count() or 1
    command = command_line("bench_rows.py")
    load_before = load()

    n = calibrate()
    row_ms = _best(lambda: [heavy_row(x, n) for x in range(50)], 3) / 50 * 1e3
    say(f"heavy_row: {n} iterations, {row_ms:.3f} ms/row; {rows} rows, {SKEW:.0%} in one partition")
    limits = Limits(n, cores)  # forks before any JVM or gRPC thread exists
    node = Node(args.quiver_bin, pythonpath=(QUIVER_PATH, HERE))
    times = collections.defaultdict(list)
    ok = {}
    try:
        spark, why_not = start_spark(node)
        if spark is None:
            sys.exit(f"bench_rows: Spark cannot start: {why_not}")
        from pyspark.sql.functions import pandas_udf, udf

        client = quiver.connect(node.address)
        node.wait_workers(client, cores)
        plain = udf(row_fn(n), "long")
        pandas = pandas_udf(pandas_fn(n), "long")
        accelerated = quiver.accelerate(plain)
        df = skewed(spark, rows)
        warm = spark.range(0, 64, numPartitions=2)
        for f in (plain, pandas, accelerated):  # Spark's Python workers up; registered on the node
            spark_sum(warm, f)
        ids = list(range(rows))
        for r in range(repeat):
            t, want = limits.serial(ids)
            times["serial"].append(t)
            t, got = limits.parallel(ids)
            times["pool"].append(t)
            ok["pool"] = ok.get("pool", True) and got == want
            total = sum(want)
            for name, f in (("plain", plain), ("pandas", pandas), ("accelerated", accelerated)):
                before = node_rows(client)
                t, s = spark_sum(df, f)
                times[name].append(t)
                ok[name] = ok.get(name, True) and s == total
                if name == "accelerated":
                    ok["on_node"] = ok.get("on_node", True) and node_rows(client) - before >= rows
            say(f"round {r + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
                + f"; load {load()}")
        client.close()
        spark.stop()
    finally:
        limits.close()
        node.stop()

    best = {k: min(v) for k, v in times.items()}
    pool_x = best["serial"] / best["pool"]
    accel_x = best["plain"] / best["accelerated"]
    ratio = accel_x / pool_x
    vs_pandas = best["pandas"] / best["accelerated"]
    checks = "results identical" if all(ok.values()) else "MISMATCH: " + ", ".join(k for k, v in ok.items() if not v)
    print(f"Machine: {machine()}; load average {load_before} before, {load()} after; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `{command}`; {checks}.")
    print()
    print("| measurement | figure | goal |")
    print("| --- | --- | --- |")
    print(f"| serial loop, {rows:,} rows of {row_ms:.2f} ms | {best['serial']:.2f} s | |")
    print(f"| `multiprocessing.Pool({cores})`, same rows | {best['pool']:.2f} s, {pool_x:.2f}x serial | |")
    print(f"| Spark local[2], {SKEW:.0%} of rows in one of 4 partitions, plain `@udf` | {best['plain']:.2f} s | |")
    print(f"| same function as a plain pandas UDF | {best['pandas']:.2f} s | |")
    print(f"| `quiver.accelerate(@udf)` | {best['accelerated']:.2f} s, {accel_x:.2f}x plain, "
          f"{vs_pandas:.2f}x the pandas UDF | faster than the pandas UDF: "
          f"{'met' if vs_pandas > 1 else 'not met'} |")
    print(f"| heavy row-at-a-time `@udf`, skewed partitions: accelerated speedup / Pool speedup | "
          f"**{ratio:.2f}** | >= 0.9: {'met' if ratio >= 0.9 else 'not met'} |")
    print(json.dumps({"bench": "rows", "rows": rows, "row_ms": round(row_ms, 3), "cores": cores,
                      "seconds": {k: round(v, 3) for k, v in best.items()}, "pool_speedup": round(pool_x, 3),
                      "accelerated_speedup": round(accel_x, 3), "ratio_to_pool": round(ratio, 3),
                      "accelerated_vs_pandas": round(vs_pandas, 3), "results_identical": all(ok.values())}))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
