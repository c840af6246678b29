"""Python UDF benchmarks: what @quiver.accelerate and Client.call buy, side by side in one run.

    a. A heavy per-row UDF (~1 ms of pure Python per row, calibrated here) over
       one Spark partition, Spark local[2]: plain pandas UDF vs accelerated;
       against the machine's limit, multiprocessing.Pool(os.cpu_count()) vs a
       serial loop over the same rows. The figure of merit is
       accelerated speedup / Pool speedup (goal >= 0.85).
    b. The same function registered on the node and called with Client.call
       (no Spark), against the same serial loop and Pool.
    c. A cheap vectorized UDF (x * 2) over 10 M rows in Spark: accelerated / plain
       wall time (goal <= 1.15; accelerate skips the node by measurement).
    d. Per-task overhead through the node's Python workers: an identity function
       over N rows with rows_per_task=1 (N tasks in one call), and N tiny calls
       of one row each (sequential, and from several threads).

It starts its own node (bin/quiver, or --quiver-bin) on a private run directory,
with Python workers on this interpreter, and stops it at the end. Spark parts
are skipped with --no-spark, or by themselves when pyspark cannot start (no
pyspark, no Java); parts b and d need only pyarrow, pandas and cloudpickle.
Prints a Markdown table to paste into bench/RESULTS.md (progress, and each
round's timings, go to stderr). The heavy timings of a, b and the limit run in
rounds (--repeat, default 3), interleaved so that a change in the machine's
load hits all of them alike; the table keeps the best of each.

    .venv/bin/python bench/bench_udf.py [--quick] [--no-spark] [--quiver-bin PATH]
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import multiprocessing
import os
import shutil
import shlex
import subprocess
import sys
import tempfile
import time
import warnings

import pandas as pd
import pyarrow as pa

from machine import load, machine, proc_cpu_s, proc_ppid, self_cpu_s  # noqa: F401  (machine, load: run_all)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import quiver
except ImportError:  # not installed (e.g. a machine with only a prebuilt bin/quiver)
    sys.path.insert(0, os.path.join(ROOT, "pyclient"))
    import quiver

# The directory that holds the quiver package: the node's workers and Spark's
# Python workers import it from there too.
QUIVER_PATH = os.path.dirname(os.path.dirname(os.path.abspath(quiver.__file__)))

TARGET_ROW_S = 1e-3  # the heavy function's cost per row


# Shared by the bench scripts' main(): the --quiver-bin default, the command line a
# result records, and progress lines on stderr.

QUIVER_BIN = os.environ.get("QUIVER_BIN") or os.path.join(ROOT, "bin", "quiver")


def add_quiver_bin(ap, **kw) -> None:
    ap.add_argument("--quiver-bin", default=QUIVER_BIN, **kw)


def command_line(script: str) -> str:
    return f"python bench/{script}" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# The workloads. Module-level so that multiprocessing and cloudpickle ship them alike.

def heavy_row(x: int, n: int) -> int:
    """About n * 60 ns of pure Python (an LCG walk): the heavy per-row work."""
    acc = x & 0xFFFF
    for i in range(n):
        acc = (acc * 1103515245 + i) % 2147483648
    return acc


def heavy_series(n: int):
    """The heavy function as a pandas UDF body (Series -> Series) with its loop count bound."""

    def heavy(x: pd.Series) -> pd.Series:
        return pd.Series([heavy_row(v, n) for v in x.tolist()], dtype="int64")

    return heavy


def double(x: pd.Series) -> pd.Series:
    """The cheap vectorized UDF."""
    return x * 2


def identity(x: pd.Series) -> pd.Series:
    return x


def identity_arrow(x: pa.Array) -> pa.Array:
    return x


def calibrate() -> int:
    """The loop count that makes heavy_row take TARGET_ROW_S here (best of a few runs of 20 rows)."""
    n = 4000
    for _ in range(3):  # converge: the cost is not quite linear in n at the start
        per_row = _best(lambda: [heavy_row(x, n) for x in range(20)], 3) / 20
        n = max(1, round(n * TARGET_ROW_S / per_row))
    return n


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# The node.

class Node:
    """A quiver node of our own: `quiver start --block` on a private run directory."""

    def __init__(self, binary: str, listen: str = "", pythonpath: tuple = (), drop_env: tuple = ()):
        self.run_dir = tempfile.mkdtemp(prefix="qv-bench-")
        os.chmod(self.run_dir, 0o700)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (QUIVER_PATH, *pythonpath, env.get("PYTHONPATH")) if p)
        for k in drop_env:
            env.pop(k, None)
        self.proc = subprocess.Popen(
            [binary, "start", "--block", "--listen=" + listen, "--run-dir", self.run_dir,
             "--python", sys.executable, "--log-level", "warn"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("quiver ready"):
            self.proc.kill()
            sys.exit(f"bench: the node did not start ({binary}): {line!r}")
        fields = dict(f.split("=", 1) for f in line.split()[2:])
        self.address = "grpc+unix://" + fields["unix"]
        tcp = fields.get("tcp", "")
        self.tcp = (tcp if "://" in tcp else "grpc://" + tcp) if tcp else None

    def wait_workers(self, client, want: int, timeout: float = 60.0) -> int:
        """Wait until `want` Python workers are up (they start in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            n = client.status()["nodes"][0].get("workers", 0)
            if n >= want or time.monotonic() > deadline:
                return n
            time.sleep(0.1)

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds used so far by the node process and by its live Python workers (Linux /proc)."""
        node, workers = proc_cpu_s(self.proc.pid), 0.0
        try:
            for pid in os.listdir("/proc"):
                if pid.isdigit() and proc_ppid(int(pid)) == self.proc.pid:
                    workers += proc_cpu_s(int(pid))
        except OSError:
            pass
        return node, workers

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


# Spark.

def start_spark(node: Node):
    """A local[2] SparkSession whose Python workers reach the node; None (and why) if it cannot start."""
    env = {"QUIVER_ADDRESS": node.address, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (QUIVER_PATH, os.environ.get("PYTHONPATH")) if p)}
    os.environ.update(env)  # the JVM and the Python workers it starts inherit these
    os.environ.pop("QUIVER_ADAPTIVE", None)  # the decorator as users get it
    try:
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        from pyspark.sql import SparkSession
        log4j = os.path.join(node.run_dir, "log4j2.properties")
        with open(log4j, "w") as f:
            f.write("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                    "logger.spark.name = org.apache.spark\nlogger.spark.level = error\n"
                    "appender.console.type = Console\nappender.console.name = console\n"
                    "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
                    "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n")
        builder = (SparkSession.builder.master("local[2]").appName("quiver-bench-udf")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.memory", "2g")
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j}"))
        for k, v in env.items():
            builder = builder.config(f"spark.executorEnv.{k}", v)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        spark.range(1).collect()
        return spark, None
    except Exception as e:  # ImportError, no Java (PySparkRuntimeError), ...
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def node_rows(client) -> int:
    """Rows the node has computed so far."""
    return client.status()["nodes"][0].get("rows_total", 0)


def spark_sum(df, udf, col: str = "id") -> tuple[float, int]:
    """Wall seconds and result of sum(udf(col)) over df (every row goes through the UDF)."""
    from pyspark.sql import functions as F
    return _timed(lambda: df.select(udf(col).alias("r")).agg(F.sum("r")).collect()[0][0])


# The parts.

class Limits:
    """Serial loop and multiprocessing.Pool(cores) over the heavy rows: the machine's limit.

    The Pool forks now, before any gRPC or JVM thread exists, and stays up (idle)
    so that its timings can interleave with the others.
    """

    def __init__(self, n: int, cores: int):
        self.fn = functools.partial(heavy_row, n=n)
        self.pool = multiprocessing.get_context("fork").Pool(cores)
        self.pool.map(self.fn, range(cores * 4))  # warm: every process started

    def serial(self, rows: list[int]):
        return _timed(lambda: [self.fn(x) for x in rows])

    def parallel(self, rows: list[int]):
        return _timed(lambda: self.pool.map(self.fn, rows))

    def close(self):
        self.pool.close()
        self.pool.join()


class SparkHeavy:
    """Part a: the heavy UDF over one Spark partition, plain and accelerated."""

    def __init__(self, spark, rows: int, n: int):
        from pyspark.sql.functions import pandas_udf
        heavy = heavy_series(n)
        self.plain_udf = pandas_udf("long")(heavy)
        self.accel_udf = pandas_udf("long")(quiver.accelerate(heavy))
        self.df = spark.range(0, rows, numPartitions=1).cache()
        self.df.count()
        warm = spark.range(0, 64, numPartitions=1)
        spark_sum(warm, self.plain_udf)  # start Spark's Python worker; register with the node
        spark_sum(warm, self.accel_udf)

    def plain(self):
        return spark_sum(self.df, self.plain_udf)

    def accelerated(self):
        return spark_sum(self.df, self.accel_udf)

    def close(self):
        self.df.unpersist()


class ClientHeavy:
    """Part b: the heavy function registered on the node, one Client.call over all rows."""

    def __init__(self, client, rows: list[int], n: int, cores: int):
        self.client = client
        self.name = client.register(heavy_series(n), name="bench_heavy", returns=pa.int64())
        client.call(self.name, pa.record_batch([pa.array(range(cores * 4), pa.int64())], names=["x"]))
        self.batch = pa.record_batch([pa.array(rows, pa.int64())], names=["x"])

    def call(self):
        t, out = _timed(lambda: self.client.call(self.name, self.batch))
        return t, out.to_pylist()


def part_spark_cheap(spark, client, rows: int, repeat: int) -> dict:
    from pyspark.sql.functions import pandas_udf
    plain = pandas_udf("long")(double)
    accel = pandas_udf("long")(quiver.accelerate(double))
    df = spark.range(0, rows)  # local[2]: 2 partitions, batches of 10,000 rows
    spark_sum(spark.range(0, 1000), plain)  # warm
    spark_sum(spark.range(0, 1000), accel)
    plain_t, accel_t, sums = [], [], set()
    batches = lambda: client.status()["nodes"][0].get("batches_total", 0)  # noqa: E731
    remote = 0
    for _ in range(repeat):  # alternate, keep the best of each
        t, s = spark_sum(df, plain)
        plain_t.append(t)
        sums.add(s)
        before = batches()
        t, s = spark_sum(df, accel)
        remote = batches() - before
        accel_t.append(t)
        sums.add(s)
    parts = df.rdd.getNumPartitions()
    total = parts * math.ceil(rows / parts / 10_000)  # maxRecordsPerBatch
    return {"plain_s": min(plain_t), "accel_s": min(accel_t), "same": len(sums) == 1,
            "remote": remote, "batches": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (2,000 heavy rows, 1 M cheap rows)")
    ap.add_argument("--no-spark", action="store_true", help="skip the Spark parts (a and c)")
    add_quiver_bin(ap, help="the quiver binary (default $QUIVER_BIN, else bin/quiver)")
    ap.add_argument("--heavy-rows", type=int, help="rows of the heavy UDF (default 20,000; quick 2,000)")
    ap.add_argument("--cheap-rows", type=int, help="rows of the cheap UDF (default 10 M; quick 1 M)")
    ap.add_argument("--repeat", type=int, help="runs of each timing, best kept (default 3; quick 1)")
    args = ap.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    heavy_rows = args.heavy_rows or (2_000 if args.quick else 20_000)
    cheap_rows = args.cheap_rows or (1_000_000 if args.quick else 10_000_000)
    tasks, calls = (2_000, 1_000) if args.quick else (20_000, 5_000)
    cores = os.cpu_count() or 1
    command = command_line("bench_udf.py")
    load_before = load()

    n = calibrate()
    row_ms = _best(lambda: [heavy_row(x, n) for x in range(50)], 3) / 50 * 1e3
    say(f"heavy_row: {n} iterations, {row_ms:.3f} ms/row")
    rows = list(range(heavy_rows))
    limits = Limits(n, cores)
    node = Node(args.quiver_bin, pythonpath=(os.path.join(ROOT, "bench"),))  # the workers import its functions
    times: dict[str, list[float]] = collections.defaultdict(list)
    same: dict[str, bool] = {}
    results: dict = {}
    spark = sh = None
    try:
        client = quiver.Client(node.address)
        workers = node.wait_workers(client, cores)
        say(f"node up: {workers} Python workers")
        spark, why_not = (None, "--no-spark") if args.no_spark else start_spark(node)
        if spark is None:
            say(f"Spark parts skipped: {why_not}")
        else:
            sh = SparkHeavy(spark, heavy_rows, n)
        ch = ClientHeavy(client, rows, n, cores)
        # The heavy measurements interleave, round by round, so that a change in the
        # machine's load (a shared machine) hits all of them alike; the best of each is kept.
        for r in range(repeat):
            say(f"round {r + 1}/{repeat}: serial loop, Pool({cores}), "
                f"{'' if sh is None else 'Spark plain, Spark accelerated, '}Client.call; {heavy_rows} rows")
            t, want = limits.serial(rows)
            times["serial"].append(t)
            t, got = limits.parallel(rows)
            times["pool"].append(t)
            same["pool"] = same.get("pool", True) and got == want
            if sh is not None:
                t, plain_sum = sh.plain()
                times["a_plain"].append(t)
                before = node_rows(client)
                t, accel_sum = sh.accelerated()
                times["a_accel"].append(t)
                served = node_rows(client) - before
                if served < heavy_rows:  # accelerate ran (some) batches in Spark's worker
                    say(f"  the node computed only {served} of {heavy_rows} rows of the accelerated run")
                    same["a_on_node"] = False
                same["a"] = same.get("a", True) and plain_sum == accel_sum == sum(want)
            t, got = ch.call()
            times["b"].append(t)
            same["b"] = same.get("b", True) and got == want
            say("  " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()) + f"; load {load()}")
        if sh is not None:
            sh.close()
            say(f"c: cheap UDF in Spark, {cheap_rows} rows")
            results["c"] = part_spark_cheap(spark, client, cheap_rows, repeat)
        say(f"d: per-task overhead, {tasks} tasks, {calls} calls")
        from udf_overhead import part_overhead
        results["d"] = part_overhead(client, node, tasks, calls, cores)
        client.close()
    finally:
        if spark is not None:
            spark.stop()
        node.stop()
        limits.close()

    best = {k: min(v) for k, v in times.items()}
    serial_s, pool_s = best["serial"], best["pool"]
    pool_x = serial_s / pool_s
    ok = all(same.values())
    print(f"Machine: {machine()}; load average {load_before} before, {load()} after; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; `{command}`; node with {workers} Python workers; "
          f"heavy row = {n} loop iterations = {row_ms:.2f} ms here; "
          f"each timing the best of {repeat} run{'s' if repeat > 1 else ''}.\n")
    print("| part | measurement | figure | goal |")
    print("| --- | --- | --- | --- |")
    print(f"| limit | serial loop, {heavy_rows:,} heavy rows | {serial_s:.2f} s | |")
    print(f"| limit | `multiprocessing.Pool({cores})` over the same rows | {pool_s:.2f} s, "
          f"**{pool_x:.2f}x** serial{'' if same['pool'] else ' (RESULTS DIFFER)'} | |")
    if "a_plain" in best:
        ax = best["a_plain"] / best["a_accel"]
        print(f"| a | Spark local[2], 1 partition, plain pandas UDF | {best['a_plain']:.2f} s | |")
        print(f"| a | same, `@quiver.accelerate` | {best['a_accel']:.2f} s, **{ax:.2f}x** plain"
              f"{'' if same['a'] else ' (RESULTS DIFFER)'}"
              f"{'' if same.get('a_on_node', True) else ' (NOT ALL ON THE NODE)'} | |")
        print(f"| a | accelerated speedup / Pool speedup | **{ax / pool_x:.2f}** | >= 0.85 "
              f"{'met' if ax / pool_x >= 0.85 else 'missed'} |")
    else:
        print(f"| a | Spark heavy UDF | skipped ({why_not}) | |")
    bx = serial_s / best["b"]
    print(f"| b | `Client.call`, registered function, one batch of {heavy_rows:,} rows | "
          f"{best['b']:.2f} s, **{bx:.2f}x** serial{'' if same['b'] else ' (RESULTS DIFFER)'} | |")
    print(f"| b | Client.call speedup / Pool speedup | **{bx / pool_x:.2f}** | >= 0.85 "
          f"{'met' if bx / pool_x >= 0.85 else 'missed'} |")
    if "c" in results:
        c = results["c"]
        cr = c["accel_s"] / c["plain_s"]
        ok &= c["same"]
        print(f"| c | Spark local[2], `x * 2` over {cheap_rows:,} rows, plain pandas UDF "
              f"| {c['plain_s']:.2f} s | |")
        print(f"| c | same, `@quiver.accelerate` ({c['remote']} of {c['batches']} batches sent to the "
              f"node, the rest run in Spark's worker) | {c['accel_s']:.2f} s, **{cr:.2f}x** plain"
              f"{'' if c['same'] else ' (RESULTS DIFFER)'} | <= 1.15x {'met' if cr <= 1.15 else 'missed'} |")
    else:
        print(f"| c | Spark cheap UDF | skipped ({why_not}) | |")
    d = results["d"]
    for key, label in (("series", "pandas Series identity"),
                       ("arrow", "pyarrow identity (`kind=\"arrow\"`)")):
        us = d[f"batch_{key}_us"]
        cpu_node, cpu_workers, cpu_client = d[f"batch_{key}_cpu"]
        print(f"| d | {label}, one call of {tasks:,} rows, `rows_per_task=1` ({tasks:,} tasks) | "
              f"**{us:.0f} us/task** wall; CPU per task: node {cpu_node:.0f} us, workers "
              f"{cpu_workers:.0f} us, client {cpu_client:.0f} us | <= 100 us "
              f"{'met' if us <= 100 else 'missed'}; Ray empty task ~500 us |")
    print(f"| d | {calls:,} sequential `Client.call`s of 1 row (Series identity) | "
          f"{d['calls_seq_us']:.0f} us/call round trip | Ray sync task ~1,000 us |")
    print(f"| d | same from {d['threads']} threads | {d['calls_par_us']:.0f} us/call "
          f"({1e6 / d['calls_par_us']:,.0f} calls/s) | Ray async ~8,000 tasks/s |")
    print(f"| d | {calls:,} sequential 1-row calls of the node's native `identity` (no Python "
          f"worker: the Flight call alone) | {d['calls_native_us']:.0f} us/call | |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
