"""Quiver's task API against Ray, side by side in one run: tasks and objects from driver-side Python.

Measures, for each system on the same machine in the same run:
  - async task throughput: 1,000 empty tasks submitted, then all gathered (tasks/s);
  - Python per-task overhead: one call of 20,000 one-row identity tasks (Quiver only);
  - sync round trip: one empty task submitted and its result awaited, again and again (us);
  - small objects, as ray_perf.py does: put calls (1,000 puts of a ~100-byte object, timed
    until the node has confirmed every one), get calls (the same object read again and
    again), and put + get pairs back to back;
  - a 100 MB Arrow table: put, then get (GB/s each, and for the pair).
Each figure is the best of --repeat runs. Prints a Markdown table.

Quiver: its own node (bin/quiver, a private run directory, Python workers on this
interpreter, one per core), reached over its unix socket as a client on the node's
host reaches it: the session runs over the node's lane (docs/protocol.md, "Lane"),
a task awaited alone goes to a leased worker, and Client.get of a small object read
before is served from this process while the node's generation table says it is
still published. The same measurements are then taken over a Flight session
(QUIVER_LANE=0), as a client on another host would talk to the node. Ray: ray.init(num_cpus=<cores>) on this machine, tasks
with num_cpus=1. Ray is a benchmark-only dependency (bench/requirements.txt);
--install-ray pip-installs the pinned version into this interpreter's environment
first. Without Ray the Ray column says so.

    .venv/bin/python bench/bench_tasks.py [--install-ray] [--no-ray] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
try:
    import quiver
except ImportError:  # a checkout without `pip install -e pyclient`
    sys.path.insert(0, os.path.join(ROOT, "pyclient"))
    import quiver

ASYNC_TASKS = 1000
SYNC_TASKS = 500
SMALL_OBJECTS = 1000
TABLE_BYTES = 100_000_000


def noop(i):
    return i


OVERHEAD_TASKS = 20_000


def ident_series(x):
    return x


def ident_arrow(a):
    return a


def per_task_overhead(client, repeat: int) -> dict:
    """Microseconds per task of one call of OVERHEAD_TASKS rows cut into one-row tasks
    (rows_per_task=1) of an identity function, pyarrow and pandas kinds: what a task
    costs beyond its function."""
    big = pa.record_batch([pa.array(range(OVERHEAD_TASKS), pa.int64())], names=["x"])
    out = {}
    for key, fn, kw in (("overhead_arrow_us", ident_arrow, {"kind": "arrow"}),
                        ("overhead_series_us", ident_series, {})):
        name = client.register(fn, name="bench_" + key, returns=pa.int64(), **kw)
        client.call(name, big.slice(0, 16), rows_per_task=1)  # loaded in the workers, its cost measured

        def run():
            start = time.perf_counter()
            res = client.call(name, big, rows_per_task=1)
            t = time.perf_counter() - start
            assert res.equals(big.column(0)), f"{name} changed its input"
            return t
        out[key] = best(repeat, run) / OVERHEAD_TASKS * 1e6
    return out


def install_ray() -> None:
    pin = "ray"
    with open(os.path.join(BENCH, "requirements.txt")) as f:
        for line in f:
            if re.match(r"^ray\b", line.strip()):
                pin = line.split("#")[0].strip()
    print(f"installing {pin} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", pin], check=True)


def start_node(run_dir: str):
    binary = os.environ.get("QUIVER_BIN") or os.path.join(ROOT, "bin", "quiver")
    proc = subprocess.Popen([binary, "start", "--block", "--listen", "127.0.0.1:0", "--run-dir", run_dir,
                             "--socket", os.path.join(run_dir, "q.sock"), "--python", sys.executable,
                             "--log-level", "warn"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("quiver ready"):
        proc.kill()
        sys.exit(f"the node did not start: {line!r}")
    return proc, "grpc+unix://" + line.split("unix=")[1].split()[0]


def best(repeat: int, fn):
    """The best (smallest) of repeat timings of fn(), which returns seconds."""
    return min(fn() for _ in range(repeat))


def table_of(nbytes: int) -> pa.Table:
    rows = nbytes // 8 // 4
    base = np.arange(rows, dtype=np.int64)
    return pa.table({"a": base, "b": base * 3, "c": base.astype(np.float64), "d": -base})


def measure(api, repeat: int) -> dict:
    """The measurements, the same code for both systems; api adapts each one."""
    out = {}

    def async_run():
        start = time.perf_counter()
        assert api.run_many(ASYNC_TASKS) == list(range(ASYNC_TASKS))
        return time.perf_counter() - start
    out["async"] = ASYNC_TASKS / best(repeat, async_run)

    def sync_run():
        lat = []
        for i in range(SYNC_TASKS):
            start = time.perf_counter()
            api.run_one(i)
            lat.append(time.perf_counter() - start)
        return statistics.median(lat)
    out["sync_us"] = best(repeat, sync_run) * 1e6

    small = {"k": list(range(10))}

    def put_run():
        start = time.perf_counter()
        refs = [api.put(small) for _ in range(SMALL_OBJECTS)]
        api.confirm(refs)
        elapsed = time.perf_counter() - start
        api.release(refs)
        return elapsed
    out["put"] = SMALL_OBJECTS / best(repeat, put_run)

    one = api.put(small)
    for key, get in (("get", api.get), ("get_cached", api.get_cached)):
        get(one)  # a cached read fills its cache here

        def get_run():
            start = time.perf_counter()
            for _ in range(SMALL_OBJECTS):
                get(one)
            return time.perf_counter() - start
        out[key] = SMALL_OBJECTS / best(repeat, get_run)
    api.release([one])

    def small_run():
        refs = []
        start = time.perf_counter()
        for _ in range(SMALL_OBJECTS):
            ref = api.put(small)
            api.get(ref)
            refs.append(ref)
        elapsed = time.perf_counter() - start
        api.release(refs)
        return elapsed
    out["small"] = SMALL_OBJECTS / best(repeat, small_run)

    table = table_of(TABLE_BYTES)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ref = api.put(table)
        put_s = time.perf_counter() - start
        got = api.get(ref)
        get_s = time.perf_counter() - start - put_s
        assert got.num_rows == table.num_rows
        api.release([ref])
        del ref, got
        times.append((put_s, get_s))
    out.update(_table_figures(table.nbytes, times))
    return out


# Quiver.

class QuiverAPI:
    """Quiver's task API: a put is confirmed when its ref's wait() returns;
    Client.get reads the node (over the lane: a copy kept while its stamp
    holds), quiver.get this process's cache."""

    def __init__(self, client):
        self.client = client

    def run_many(self, n):
        futs = [self.client.submit(noop, i) for i in range(n)]
        self.client.wait(futs)
        return [f.result() for f in futs]

    def run_one(self, i):
        return self.client.submit(noop, i).result()

    def put(self, obj):
        return self.client.put(obj)

    def confirm(self, refs):
        for ref in refs:
            ref.wait()  # every put confirmed by the node

    def get(self, ref):
        return self.client.get(ref)

    def get_cached(self, ref):
        return quiver.get(ref)

    def release(self, refs):
        self.client.release(refs)


def bench_quiver(address: str, repeat: int, lane: bool = True) -> dict:
    os.environ["QUIVER_LANE"] = "1" if lane else "0"  # read when the client opens its session
    client = quiver.connect(address)
    wait_for_workers(client)
    client.submit(noop, 0).result()  # registered, workers warm
    try:
        out = measure(QuiverAPI(client), repeat)
        if lane:
            out.update(per_task_overhead(client, repeat))
        return out
    finally:
        client.close()


def wait_for_workers(client, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not sum(n.get("workers_starting", 0) for n in client.status()["nodes"]):
            return
        time.sleep(0.1)


# Ray.

class RayAPI:
    """Ray's: ray.put returns once the object is stored, ray.get is its one read
    (the "cached" row repeats it), and refs are freed by dropping them."""

    def __init__(self, ray, remote_noop):
        self.ray, self.remote_noop = ray, remote_noop

    def run_many(self, n):
        return self.ray.get([self.remote_noop.remote(i) for i in range(n)])

    def run_one(self, i):
        return self.ray.get(self.remote_noop.remote(i))

    def put(self, obj):
        return self.ray.put(obj)

    def confirm(self, refs):
        pass

    def get(self, ref):
        return self.ray.get(ref)

    get_cached = get

    def release(self, refs):
        refs.clear()


def bench_ray(repeat: int) -> dict:
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, object_store_memory=1 << 30)
    try:
        remote_noop = ray.remote(num_cpus=1)(noop)
        ray.get([remote_noop.remote(i) for i in range(os.cpu_count() * 4)])  # workers warm
        return {"version": ray.__version__, **measure(RayAPI(ray, remote_noop), repeat)}
    finally:
        ray.shutdown()


def _table_figures(nbytes: int, times: list[tuple[float, float]]) -> dict:
    put_s = min(p for p, _ in times)
    get_s = min(g for _, g in times)
    pair_s = min(p + g for p, g in times)
    return {"put_gbs": nbytes / put_s / 1e9, "get_gbs": nbytes / get_s / 1e9,
            "pair_gbs": nbytes / pair_s / 1e9}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--install-ray", action="store_true", help="pip install the pinned ray first")
    ap.add_argument("--no-ray", action="store_true", help="measure Quiver only")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timing, best kept (default 3)")
    ap.add_argument("--json", help="also write the figures and the Markdown table to this file")
    args = ap.parse_args()
    if args.install_ray and not args.no_ray:
        install_ray()

    with tempfile.TemporaryDirectory(prefix="qbt-") as run_dir:
        proc, address = start_node(run_dir)
        try:
            print("quiver ...", file=sys.stderr, flush=True)
            q = bench_quiver(address, args.repeat)
            print("quiver over a Flight session ...", file=sys.stderr, flush=True)
            qf = bench_quiver(address, args.repeat, lane=False)
        finally:
            proc.terminate()
            proc.wait(60)

    r, ray_note = None, ""
    if args.no_ray:
        ray_note = "not run (--no-ray)"
    else:
        try:
            import ray  # noqa: F401
        except ImportError:
            ray_note = "not installed (run with --install-ray)"
        else:
            print("ray ...", file=sys.stderr, flush=True)
            r = bench_ray(args.repeat)

    rows = [
        ("async tasks: 1,000 submitted, then gathered", "async", "{:,.0f} tasks/s"),
        ("sync round trip: submit one empty task, await it (median)", "sync_us", "{:,.0f} us"),
        ("small objects: put calls (~100-byte object, all confirmed)", "put", "{:,.0f} puts/s"),
        ("small objects: get calls (the same object again and again: Client.get; over the lane, "
         "a copy kept while the node's generation table says it is published)", "get", "{:,.0f} gets/s"),
        ("small objects: the same with quiver.get (cached per process; Ray: ray.get again)", "get_cached",
         "{:,.0f} gets/s"),
        ("small objects: put + get of a ~100-byte object, sequential", "small", "{:,.0f} pairs/s"),
        (f"{TABLE_BYTES // 1_000_000} MB Arrow table: put", "put_gbs", "{:.2f} GB/s"),
        (f"{TABLE_BYTES // 1_000_000} MB Arrow table: get", "get_gbs", "{:.2f} GB/s"),
        (f"{TABLE_BYTES // 1_000_000} MB Arrow table: put + get", "pair_gbs", "{:.2f} GB/s"),
    ]
    ray_head = f"Ray {r['version']}" if r else "Ray"
    lines = [f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
             f"pyarrow {pa.__version__}; {time.strftime('%Y-%m-%d %H:%M')}; best of {args.repeat}; "
             f"Quiver node with {os.cpu_count()} Python workers, Ray with num_cpus={os.cpu_count()}. "
             "Quiver: a client on the node's unix socket (the node's lane, worker leases, kept gets); "
             "over a Flight session: the same with QUIVER_LANE=0, as from another host. "
             "Quiver / Ray compares the first.", "",
             f"| measurement | Quiver | Quiver over a Flight session | {ray_head} | Quiver / Ray |",
             "| --- | --- | --- | --- | --- |"]
    for label, key, fmt in rows:
        rv = fmt.format(r[key]) if r else ray_note
        if r:
            ratio = (r[key] / q[key]) if key == "sync_us" else (q[key] / r[key])
            ratio_s = f"{ratio:.2f}x" + (" (lower latency)" if key == "sync_us" and ratio > 1 else "")
        else:
            ratio_s = ""
        lines.append(f"| {label} | {fmt.format(q[key])} | {fmt.format(qf[key])} | {rv} | {ratio_s} |")
    lines += ["", f"Python per-task overhead: one `Client.call` of {OVERHEAD_TASKS:,} rows with "
              f"`rows_per_task=1` ({OVERHEAD_TASKS:,} one-row tasks of an identity function), wall time "
              f"per task, best of {args.repeat}; Quiver only (Ray has no call that cuts a batch into tasks).", "",
              "| function | us per task | goal |", "| --- | --- | --- |"]
    for key, label in (("overhead_arrow_us", "pyarrow identity (`kind=\"arrow\"`)"),
                       ("overhead_series_us", "pandas Series identity")):
        lines.append(f"| {label} | {q[key]:.1f} | <= 50 us: {'met' if q[key] <= 50 else 'not met'} |")
    print("\n" + "\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quiver": q, "quiver_flight": qf, "ray": r, "ray_note": ray_note, "markdown": lines}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
