"""Cluster benchmark: spillback efficiency of one call on node 1 of N = 1..4
nodes on this host, one Python worker each, over tasks that sleep (so that
the machine's cores do not limit the speedup), plus the time from kill -9 of
a peer to its tasks running again elsewhere.

Starts its own nodes (bin/quiver) with --gossip/--join and prints Markdown.
Figures are for side-by-side comparison in one run, not absolute claims.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import pyarrow as pa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "pyclient"))
import quiver  # noqa: E402

TOKEN = "bench-cluster-token"


def start(tmp, i, join=None):
    d = os.path.join(tmp, f"n{i}")
    os.makedirs(d, mode=0o700)
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write(TOKEN)
    args = [os.path.join(ROOT, "bin", "quiver"), "start", "--block", "--listen", "127.0.0.1:0",
            "--socket", "none", "--run-dir", d, "--workers", "1", "--token-file", tok,
            "--gossip", "127.0.0.1:0", "--log-level", "error", "--python", sys.executable]
    if join:
        args += ["--join", join]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    f = p.stdout.readline().split()
    if f[:2] != ["quiver", "ready"]:
        p.kill()
        sys.exit(f"node did not start: {f}")
    fields = dict(x.split("=", 1) for x in f[2:])
    return p, "grpc://" + fields["tcp"], fields["gossip"]


def alive_peers(client):
    return sum(1 for p in client.status().get("peers", []) if p["state"] == "alive")


def slow(x):
    import time as t
    t.sleep(0.02 * len(x))
    return x * 3


def run_cluster(n, rows, per_task):
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [start(tmp, 0)]
        for i in range(1, n):
            nodes.append(start(tmp, i, join=nodes[0][2]))
        try:
            c = quiver.connect(nodes[0][1], token=TOKEN)
            deadline = time.time() + 30
            while alive_peers(c) != n - 1:
                if time.time() > deadline:
                    sys.exit("the cluster did not form")
                time.sleep(0.05)
            c.register(slow, name="slow", returns=pa.int64())
            data = pa.table({"x": pa.array(range(rows), pa.int64())})
            c.call("slow", data, rows_per_task=per_task)  # warm: the function loads on every node
            t0 = time.perf_counter()
            out = c.call("slow", data, rows_per_task=per_task)
            took = time.perf_counter() - t0
            got = out.to_pylist()
            if got != [3 * v for v in range(rows)]:
                sys.exit("wrong results")
            c.close()
            return took
        finally:
            for p, _, _ in nodes:
                p.kill()
                p.wait()


def kill_rerun(rows, per_task):
    """Seconds from kill -9 of the peer running tasks to the call's end,
    less what the call would have taken anyway (its tasks' time)."""
    with tempfile.TemporaryDirectory() as tmp:
        a = start(tmp, 0)
        b = start(tmp, 1, join=a[2])
        try:
            c = quiver.connect(a[1], token=TOKEN)
            while alive_peers(c) != 1:
                time.sleep(0.05)
            c.register(slow, name="slow", returns=pa.int64())
            data = pa.table({"x": pa.array(range(rows), pa.int64())})
            c.call("slow", data.slice(0, 2 * per_task), rows_per_task=per_task)
            import threading
            res = {}

            def call():
                res["out"] = c.call("slow", data, rows_per_task=per_task)
                res["end"] = time.perf_counter()
            th = threading.Thread(target=call)
            th.start()
            time.sleep(0.3)
            killed = time.perf_counter()
            b[0].send_signal(signal.SIGKILL)
            th.join()
            if res["out"].to_pylist() != [3 * v for v in range(rows)]:
                sys.exit("wrong results after the kill")
            return res["end"] - killed
        finally:
            for p, _, _ in (a, b):
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--rows-per-task", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    figures = {"rows": a.rows, "rows_per_task": a.rows_per_task, "seconds": {}}
    print(f"### Spillback: one call of {a.rows} rows x 20 ms on node 1, tasks of "
          f"{a.rows_per_task} rows, one worker per node\n")
    print("| nodes | seconds | speedup | of ideal |\n| --- | --- | --- | --- |")
    base = None
    for n in range(1, a.nodes + 1):
        t = run_cluster(n, a.rows, a.rows_per_task)
        figures["seconds"][n] = t
        base = base or t
        print(f"| {n} | {t:.2f} | {base / t:.2f}x | {base / t / n:.2f} |", flush=True)
    r = kill_rerun(100, 5)
    work = 100 * 0.02
    figures["kill_to_end_s"], figures["kill_left_s"] = r, work - 2 * 0.3
    print(f"\nkill -9 of the peer 0.3 s into a call of {work:.0f} s of work on two nodes: the call "
          f"ended {r:.2f} s after the kill (the origin alone needs about {work - 2 * 0.3:.1f} s for "
          f"what was left), results exact.")
    if a.json:
        import json
        with open(a.json, "w") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    main()
