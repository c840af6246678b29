"""Node benchmarks from Python: built-in throughput against numpy and a per-row
loop, 1-row round-trip latency, and the node's memory idle and under load.

Starts its own node (bin/quiver) on a private run directory and prints a
Markdown table; `make bench` runs it. Figures are for side-by-side comparison
in one run, not absolute claims.
"""

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as fl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_node(rundir):
    proc = subprocess.Popen(
        [os.path.join(ROOT, "bin", "quiver"), "start", "--block", "--listen", "127.0.0.1:0",
         "--run-dir", rundir, "--log-level", "warn", "--python", sys.executable],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("quiver ready"):
        proc.kill()
        sys.exit(f"node did not start: {line!r}")
    sock = line.split("unix=")[1].split()[0]
    return proc, "grpc+unix://" + sock


def rss(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def exchange(client, name, batches, opts=None):
    """Streams batches over one DoExchange, writing from a second thread so
    that reading and writing overlap, and returns the output batches."""
    w, r = client.do_exchange(fl.FlightDescriptor.for_path(name), options=opts)
    failed = []

    def write():
        try:
            w.begin(batches[0].schema)
            for b in batches:
                w.write_batch(b)
            w.done_writing()
        except Exception as e:  # surfaces through the reader too
            failed.append(e)

    t = threading.Thread(target=write)
    t.start()
    out = [r.read_chunk().data for _ in batches]
    t.join()
    w.close()
    if failed:
        raise failed[0]
    return out


def haversine_numpy(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


def haversine_row(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(h, 1.0)))


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_haversine(client, rows, repeat):
    rng = np.random.default_rng(1)
    cols = [rng.uniform(-90, 90, rows), rng.uniform(-180, 180, rows),
            rng.uniform(-90, 90, rows), rng.uniform(-180, 180, rows)]
    table = pa.table(cols, names=["lat1", "lon1", "lat2", "lon2"])
    batches = table.to_batches(max_chunksize=65536)
    series = [pa.array(c).to_pandas() for c in cols]

    t_quiver = best(lambda: exchange(client, "haversine_km", batches), repeat)
    t_numpy = best(lambda: haversine_numpy(*series), repeat)
    loop_rows = min(rows, 500_000)
    sub = [c[:loop_rows].tolist() for c in cols]
    t_loop = best(lambda: [haversine_row(*r) for r in zip(*sub)], 1) * rows / loop_rows

    got = pa.concat_arrays([b.column(0) for b in exchange(client, "haversine_km", batches[:2])])
    want = haversine_numpy(*[c[:len(got)] for c in cols])
    assert np.allclose(got.to_numpy(), want, rtol=1e-12), "haversine_km disagrees with numpy"
    return [
        ("haversine_km, Quiver (Flight, unix socket, 64k-row batches)", rows / t_quiver, 1.0),
        ("haversine_km, numpy-vectorized pandas UDF body", rows / t_numpy, t_numpy / t_quiver),
        (f"haversine_km, per-row Python loop (timed on {loop_rows:,} rows)", rows / t_loop, t_loop / t_quiver),
    ]


def bench_identity(client, batches_n, repeat):
    b = pa.record_batch([pa.array(np.arange(65536, dtype=np.int64))], names=["x"])
    t = best(lambda: exchange(client, "identity", [b] * batches_n), repeat)
    return batches_n * 65536 / t, batches_n * b.nbytes / t


def bench_roundtrip(client, n):
    b = pa.record_batch([pa.array([1], pa.int64())], names=["x"])
    w, r = client.do_exchange(fl.FlightDescriptor.for_path("identity"))
    lat = []
    with w:
        w.begin(b.schema)
        for i in range(n + 200):
            t = time.perf_counter()
            w.write_batch(b)
            r.read_chunk()
            if i >= 200:
                lat.append(time.perf_counter() - t)
        w.done_writing()
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


def bench_memory(client, pid, calls, batches_per_call, rows):
    b = pa.record_batch([pa.array(np.arange(rows, dtype=np.int64))], names=["x"])
    errors = []

    def one():
        try:
            out = exchange(client, "identity", [b] * batches_per_call)
            assert sum(o.num_rows for o in out) == rows * batches_per_call
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return rss(pid, "VmHWM"), b.nbytes


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    args = ap.parse_args()
    rows = 1_000_000 if args.quick else 10_000_000
    repeat = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as rundir:
        os.chmod(rundir, 0o700)
        proc, addr = start_node(rundir)
        try:
            client = fl.connect(addr)
            time.sleep(0.5)
            idle = rss(proc.pid)
            hav = bench_haversine(client, rows, repeat)
            id_rows, id_bytes = bench_identity(client, 50 if args.quick else 500, repeat)
            p50, p99 = bench_roundtrip(client, 1000 if args.quick else 20000)
            calls, big_rows = (4, 1 << 20) if args.quick else (32, 8 << 20)
            peaks = []
            for per_call in (2, 4):  # twice the input: the peak must not follow it
                peak, batch_bytes = bench_memory(client, proc.pid, calls, per_call, big_rows)
                peaks.append((per_call, peak))
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
          f"pyarrow {pa.__version__}; {time.strftime('%Y-%m-%d')}; `python bench/bench_node.py"
          f"{' --quick' if args.quick else ''}`\n")
    print("| measurement | figure | ratio |\n| --- | --- | --- |")
    for name, rps, ratio in hav:
        print(f"| {name} | {rps / 1e6:.2f} M rows/s | Quiver {ratio:.2f}x as fast |")
    print(f"| identity, pyarrow client, unix socket, 64k-row int64 batches, lockstep | "
          f"{id_rows / 1e6:.1f} M rows/s, {id_bytes / 1e6:.0f} MB/s | |")
    print(f"| 1-row round trip, pyarrow client, unix socket | p50 {p50:.0f} us, p99 {p99:.0f} us | |")
    print(f"| node RSS idle | {idle / 2**20:.1f} MiB | |")
    for per_call, peak in peaks:
        print(f"| node peak RSS so far, {calls} concurrent calls x {per_call} batches of {batch_bytes / 2**20:.0f} MiB "
              f"({calls * per_call * batch_bytes / 2**30:.1f} GiB in) | {peak / 2**20:.0f} MiB | "
              f"{peak / (calls * batch_bytes):.2f}x one batch per call |")


if __name__ == "__main__":
    main()
