"""The whole benchmark suite in one run: `make bench` (or `make bench QUICK=1`).

Runs, on this machine, side by side:
  1. transport: Quiver's native `identity` over Flight against a pyarrow (C++) Flight echo
     server (bench/flight_echo.py), TCP and unix socket, same pyarrow client and batches,
     next to the loopback limit measured on the spot; plus the Go benchmarks of ./flight/.
  2. Spark UDF workloads: plain pandas UDF vs @quiver.accelerate vs Ray inside the UDF,
     for a heavy per-row UDF on skewed data, a cheap vectorized UDF and model scoring.
  3. `quiver loadtest` at concurrency 1, 8 and 64 against `identity` and `haversine_km`.
and rewrites bench/RESULTS.md (tables of ratios from this run) and bench/charts/*.png.
Progress goes to stderr; the raw figures to bench/charts/results.json.

    .venv/bin/python bench/run_all.py [--quick] [--no-ray] [--no-spark] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

import bench_node  # noqa: E402  (exchange, best)
import bench_udf  # noqa: E402  (calibrate, heavy_row, start_spark, machine, QUIVER_PATH)
import udf_workloads as W  # noqa: E402

import quiver  # noqa: E402

QBIN = os.environ.get("QUIVER_BIN") or os.path.join(ROOT, "bin", "quiver")
T0 = time.perf_counter()
# Each Spark Python worker that calls ray.init(address="auto") is a Ray job of its own with its own
# Ray workers. With Ray's defaults (soft limit of num_cpus idle workers, idle ones killed after 1 s)
# the jobs keep killing each other's workers, and every task waits for a new worker process
# (observed: model scoring 31 s instead of ~1 s). Let idle workers live, as a tuned cluster would.
RAY_SYSTEM_CONFIG = {"num_workers_soft_limit": 8, "idle_worker_killing_time_threshold_ms": 600_000}


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:5.0f}s] {msg}", file=sys.stderr, flush=True)


def machine_line() -> str:
    return bench_udf.machine()


# The node: TCP and unix socket, Python workers on this interpreter.

def Node():
    """A node of our own with TCP too, its workers able to import bench/udf_workloads."""
    return bench_udf.Node(QBIN, listen="127.0.0.1:0", pythonpath=(BENCH,), drop_env=("QUIVER_ADAPTIVE",))


# 1. Transport.

def loopback_limit(kind: str, total: int, chunk: int = 4 << 20) -> float:
    """One-way bytes/s through a socket pair from Python: sendall of `chunk`-byte buffers in one
    thread, recv_into a `chunk`-byte buffer in another (the GIL is released in both syscalls)."""
    if kind == "unix":
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        a = socket.create_connection(ls.getsockname())
        b, _ = ls.accept()
        ls.close()
        for s in (a, b):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, chunk)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, chunk)
    out = memoryview(bytearray(os.urandom(1024) * (chunk // 1024)))
    n = total // chunk

    def send():
        for _ in range(n):
            a.sendall(out)
        a.shutdown(socket.SHUT_WR)

    buf = memoryview(bytearray(chunk))
    got = 0
    t = threading.Thread(target=send)
    start = time.perf_counter()
    t.start()
    while True:
        k = b.recv_into(buf)
        if not k:
            break
        got += k
    el = time.perf_counter() - start
    t.join()
    a.close()
    b.close()
    assert got == n * chunk
    return got / el


def start_echo(location: str):
    proc = subprocess.Popen([sys.executable, os.path.join(BENCH, "flight_echo.py"), location],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"echo server did not start: {line!r}")
    return proc, line.split()[1]


def flight_throughput(address: str, path: str, batches, repeat: int) -> float:
    client = fl.connect(address)
    try:
        out = bench_node.exchange(client, path, batches[:2])  # warm, and check
        assert sum(o.num_rows for o in out) == 2 * batches[0].num_rows and out[0].column(0).equals(batches[0].column(0)), \
            f"{address} {path}: echo differs from input"
        return bench_node.best(lambda: bench_node.exchange(client, path, batches), repeat)
    finally:
        client.close()


def go_benchmarks(benchtime: str) -> dict:
    cmd = ["go", "test", "-run", "^$", "-bench", "Identity|RoundTrip", "-benchtime", benchtime, "./flight/"]
    say("go: " + " ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = {"command": " ".join(cmd), "raw": p.stdout[-4000:], "ok": p.returncode == 0, "bench": {}}
    for line in p.stdout.splitlines():
        m = re.match(r"^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$", line)
        if not m:
            continue
        vals = {}
        for num, unit in re.findall(r"([\d.]+) (\S+)", m.group(4)):
            vals[unit] = float(num)
        out["bench"][m.group(1)] = vals
    if p.returncode != 0:
        out["error"] = (p.stderr or p.stdout)[-2000:]
    return out


def section_transport(node: Node, quick: bool) -> dict:
    n_batches, repeat = (100, 2) if quick else (500, 3)
    batch = pa.record_batch([pa.array(np.arange(65536, dtype=np.int64))], names=["x"])
    batches = [batch] * n_batches
    rows, nbytes = n_batches * batch.num_rows, n_batches * batch.nbytes
    res = {"batches": n_batches, "rows": rows, "bytes": nbytes, "repeat": repeat}
    lim_total = (256 if quick else 1024) << 20
    res["limit"] = {k: max(loopback_limit(k, lim_total) for _ in range(repeat + 1)) for k in ("tcp", "unix")}
    say(f"loopback limit: tcp {res['limit']['tcp'] / 1e9:.2f} GB/s, unix {res['limit']['unix'] / 1e9:.2f} GB/s")
    echo_dir = tempfile.mkdtemp(prefix="qv-echo-")
    procs = []
    try:
        p_tcp, echo_tcp = start_echo("grpc://127.0.0.1:0")
        procs.append(p_tcp)
        p_unix, echo_unix = start_echo(f"grpc+unix://{echo_dir}/echo.sock")
        procs.append(p_unix)
        targets = {("quiver", "tcp"): (node.tcp, "identity"), ("quiver", "unix"): (node.address, "identity"),
                   ("echo", "tcp"): (echo_tcp, "echo"), ("echo", "unix"): (echo_unix, "echo")}
        times = {k: [] for k in targets}
        for _ in range(repeat):  # interleaved rounds, best of each kept
            for k, (addr, path) in targets.items():
                times[k].append(flight_throughput(addr, path, batches, 1))
        res["flight"] = {f"{s}_{t}": {"s": min(v), "rows_per_s": rows / min(v), "bytes_per_s": nbytes / min(v)}
                         for (s, t), v in times.items()}
        for k, v in res["flight"].items():
            say(f"  {k}: {v['rows_per_s'] / 1e6:.1f} M rows/s, {v['bytes_per_s'] / 1e6:.0f} MB/s")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(echo_dir, ignore_errors=True)
    res["go"] = go_benchmarks("0.5s" if quick else "2s")
    return res


# 2. Spark UDF workloads.

def skewed_frame(spark, rows: int, hot_share: float = 0.9, parts: int = 4):
    """rows ids in `parts` partitions, hot_share of them in the first (skew as after a groupBy on a hot key)."""
    hot = int(rows * hot_share)
    df = spark.range(0, hot, numPartitions=1).union(spark.range(hot, rows, numPartitions=parts - 1))
    return df.cache()


def model_frame(spark, rows: int):
    from pyspark.sql import functions as F
    df = spark.range(0, rows, numPartitions=2)
    for i in range(W.MODEL_FEATURES):  # deterministic features in [-1, 1)
        df = df.withColumn(f"f{i}", ((F.col("id") * (7919 + 104729 * i)) % 20011).cast("double") / 10005.5 - 1.0)
    return df.cache()


def run_sum(df, udf_expr):
    from pyspark.sql import functions as F
    start = time.perf_counter()
    v = df.select(udf_expr.alias("r")).agg(F.sum("r")).collect()[0][0]
    return time.perf_counter() - start, v


def section_spark(node: Node, quick: bool, no_ray: bool) -> dict:
    from pyspark.sql.functions import pandas_udf
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (BENCH, os.environ.get("PYTHONPATH")) if p)
    heavy_rows = 2_000 if quick else 20_000
    cheap_rows = 1_000_000 if quick else 10_000_000
    model_rows = 100_000 if quick else 600_000
    repeat = 1 if quick else 3
    res = {"heavy_rows": heavy_rows, "cheap_rows": cheap_rows, "model_rows": model_rows, "repeat": repeat}
    n = bench_udf.calibrate()
    for _ in range(3):  # the machine may be shared: check on more rows, rescale once or twice
        row_ms = bench_udf._best(lambda: [bench_udf.heavy_row(x, n) for x in range(100)], 5) / 100 * 1e3
        if abs(row_ms - 1.0) < 0.1:
            break
        n = max(1, round(n / row_ms))
    res["heavy_n"], res["heavy_row_ms"] = n, row_ms
    say(f"heavy_row: {n} iterations = {row_ms:.2f} ms/row")
    model_path = os.path.join(node.run_dir, "model.pkl")
    t = time.perf_counter()
    W.train_model(model_path)
    res["model"] = f"RandomForestRegressor(n_estimators=40, max_depth=12), {W.MODEL_FEATURES} features, trained on 8,000 generated rows"
    say(f"model trained in {time.perf_counter() - t:.1f} s")
    model = W.load_model(model_path)
    X = np.random.default_rng(1).uniform(-1, 1, (10_000, W.MODEL_FEATURES))
    res["predict_one_s"] = bench_udf._best(lambda: model.predict(X), 3)
    res["predict_100_s"] = bench_udf._best(lambda: [model.predict(X[i:i + 100]) for i in range(0, 10_000, 100)], 2)

    t = time.perf_counter()
    spark, why = bench_udf.start_spark(node)  # sets QUIVER_ADDRESS and PYTHONPATH for Spark's workers
    if spark is None:
        res["skipped"] = why
        return res
    res["spark_start_s"] = time.perf_counter() - t
    try:
        client = quiver.Client(node.address)
        bench_udf.Node.wait_workers(node, client, os.cpu_count() or 1)
        heavy_df = skewed_frame(spark, heavy_rows)
        sizes = heavy_df.rdd.glom().map(len).collect()
        res["heavy_partitions"] = sizes
        cheap_df = spark.range(0, cheap_rows)
        mdf = model_frame(spark, model_rows)
        mdf.count()
        cols = [f"f{i}" for i in range(W.MODEL_FEATURES)]
        heavy_df_small = skewed_frame(spark, 400)  # the hot partition makes 4 Ray tasks: workers started
        mdf_small = model_frame(spark, 1000)

        udfs = {
            "plain": {"heavy": pandas_udf("long")(W.heavy_udf(n)),
                      "cheap": pandas_udf("long")(W.double),
                      "model": pandas_udf("double")(W.score_udf(model_path))},
            "quiver": {"heavy": pandas_udf("long")(quiver.accelerate(W.heavy_udf(n))),
                       "cheap": pandas_udf("long")(quiver.accelerate(W.double)),
                       "model": pandas_udf("double")(quiver.accelerate(returns="double")(W.scorer_class(model_path)))},
            # The same model UDF with the node told to cut batches into tasks of 5,000 rows (one predict
            # call per half batch): how much of the model figure is the node's default task size.
            "quiver_rpt": {"model": pandas_udf("double")(
                quiver.accelerate(returns="double", rows_per_task=5000)(W.scorer_class(model_path)))},
        }
        if not no_ray:
            udfs["ray"] = {"heavy": pandas_udf("long")(W.ray_heavy_udf(n)),
                           "cheap": pandas_udf("long")(W.ray_double_udf()),
                           "model": pandas_udf("double")(W.ray_score_udf(model_path))}
        work = {"heavy": (heavy_df, lambda u: u("id"), heavy_df_small),
                "cheap": (cheap_df, lambda u: u("id"), spark.range(0, 1000)),
                "model": (mdf, lambda u: u(*cols), mdf_small)}
        times = {v: {w: [] for w in work if w in udfs[v]} for v in udfs}
        sums = {v: {} for v in udfs}
        remote = {}
        loads = []

        def batches_total():
            return client.status()["nodes"][0].get("batches_total", 0)

        def warm(variant):
            for w, (df, call, small) in work.items():
                if w in udfs[variant]:
                    run_sum(small, call(udfs[variant][w]))  # workers started, model loaded, registered

        def drop_ray(e):
            res["ray_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            say(f"Ray failed: {res['ray_error']}")
            traceback.print_exc()
            for d in (udfs, times, sums):
                d.pop("ray", None)

        ray = None
        if "ray" in udfs:
            try:
                import ray
                say("ray.init(num_cpus=2) in the driver")
                t = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                         object_store_memory=1 << 30, _system_config=dict(RAY_SYSTEM_CONFIG))
                res["ray_init_s"] = time.perf_counter() - t
                res["ray_version"] = ray.__version__
            except Exception as e:
                drop_ray(e)
                ray = None
        elif no_ray:
            res["ray_error"] = "skipped (--no-ray)"
        try:
            for variant in list(udfs):
                say(f"spark: warm {variant}")
                try:
                    warm(variant)
                except Exception as e:
                    if variant != "ray":
                        raise
                    drop_ray(e)
            # Rounds interleave the variants, so that a change in the machine's load (it is shared)
            # hits them alike; the best of each is kept.
            for r in range(repeat):
                loads.append(bench_udf.load())
                say(f"round {r + 1}/{repeat}; load {loads[-1]}")
                for w, (df, call, _) in work.items():
                    for variant in list(udfs):
                        if w not in udfs[variant]:
                            continue
                        before = batches_total()
                        try:
                            t, sm = run_sum(df, call(udfs[variant][w]))
                        except Exception as e:
                            if variant != "ray":
                                raise
                            drop_ray(e)
                            continue
                        if variant.startswith("quiver"):
                            remote[variant + "/" + w] = batches_total() - before
                        times[variant][w].append(t)
                        sums[variant][w] = sm
                        say(f"  {w} {variant}: {t:.2f} s (sum {sm})")
        finally:
            if ray is not None:
                ray.shutdown()
        res["round_loads"] = loads
        res["times"] = {v: {w: min(ts) for w, ts in d.items() if ts} for v, d in times.items()}
        res["rounds"] = times
        res["sums"] = sums
        res["remote_batches"] = remote
        agree = {}
        for w in work:  # every variant that ran w, against plain
            vals = [sums[v][w] for v in sums if w in sums[v]]
            if w == "model":
                agree[w] = all(math.isclose(x, vals[0], rel_tol=1e-9) for x in vals)
            else:
                agree[w] = len(set(vals)) == 1
        res["agree"] = agree
        client.close()
    finally:
        spark.stop()
    return res


# 3. Load test.

def section_loadtest(node: Node, quick: bool) -> dict:
    dur = "1s" if quick else "3s"
    out = {"duration": dur, "runs": []}
    specs = {"identity": "rows=10000,cols=int64:1", "haversine_km": "rows=10000,cols=float64:4"}
    with tempfile.TemporaryDirectory() as d:
        for fn, spec in specs.items():
            for c in (1, 8, 64):
                path = os.path.join(d, f"{fn}-{c}.json")
                cmd = [QBIN, "loadtest", "--target", node.address, "--function", fn, "--generate", spec,
                       "--concurrency", str(c), "--duration", dur, "--warmup", "0.5s", "--json", path]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                if p.returncode != 0 or not os.path.exists(path):
                    out["runs"].append({"function": fn, "concurrency": c, "error": (p.stderr or p.stdout)[-500:]})
                    say(f"loadtest {fn} c={c} failed: {p.stderr[-300:]}")
                    continue
                with open(path) as f:
                    r = json.load(f)
                r["spec"] = spec
                out["runs"].append(r)
                say(f"loadtest {fn} c={c}: {r['rows_per_s'] / 1e6:.2f} M rows/s, "
                    f"p50 {r['latency_us']['p50']} us, p99 {r['latency_us']['p99']} us")
    out["command"] = (f"bin/quiver loadtest --target <node> --function F --generate SPEC --concurrency C "
                      f"--duration {dur} --warmup 0.5s --json FILE")
    return out


def section_tasks(quick: bool, no_ray: bool) -> dict:
    """bench_tasks.py (task API and objects, Quiver and Ray side by side) in its own process."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tasks.json")
        cmd = [sys.executable, os.path.join(BENCH, "bench_tasks.py"), "--repeat", "1" if quick else "3",
               "--json", path] + (["--no-ray"] if no_ray else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                           env=dict(os.environ, QUIVER_BIN=QBIN))
        if p.returncode != 0 or not os.path.exists(path):
            return {"error": (p.stderr or p.stdout)[-800:]}
        with open(path) as f:
            out = json.load(f)
    out["command"] = f"bench/bench_tasks.py --repeat {cmd[3]}" + (" --no-ray" if no_ray else "")
    say("tasks: " + "; ".join(out["markdown"][4:]))
    return out


# Report.

def _load1(text: str) -> float:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return 0.0


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.1f} M"


def report(res: dict, charts: list[str], args) -> str:
    quick = args.quick
    cmd = "make bench QUICK=1" if quick else "make bench"
    head = (f"Machine: {res['machine']}; {res['date']}; "
            f"`{cmd}` (`.venv/bin/python bench/run_all.py{' --quick' if quick else ''}`)")
    L = ["# Benchmark results", "",
         f"Generated by `{cmd}` (bench/run_all.py) on {res['date']}; "
         f"{'**QUICK run: small sizes, one repetition**' if quick else 'full run'}; the suite took "
         f"{res['suite_s'] / 60:.1f} min. Every figure and ratio below was measured in this one run, on this "
         "machine; compare figures only within a run. Node: `bin/quiver` built from the working tree "
         f"`{res['git']}`, with {os.cpu_count()} Python workers. Load average before {res['load_before']}, "
         f"after {res['load_after']}. Raw figures: [charts/results.json](charts/results.json).", "",
         *([f"**The machine was shared with other work during this run** (load average above its "
            f"{os.cpu_count()} cores: {res['load_before']} before, {res['load_after']} after; other processes than this suite's "
            "were using the CPUs): parallel figures are depressed and noisy. Trust ratios whose rounds agree.", ""]
           if max(_load1(res['load_before']), _load1(res['load_after'])) > (os.cpu_count() or 1) else []),
         "Hand-written analysis of earlier runs (Python UDFs, per-task overhead): [NOTES.md](NOTES.md).", ""]

    # 1
    t = res.get("transport")
    L += ["## 1. Transport: `identity` over Flight", "", head, ""]
    if t is None or "error" in t:
        L += [f"Not run: {t.get('error') if t else 'skipped'}", ""]
    else:
        L += [f"Same pyarrow client (`bench_node.exchange`: one DoExchange, a writer thread pipelining "
              f"against the reader) sends {t['batches']} batches of 65,536 int64 rows "
              f"({t['bytes'] / 2**20:.0f} MiB) and reads them back; best of {t['repeat']} interleaved rounds. "
              "The echo server is pyarrow's C++ `FlightServerBase` (bench/flight_echo.py) whose `do_exchange` "
              "writes each batch back, in a subprocess. Loopback limit: one-way bytes/s through a socket pair "
              "from Python on the spot (TCP loopback with TCP_NODELAY, or an AF_UNIX socketpair), one thread "
              "`sendall`-ing 4 MiB buffers, another `recv_into` a 4 MiB buffer, "
              f"{(256 if quick else 1024)} MiB, best of {t['repeat'] + 1}. MB/s below counts the payload one way "
              "(the echo moves it both ways).", "",
              "| server | socket | rows/s | MB/s | vs echo server | vs loopback limit |",
              "| --- | --- | --- | --- | --- | --- |"]
        for tr in ("tcp", "unix"):
            lim = t["limit"][tr]
            for s, label in (("quiver", "Quiver node, native `identity`"), ("echo", "pyarrow C++ echo")):
                f = t["flight"][f"{s}_{tr}"]
                e = t["flight"][f"echo_{tr}"]
                L.append(f"| {label} | {tr} | {fmt_rate(f['rows_per_s'])} | {f['bytes_per_s'] / 1e6:,.0f} | "
                         f"{'**' + format(f['rows_per_s'] / e['rows_per_s'], '.2f') + 'x**' if s == 'quiver' else '1.00x'} | "
                         f"{f['bytes_per_s'] / lim:.2f} |")
            L.append(f"| loopback limit (Python sockets) | {tr} | {fmt_rate(lim / 8)} int64 | {lim / 1e6:,.0f} | | 1.00 |")
        L.append("")
        g = t["go"]
        L += [f"Go client (`{g['command']}`; Go's Flight client against the node's Flight server in-process, "
              "figures as the benchmark reports them):", ""]
        if g["bench"]:
            L += ["| benchmark | rows/s | MB/s | p50 | p99 |", "| --- | --- | --- | --- | --- |"]
            for name, v in g["bench"].items():
                L.append(f"| {name} | {fmt_rate(v['rows/s']) if 'rows/s' in v else ''} | "
                         f"{v.get('MB/s', '') if 'MB/s' in v else ''} | "
                         f"{str(v['p50-us']) + ' us' if 'p50-us' in v else ''} | "
                         f"{str(v['p99-us']) + ' us' if 'p99-us' in v else ''} |")
        if g.get("error"):
            L += ["", f"Go benchmarks failed: `{g['error'][-300:]}`"]
        L += ["", "![transport](charts/transport.png)", ""]

    # 2
    s = res.get("spark")
    L += ["## 2. Spark UDF workloads: plain vs Quiver vs Ray inside the UDF", "", head, ""]
    if s is None or "skipped" in s or "times" not in s:
        L += [f"Not run: {(s or {}).get('skipped') or (s or {}).get('error') or 'skipped'}", ""]
    else:
        tm = s["times"]
        ray_note = (f"Ray {s.get('ray_version')}: `ray.init(num_cpus=2)` in the driver (took {s.get('ray_init_s', 0):.1f} s, "
                    "not counted), and in each UDF call `ray.init(address=\"auto\")` once per Spark Python worker, "
                    "then `ray.get([f.remote(chunk) ...])` of `@ray.remote` tasks: 100 rows per task for the heavy "
                    "UDF, 2 chunks per batch for the others (bench/udf_workloads.py). Ray's idle-worker limits "
                    f"raised (`_system_config={RAY_SYSTEM_CONFIG}`): with the defaults each Spark worker's Ray job "
                    "kills the other's idle workers and tasks wait for fresh worker processes (a QUICK run with "
                    "the defaults took 31 s instead of about 1 s for model scoring). "
                    if "ray" in tm else f"Ray: **not measured**: {s.get('ray_error', 'skipped')}. ")
        L += [f"Spark local[2], Arrow batches of 10,000 rows, every row through the UDF and summed; wall time of "
              f"the query, best of {s['repeat']} rounds (after a warm-up query per variant); the rounds interleave "
              "the variants (Ray's processes are up, idle, during the plain and Quiver runs), load average at "
              f"the start of each round: {'; '.join(s.get('round_loads', []))}. " + ray_note +
              f"Quiver: `@quiver.accelerate` as users get it (adaptive: cheap batches may run in Spark's worker). "
              f"Heavy row = bench_udf's calibrated loop, {s['heavy_n']} iterations = {s['heavy_row_ms']:.2f} ms "
              f"here; partitions {s['heavy_partitions']} (skewed). Model: {s['model']}, pickled to a temp file; "
              "plain and Ray load it once per process (module-level cache), Quiver through a class whose "
              "`__init__` loads it (once per node worker).", "",
              "| workload | rows | plain | Quiver | Ray in UDF | Quiver vs plain | Ray vs plain | results agree |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        rows = {"heavy": s["heavy_rows"], "cheap": s["cheap_rows"], "model": s["model_rows"]}
        labels = {"heavy": "heavy per-row (~1 ms/row), skewed", "cheap": "cheap vectorized `x * 2`",
                  "model": "model scoring (RandomForest)"}
        for w in ("heavy", "cheap", "model"):
            p = tm["plain"][w]
            q = tm["quiver"][w]
            r = tm.get("ray", {}).get(w)
            rb = s["remote_batches"].get("quiver/" + w)
            L.append(f"| {labels[w]} | {rows[w]:,} | {p:.2f} s | {q:.2f} s"
                     f"{f' ({rb} batches on the node)' if rb is not None else ''} | "
                     f"{f'{r:.2f} s' if r is not None else 'n/a'} | **{p / q:.2f}x** | "
                     f"{f'**{p / r:.2f}x**' if r is not None else 'n/a'} | "
                     f"{'yes' if s['agree'][w] else '**NO**'} |")
        if tm.get("quiver_rpt", {}).get("model") is not None:
            q5 = tm["quiver_rpt"]["model"]
            L += ["", f"Model scoring with `@quiver.accelerate(rows_per_task=5000)` (the node cuts each batch into "
                  f"tasks of 5,000 rows instead of the node's own choice): {q5:.2f} s, **{tm['plain']['model'] / q5:.2f}x** "
                  f"plain. A scikit-learn `predict` call has a fixed cost however few rows it gets (measured in "
                  f"this run: 10,000 rows in {s['predict_one_s']:.3f} s as one call, {s['predict_100_s']:.3f} s as "
                  f"100 calls of 100 rows), so small tasks multiply it."]
        L += ["", "Speedup = plain wall time / variant wall time (above 1 is faster). Agreement: the sum of the "
              "UDF's output over all rows is equal across the variants (integers exactly; model scores "
              "within 1e-9 relative, Spark's sum order varies).", "",
              "Each round, in order (seconds): " + "; ".join(
                  f"{v}: " + ", ".join(f"{w} " + "/".join(f"{x:.2f}" for x in ts) for w, ts in d.items())
                  for v, d in s["rounds"].items()), "",
              "![spark](charts/spark.png)", ""]

    # 3
    lt = res.get("loadtest")
    L += ["## 3. Load test: `quiver loadtest`, closed loop", "", head, ""]
    if not lt:
        L += ["Not run.", ""]
    else:
        L += [f"`{lt['command']}` against the node's unix socket; generated 10,000-row batches "
              "(`identity`: 1 int64 column; `haversine_km`: 4 float64 columns). Each worker holds one DoExchange "
              "stream and makes lockstep requests; the load generator shares the machine's cores with the node.", "",
              "| function | concurrency | rows/s | MB/s | batches/s | p50 latency | p99 latency | errors |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in lt["runs"]:
            if "error" in r:
                L.append(f"| {r['function']} | {r['concurrency']} | failed: {r['error'][:100]} | | | | | |")
                continue
            L.append(f"| {r['function']} | {r['concurrency']} | {fmt_rate(r['rows_per_s'])} | {r['mb_per_s']:.0f} | "
                     f"{r['batches_per_s']:,.0f} | {r['latency_us']['p50']:,} us | {r['latency_us']['p99']:,} us | "
                     f"{r['failed']} |")
        L += ["", "![loadtest](charts/loadtest.png)", ""]

    k = res.get("tasks")
    L += ["## 4. Task API and objects: Quiver vs Ray, as Ray's own microbenchmark measures them", ""]
    if k is None or "error" in k:
        L += [f"Not run: {k.get('error') if k else 'skipped'}", ""]
    else:
        L += [f"`{k['command']}`: each system in its own process tree on this machine, one after the other "
              "in this run; Ray's figures are ray_perf.py's measurements (tasks sync and async, put and get "
              "calls, a 100 MB put) taken with the same code for both.", "", *k["markdown"], ""]

    L += ["## What this run did not cover", ""]
    missing = []
    if s and "ray" not in s.get("times", {"ray": 1}):
        missing.append(f"Ray: {s.get('ray_error')}")
    if not charts:
        missing.append(f"charts: {res.get('charts_error', 'not drawn')}")
    missing += res.get("errors", [])
    L += [f"- {m}" for m in missing] or ["- Nothing was skipped: all four sections ran."]
    L += ["- Not part of this suite (run by hand): `bench/bench_node.py` (haversine_km against numpy and a "
          "per-row loop, node memory under load), `bench/bench_udf.py` (Client.call, multiprocessing.Pool "
          "limit, per-task overhead; see NOTES.md), and the Go benchmarks of `./udf/`.", ""]
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray variant")
    ap.add_argument("--no-spark", action="store_true", help="skip section 2")
    ap.add_argument("--only", choices=["transport", "spark", "loadtest", "tasks"], action="append")
    ap.add_argument("--out", default=os.path.join(BENCH, "RESULTS.md"))
    args = ap.parse_args()
    sections = args.only or ["transport", "spark", "loadtest", "tasks"]
    if args.no_spark and "spark" in sections:
        sections.remove("spark")
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_line(),
           "load_before": bench_udf.load(), "quick": args.quick, "errors": []}
    try:
        res["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip() or "?"
    except OSError:
        res["git"] = "?"
    node = Node()
    say(f"node up: {node.address}, {node.tcp}")
    try:
        for name, fn in (("transport", lambda: section_transport(node, args.quick)),
                         ("spark", lambda: section_spark(node, args.quick, args.no_ray)),
                         ("loadtest", lambda: section_loadtest(node, args.quick)),
                         ("tasks", lambda: section_tasks(args.quick, args.no_ray))):
            if name not in sections:
                continue
            say(f"== {name}")
            try:
                res[name] = fn()
            except Exception as e:
                traceback.print_exc()
                res[name] = {"error": f"{type(e).__name__}: {e}"}
                res["errors"].append(f"{name}: {type(e).__name__}: {e}")
    finally:
        node.stop()
    res["load_after"] = bench_udf.load()
    res["suite_s"] = time.perf_counter() - T0
    chart_dir = os.path.join(BENCH, "charts")
    os.makedirs(chart_dir, exist_ok=True)
    charts = []
    try:
        import charts as C
        charts = C.draw_all(res, chart_dir)
    except Exception as e:
        traceback.print_exc()
        res["charts_error"] = f"{type(e).__name__}: {e}"
    with open(os.path.join(chart_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    text = report(res, charts, args)
    with open(args.out, "w") as f:
        f.write(text)
    say(f"wrote {args.out} and {len(charts)} charts; suite {res['suite_s']:.0f} s")
    bad = [w for w, ok in res.get("spark", {}).get("agree", {}).items() if not ok]
    if bad:
        say(f"RESULTS DIFFER: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
