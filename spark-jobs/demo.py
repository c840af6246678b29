"""Quiver's main demo (`make run`): a heavy per-row pandas UDF on skewed data, plain and accelerated.

The job prices European call options by Monte Carlo, one option per row, in pure
Python (PATHS simulated paths per row, seeded from the row's id, so the result is
deterministic). The data is skewed the way real data often is: most options are
on one underlying, and the frame is partitioned by underlying, so about 90% of
the rows sit in one Spark partition. Spark runs a pandas UDF one partition per
task, one Python process per task, so that partition runs on one core while the
other cores finish their small partitions and idle.

It runs the same UDF twice on a local Spark (local[2]): once as a plain pandas
UDF, once with @quiver.accelerate, which sends each Arrow batch to a quiver node
on this machine; the node cuts the batch into tasks and runs them on all of its
Python workers (one per core). It checks that both give exactly the same prices,
prints both wall times and the speedup, and exits 1 if the results differ.

The node: the driver calls quiver.connect(), which starts a node for this
machine (workers on this interpreter) in the run directory $QUIVER_RUN_DIR.
Spark's Python workers find it through the same default socket, because the
driver sets QUIVER_RUN_DIR both in its own environment (inherited by the JVM
and the Python workers it forks) and as spark.executorEnv. The demo uses a
private temporary run directory, so it neither reuses nor disturbs a node that
is already running, and it stops its node and Spark when it ends.

    .venv/bin/python spark-jobs/demo.py [--rows 4000] [--paths 2000]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import warnings

import pandas as pd

try:
    import quiver
except ImportError:  # run from a checkout without `pip install -e pyclient`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pyclient"))
    import quiver

PATHS = 2000           # Monte Carlo paths per option (row): ~2 ms of pure Python
HOT_SHARE = 0.9        # share of the rows on the one hot underlying
PARTITIONS = 4


def monte_carlo_call(spot: float, strike: float, vol: float, rate: float, maturity: float,
                     seed: int, paths: int = PATHS) -> float:
    """Price of a European call under Black-Scholes dynamics, by simulating `paths` terminal prices."""
    rng = random.Random(seed)
    drift = (rate - 0.5 * vol * vol) * maturity
    diffusion = vol * math.sqrt(maturity)
    gauss, exp = rng.gauss, math.exp
    payoff = 0.0
    for _ in range(paths):
        terminal = spot * exp(drift + diffusion * gauss(0.0, 1.0))
        if terminal > strike:
            payoff += terminal - strike
    return exp(-rate * maturity) * payoff / paths


def price_options(option_id: pd.Series, spot: pd.Series, strike: pd.Series, vol: pd.Series,
                  rate: pd.Series, maturity: pd.Series) -> pd.Series:
    """The UDF body: one Monte Carlo price per row, seeded by the option's id."""
    return pd.Series([monte_carlo_call(s, k, v, r, t, int(i), PATHS)
                      for i, s, k, v, r, t in zip(option_id, spot, strike, vol, rate, maturity)],
                     dtype="float64")


def options_frame(spark, rows: int):
    """`rows` options, ~90% of them on SPX, partitioned by underlying (so one partition is hot).

    Rows are generated from their id alone (no randomness), so both runs see the
    same data. repartition(PARTITIONS, "underlying") hash-partitions by the key,
    as a join or groupBy on it would: every SPX row lands in the same partition,
    and the other underlyings spread over the rest (a few may share SPX's).
    """
    from pyspark.sql import functions as F

    hot = int(rows * HOT_SHARE)
    others = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "JPM", "XOM"]
    others_col = F.element_at(F.array(*[F.lit(o) for o in others]),
                              (F.col("id") % len(others) + 1).cast("int"))
    return (spark.range(0, rows, numPartitions=PARTITIONS)
            .withColumn("underlying", F.when(F.col("id") < hot, F.lit("SPX")).otherwise(others_col))
            .withColumn("spot", 80.0 + (F.col("id") * 7 % 41).cast("double"))
            .withColumn("strike", 90.0 + (F.col("id") * 13 % 31).cast("double"))
            .withColumn("vol", 0.10 + (F.col("id") % 9).cast("double") * 0.05)
            .withColumn("rate", 0.01 + (F.col("id") % 5).cast("double") * 0.005)
            .withColumn("maturity", 0.25 + (F.col("id") % 8).cast("double") * 0.25)
            .repartition(PARTITIONS, "underlying"))


def _quiet_log4j(directory: str) -> str:
    """A log4j2 configuration that lets only errors through (Spark's default prints WARNs)."""
    path = os.path.join(directory, "log4j2.properties")
    with open(path, "w") as f:
        f.write("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                # Spark's loggers at the root's level, or Spark prints "Setting default log level".
                "logger.spark.name = org.apache.spark\nlogger.spark.level = error\n"
                "appender.console.type = Console\nappender.console.name = console\n"
                "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
                "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n")
    return path


def run(spark, df, udf) -> tuple[float, dict[int, float]]:
    """Apply udf to every row and collect; return (wall seconds, {id: price})."""
    start = time.perf_counter()
    rows = df.select("id", udf("id", "spot", "strike", "vol", "rate", "maturity").alias("price")).collect()
    wall = time.perf_counter() - start
    return wall, {r["id"]: r["price"] for r in rows}


def main() -> int:
    global PATHS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4000, help="options to price (default 4000)")
    ap.add_argument("--paths", type=int, default=PATHS, help=f"paths per option (default {PATHS})")
    args = ap.parse_args()
    PATHS = args.paths
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

    run_dir = tempfile.mkdtemp(prefix="quiver-demo-")
    os.chmod(run_dir, 0o700)
    os.environ["QUIVER_RUN_DIR"] = run_dir  # before the JVM starts: Spark's workers inherit it
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = None
    try:
        t0 = time.perf_counter()
        client = quiver.connect()  # starts a node for this machine in run_dir
        node_s = time.perf_counter() - t0

        from pyspark.sql import SparkSession
        from pyspark.sql.functions import pandas_udf, spark_partition_id

        spark = (SparkSession.builder.master("local[2]").appName("quiver-demo")
                 .config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", str(PARTITIONS))
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.executorEnv.QUIVER_RUN_DIR", run_dir)
                 .config("spark.driver.extraJavaOptions",
                         f"-Dlog4j2.configurationFile={_quiet_log4j(run_dir)}")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")

        plain = pandas_udf("double")(price_options)
        accelerated = pandas_udf("double")(quiver.accelerate(price_options))

        df = options_frame(spark, args.rows).cache()
        sizes = sorted((r["n"] for r in df.groupBy(spark_partition_id().alias("p"))
                        .count().withColumnRenamed("count", "n").collect()), reverse=True)
        # Warm up: start Spark's Python workers once, so neither timed run pays for it.
        df.limit(8).select(pandas_udf("double")(lambda s: s * 0.0)("spot")).collect()

        plain_s, plain_prices = run(spark, df, plain)
        accel_s, accel_prices = run(spark, df, accelerated)

        node = client.status()["nodes"][0]
        workers, served = node.get("workers"), node.get("rows_total", 0)
        client.close()
        same = plain_prices == accel_prices
        differing = [i for i in plain_prices if plain_prices[i] != accel_prices.get(i)]
        speedup = plain_s / accel_s if accel_s > 0 else float("nan")
        sample = sorted(plain_prices)[:3]
        print()
        print("Quiver demo: Monte Carlo option pricing as a pandas UDF on skewed data")
        print(f"  {args.rows} options x {PATHS} paths, Spark local[2], {os.cpu_count()} cores; "
              f"rows per partition: {sizes} ({sizes[0] / args.rows:.0%} in the hot one)")
        print(f"  quiver node: {workers} Python workers, ready in {node_s:.1f}s at {client.address}; "
              f"it computed {served} rows")
        for i in sample:
            print(f"  option {i}: price {plain_prices[i]:.4f}")
        print(f"  plain pandas UDF         {plain_s:7.2f} s")
        print(f"  @quiver.accelerate       {accel_s:7.2f} s")
        print(f"  speedup                  {speedup:7.2f} x")
        if not same:
            print(f"  results: DIFFERENT ({len(differing)} of {len(plain_prices)} prices differ, "
                  f"{len(accel_prices)} rows accelerated); first ids: {differing[:5]}", file=sys.stderr)
            return 1
        print(f"  results: identical ({len(plain_prices)} prices)")
        if served < args.rows:  # accelerate fell back to running in Spark's workers (it warned why)
            print(f"  the node computed only {served} of {args.rows} rows: @quiver.accelerate did not "
                  f"reach it from Spark's Python workers (see the warnings above)", file=sys.stderr)
            return 1
        return 0
    finally:
        if spark is not None:
            spark.stop()
        quiver.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
