"""What --metrics costs: identity throughput on a node serving metrics,
scraped every second, against a node without, in alternating rounds of one
run. Two loads: streams of many batches (quiver loadtest) and many short
calls (one DoExchange of one batch each, as pyarrow sends them).

    .venv/bin/python bench/metrics_overhead.py [--rounds 3] [--seconds 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

import pyarrow as pa
import pyarrow.flight as fl

BIN = os.environ.get("QUIVER_BIN", "bin/quiver")


def start(run_dir, metrics):
    args = [BIN, "start", "--block", "--run-dir", run_dir, "--listen", "127.0.0.1:0", "--socket", "none",
            "--gossip", "none", "--workers", "-1"]
    if metrics:
        args += ["--metrics", "127.0.0.1:0"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    fields = dict(f.split("=", 1) for f in line.split()[2:])
    return p, fields["tcp"], fields.get("metrics")


def streams(tcp, seconds):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([BIN, "loadtest", "--target", "grpc://" + tcp, "--function", "identity",
                        "--generate", "rows=10000,cols=int64:1", "--concurrency", "2",
                        "--duration", f"{seconds}s", "--json", out.name],
                       check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))["rows_per_s"]


def short_calls(tcp, seconds):
    batch = pa.record_batch([pa.array(range(1000), pa.int64())], names=["x"])
    done = [0, 0]

    def loop(i):
        c = fl.connect("grpc://" + tcp)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w, r = c.do_exchange(fl.FlightDescriptor.for_path("identity"))
            w.begin(batch.schema)
            w.write_batch(batch)
            w.done_writing()
            r.read_all()
            w.close()
            done[i] += 1
        c.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return sum(done) / seconds


def scrape(addr, stop):
    while not stop.wait(1.0):
        for path in ("/metrics", "/api/status"):
            urllib.request.urlopen("http://" + addr + path).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        off, off_tcp, _ = start(d1, False)
        on, on_tcp, on_metrics = start(d2, True)
        stop = threading.Event()
        threading.Thread(target=scrape, args=(on_metrics, stop), daemon=True).start()
        res = {"streams": {"off": [], "on": []}, "short calls": {"off": [], "on": []}}
        try:
            for i in range(a.rounds):
                for name, fn in (("streams", streams), ("short calls", short_calls)):
                    # Which goes first alternates: a drift in the machine's load hits both.
                    order = (("off", off_tcp), ("on", on_tcp)) if i % 2 == 0 else (("on", on_tcp), ("off", off_tcp))
                    for which, tcp in order:
                        res[name][which].append(fn(tcp, a.seconds))
        finally:
            stop.set()
            off.terminate()
            on.terminate()
            off.wait()
            on.wait()
    for name, unit in (("streams", "rows/s"), ("short calls", "calls/s")):
        off_m, on_m = statistics.median(res[name]["off"]), statistics.median(res[name]["on"])
        print(f"{name}: off {off_m:,.0f} {unit}, on {on_m:,.0f} {unit} (scraped every 1 s): "
              f"{on_m / off_m:.3f}x  rounds off={[round(x) for x in res[name]['off']]} on={[round(x) for x in res[name]['on']]}")


if __name__ == "__main__":
    main()
