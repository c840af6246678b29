"""I/O-bound row UDF: each row waits 20 ms on a local HTTP service; plain Spark vs Quiver concurrency.

Spark local[2]; a classic ``@udf`` that GETs http://127.0.0.1:PORT/N from a
service of our own, started on loopback in a process of its own (asyncio, so that
the service itself is not what limits many requests at once), which waits 20 ms
per request and answers 3N+1. Each thread that calls the UDF keeps one HTTP/1.1
connection open from row to row, as a ``requests.Session`` would (a new
connection and urllib's machinery per row cost about 0.5 ms of CPU a request,
which on two cores was most of the accelerated run). Timed:

    plain        the plain @udf in Spark (one row at a time per Spark task)
    quiver       quiver.accelerate(the @udf, concurrency=32): 32 rows in flight
                 per node worker; best of --repeat runs
    ray          Ray in the UDF (a pandas UDF submitting one ray.remote task per
                 row), when Ray is installed here; else said so

Goal: quiver >= 20x plain. Every run's sum is checked against the expected sum.
Prints Markdown table rows and one JSON line; progress goes to stderr.

    .venv/bin/python bench/bench_io.py [--quick] [--rows N] [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import asyncio
import multiprocessing

import pandas as pd  # the Ray variant's type hints name it

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)

from bench_udf import (  # noqa: E402
    QUIVER_PATH, Node, add_quiver_bin, command_line, load, machine, say, spark_sum, start_spark,
)

import quiver  # noqa: E402

DELAY_S = 0.02


async def _answer(reader, writer, delay_s):
    """HTTP/1.1 requests GET /N on one kept-alive connection: each waits DELAY_S and is answered 3N+1."""
    try:
        while line := await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            n = int(line.split()[1].strip(b"/"))
            await asyncio.sleep(delay_s)
            body = str(3 * n + 1).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _service(port_out, delay_s: float) -> None:
    async def main():
        server = await asyncio.start_server(lambda r, w: _answer(r, w, delay_s), "127.0.0.1", 0, backlog=4096)
        port_out.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()
    asyncio.run(main())


def serve(delay_s: float) -> tuple[multiprocessing.Process, str]:
    """The slow service, in a process of its own; its base URL."""
    ctx = multiprocessing.get_context("spawn")
    port = ctx.Queue()
    proc = ctx.Process(target=_service, args=(port, delay_s), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{port.get(timeout=30)}"


def fetch_fn(base: str):
    """GET base/N over a kept-alive connection of the calling thread's own, as a
    requests.Session would: a thread reuses its connection from row to row."""
    host, port = base.removeprefix("http://").split(":")

    def fetch(n):
        import http.client
        import threading
        me = threading.current_thread()
        conn = getattr(me, "bench_io_conn", None)
        if conn is None:
            conn = me.bench_io_conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", f"/{n}")
        r = conn.getresponse()
        if r.status != 200:
            raise RuntimeError(f"GET /{n}: HTTP {r.status}")
        return int(r.read())
    return fetch


def ray_udf(base: str, concurrency: int):
    """Ray in the UDF, or None and why not."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return None, "Ray is not installed in this environment (bench/requirements.txt lists it)"
    from pyspark.sql.functions import pandas_udf
    fetch = fetch_fn(base)

    def in_ray(x: pd.Series) -> pd.Series:
        import ray
        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        remote = ray.remote(num_cpus=1 / concurrency)(fetch)
        return pd.Series(ray.get([remote.remote(int(v)) for v in x.tolist()]), dtype="int64")
    return pandas_udf(in_ray, "long"), None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="400 rows")
    ap.add_argument("--rows", type=int, help="rows (default 2,000; quick 400)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the accelerated query, best kept (default 3; plain and Ray run once: "
                         "their seconds of waiting dwarf the noise)")
    ap.add_argument("--delay-ms", type=float, default=DELAY_S * 1e3,
                    help="the service's wait per request (default 20; 0 shows the overheads alone)")
    add_quiver_bin(ap)
    args = ap.parse_args()
    rows = args.rows or (400 if args.quick else 2_000)
    command = command_line("bench_io.py")
    load_before = load()
    delay_s = args.delay_ms / 1e3
    server, base = serve(delay_s)
    node = Node(args.quiver_bin, pythonpath=(QUIVER_PATH, HERE))
    want = sum(3 * i + 1 for i in range(rows))
    times, ok, ray_note = {}, {}, None
    try:
        spark, why_not = start_spark(node)
        if spark is None:
            sys.exit(f"bench_io: Spark cannot start: {why_not}")
        from pyspark.sql.functions import udf
        client = quiver.connect(node.address)
        node.wait_workers(client, os.cpu_count() or 1)
        plain = udf(fetch_fn(base), "long")
        fast = quiver.accelerate(plain, concurrency=args.concurrency, fallback="error")
        ray_f, ray_note = ray_udf(base, args.concurrency)
        df = spark.range(0, rows, numPartitions=2).cache()
        df.count()
        warm = spark.range(0, 64, numPartitions=2)
        runs = [("plain", plain), ("quiver", fast)] + ([("ray", ray_f)] if ray_f is not None else [])
        for name, f in runs:
            spark_sum(warm, f)  # Spark's Python workers up; registered on the node
            for _ in range(args.repeat if name == "quiver" else 1):
                t, s = spark_sum(df, f)
                times[name], ok[name] = min(t, times.get(name, t)), ok.get(name, True) and s == want
                say(f"{name}: {t:.2f} s ({'ok' if s == want else 'WRONG SUM'})")
        client.close()
        spark.stop()
    finally:
        node.stop()
        server.kill()
    speedup = times["plain"] / times["quiver"]
    checks = "results identical" if all(ok.values()) else "MISMATCH: " + ", ".join(k for k, v in ok.items() if not v)
    print(f"Machine: {machine()}; load average {load_before} before, {load()} after; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `{command}`; {checks}.")
    print()
    print("| measurement | figure | goal |")
    print("| --- | --- | --- |")
    print(f"| Spark local[2], plain `@udf`, {rows:,} rows, each a {args.delay_ms:g} ms HTTP call | "
          f"{times['plain']:.2f} s | |")
    print(f"| `quiver.accelerate(@udf, concurrency={args.concurrency})`, best of {args.repeat} | "
          f"{times['quiver']:.2f} s, "
          f"**{speedup:.1f}x** plain | >= 20x: {'met' if speedup >= 20 else 'not met'} |")
    if "ray" in times:
        print(f"| Ray in the UDF (a task per row) | {times['ray']:.2f} s, {times['plain'] / times['ray']:.1f}x plain | |")
    else:
        print(f"| Ray in the UDF | not measured: {ray_note} | |")
    print(json.dumps({"bench": "io", "rows": rows, "delay_ms": args.delay_ms, "concurrency": args.concurrency,
                      "seconds": {k: round(v, 3) for k, v in times.items()}, "speedup": round(speedup, 2),
                      "ray": ray_note or "measured", "results_identical": all(ok.values())}))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
