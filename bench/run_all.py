"""The whole benchmark suite in one run: `make bench` (or `make bench QUICK=1`).

Runs, on this machine, side by side:
  1. transport: Quiver's native `identity` over Flight against a pyarrow (C++) Flight echo
     server (bench/flight_echo.py), TCP and unix socket, same pyarrow client and batches,
     next to the loopback limit measured on the spot; plus the Go benchmarks of ./flight/.
  2. Spark UDF workloads: plain pandas UDF vs @quiver.accelerate vs Ray inside the UDF,
     for a heavy per-row UDF on skewed data, a cheap vectorized UDF and model scoring (balanced and skewed).
  3. `quiver loadtest` at concurrency 1, 8 and 64 against `identity` and `haversine_km`.
  4-6. the task API, the UDF forms, the cluster (section_forms.py, section_cluster.py).
  7. deploying: setup_cluster vs Ray on Spark's setup_ray_cluster, and the wheel (section_deploy.py).
and rewrites bench/RESULTS.md (tables of ratios from this run) and bench/charts/*.png.
Progress goes to stderr; the raw figures to bench/charts/results.json (charts/ beside --out).

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
from report import report  # noqa: E402
from section_cluster import section_cluster  # noqa: E402
from section_deploy import section_deploy  # noqa: E402
from section_forms import section_forms  # noqa: E402
from udf_workloads import RAY_SYSTEM_CONFIG  # noqa: E402

import quiver  # noqa: E402

QBIN = bench_udf.QUIVER_BIN
T0 = time.perf_counter()


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


def model_frame(spark, rows: int, skewed: bool = False):
    """rows of deterministic model features, in 2 even partitions or, skewed, 90% of them in one of 4."""
    from pyspark.sql import functions as F
    df = skewed_frame(spark, rows) if skewed else spark.range(0, rows, numPartitions=2)
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
        mdf_skewed = model_frame(spark, model_rows, skewed=True)
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
                "model": (mdf, lambda u: u(*cols), mdf_small),
                "model_skewed": (mdf_skewed, lambda u: u(*cols), mdf_small)}
        for variant in ("plain", "quiver", "ray"):  # the same UDFs on the skewed frame
            if variant in udfs:
                udfs[variant]["model_skewed"] = udfs[variant]["model"]
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
            if w.startswith("model"):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray variant")
    ap.add_argument("--no-spark", action="store_true", help="skip sections 2, 5 and 7 (Spark)")
    ap.add_argument("--only", choices=["transport", "spark", "loadtest", "tasks", "forms", "cluster", "deploy"], action="append")
    ap.add_argument("--out", default=os.path.join(BENCH, "RESULTS.md"))
    args = ap.parse_args()
    sections = args.only or ["transport", "spark", "loadtest", "tasks", "forms", "cluster", "deploy"]
    if args.no_spark:
        sections = [s for s in sections if s not in ("spark", "forms", "deploy")]
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
                         ("tasks", lambda: section_tasks(args.quick, args.no_ray)),
                         ("forms", lambda: section_forms(args.quick, QBIN)),
                         ("cluster", lambda: section_cluster(args.quick, QBIN)),
                         ("deploy", lambda: section_deploy(args.quick, QBIN, args.no_ray))):
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
    # Charts and raw figures beside the report: a run written elsewhere (--out) leaves the
    # recorded run's bench/charts as they are.
    chart_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "charts")
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
