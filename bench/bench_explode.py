"""Map form of any output length: mapInPandas exploding each row into 0-3 rows, plain vs accelerated.

Spark local[2], one DataFrame of --rows rows (id, x) in two partitions. The function
yields id % 4-ish rows per input row (deterministic from the row: a multiplicative hash
of id, mod 4), with a column k numbering them. Side by side in one run, best of --repeat
interleaved rounds:

    plain          df.mapInPandas(fn, schema)
    accelerated    df.mapInPandas(quiver.accelerate(fn), schema): as users get it (a cheap
                   function moves back in-process by measurement)
    on the node    quiver.accelerate(rows_per_task=...)(fn): every batch on the node
                   (rows_per_task turns the cheap-function switch off)

Each run aggregates count, sum(k) and the exact sum of xxhash64(id, x, k) (an order-free fingerprint
of the multiset of rows); all must agree. Throughput is input rows per second; the goal
is accelerated / plain >= 0.9 for the cheap function. --heavy adds a variant whose rows
cost ~--heavy-us of pure Python each (same explode).

Prints a Markdown table row per variant and one JSON line.

    .venv/bin/python bench/bench_explode.py [--rows N] [--repeat R] [--heavy] [--quiver-bin PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from typing import Iterator

import pandas as pd

import bench_udf
from bench_udf import Node, _timed, add_quiver_bin, command_line, heavy_row, quiver, say, start_spark

SCHEMA = "id long, x double, k int"


def reps_of(ids: pd.Series) -> pd.Series:
    """0-3 rows per id, deterministic: a multiplicative hash, mod 4."""
    return ((ids * 2654435761) // 128) % 4


def explode(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The cheap function: vectorized pandas."""
    for df in it:
        out = df.loc[df.index.repeat(reps_of(df["id"]))]
        yield out.assign(k=out.groupby(level=0).cumcount().astype("int32")).reset_index(drop=True)


def heavy_explode(loops: int):
    def fn(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            df = df.assign(x=[float(heavy_row(v, loops)) for v in df["id"].tolist()])
            yield from explode(iter([df]))
    return fn


def run(df, fn) -> tuple[float, tuple]:
    from pyspark.sql import functions as F
    out = df.mapInPandas(fn, SCHEMA).agg(F.count("*"), F.sum("k"), F.sum(F.xxhash64("id", "x", "k").cast("decimal(38,0)")))
    secs, row = _timed(lambda: out.collect()[0])
    return secs, tuple(row)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="input rows (default 2 M)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds, best kept (default 3)")
    ap.add_argument("--heavy", action="store_true", help="add the heavy variant")
    ap.add_argument("--heavy-rows", type=int, default=20_000, help="input rows of the heavy variant")
    ap.add_argument("--heavy-us", type=float, default=100.0, help="pure Python per heavy row, us")
    add_quiver_bin(ap)
    args = ap.parse_args()
    command = command_line("bench_explode.py")

    import cloudpickle
    from pyspark import cloudpickle as spark_cloudpickle
    for pickler in (cloudpickle, spark_cloudpickle):  # heavy_row travels with the functions
        pickler.register_pickle_by_value(bench_udf)
    node = Node(args.quiver_bin)
    spark = None
    try:
        client = quiver.Client(node.address)
        say(f"node up: {node.wait_workers(client, os.cpu_count() or 1)} Python workers")
        spark, why_not = start_spark(node)
        if spark is None:
            sys.exit(f"bench_explode: Spark did not start: {why_not}")
        df = spark.range(0, args.rows, numPartitions=2).selectExpr("id", "id * 0.5 AS x").cache()
        df.count()
        batch = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
        variants = {"plain": explode, "accelerated": quiver.accelerate(explode),
                    "on the node": quiver.accelerate(rows_per_task=max(1, batch // 4))(explode)}
        sets = [("cheap", df, args.rows, variants)]
        if args.heavy:
            loops = max(1, round(args.heavy_us / 0.06))  # heavy_row: ~60 ns per loop
            h = heavy_explode(loops)
            hdf = spark.range(0, args.heavy_rows, numPartitions=2).selectExpr("id", "id * 0.5 AS x").cache()
            hdf.count()
            sets.append(("heavy", hdf, args.heavy_rows, {"plain": h, "accelerated": quiver.accelerate(h)}))
        times: dict = collections.defaultdict(list)
        answers: dict = {}
        for r in range(args.repeat):
            for name, data, _, fns in sets:
                for variant, fn in fns.items():
                    secs, answer = run(data, fn)
                    times[(name, variant)].append(secs)
                    answers.setdefault(name, {})[variant] = answer
                    say(f"round {r + 1}: {name} {variant}: {secs:.2f} s, {answer}")
        results = []
        for name, _, rows, fns in sets:
            plain_s = min(times[(name, "plain")])
            same = len(set(answers[name].values())) == 1
            for variant in fns:
                if variant == "plain":
                    continue
                s = min(times[(name, variant)])
                results.append({"function": name, "variant": variant, "input_rows": rows,
                                "output_rows": answers[name][variant][0], "plain_s": round(plain_s, 3),
                                "accelerated_s": round(s, 3), "plain_rows_per_s": round(rows / plain_s),
                                "accelerated_rows_per_s": round(rows / s), "ratio": round(plain_s / s, 3),
                                "identical": same})
        print("| function | variant | input rows | output rows | plain s | accelerated s | throughput ratio | identical |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for x in results:
            print(f"| {x['function']} | {x['variant']} | {x['input_rows']:,} | {x['output_rows']:,} | "
                  f"{x['plain_s']:.2f} | {x['accelerated_s']:.2f} | {x['ratio']:.2f}x | "
                  f"{'yes' if x['identical'] else 'NO'} |")
        print(json.dumps({"bench": "explode", "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                          "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                          "results": results}))
        return 0 if all(x["identical"] for x in results) else 1
    finally:
        if spark is not None:
            spark.stop()
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
