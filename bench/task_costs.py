"""Where a task's time goes: wall time and CPU per task of the client, the node and its
workers, for the task API over each transport.

For each of: the lane with worker leases (a client on the node's unix socket, as users
get it), the lane without leases, and a Flight session (QUIVER_LANE=0), it measures

    sync     one empty task submitted and awaited, again and again
    async    1,000 empty tasks submitted, then gathered
    node     a session request the node answers itself (a release of an unknown id):
             the transport's round trip without a worker

and reports wall time per task and CPU per task of this process (the client), the node
process and its Python workers (from /proc: user + system time). A plain Python
round trip between two processes over a socketpair, with the lane's framing and the
same pickling, is the floor a direct client-to-worker path could reach.

    .venv/bin/python bench/task_costs.py [--tasks 3000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import struct
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import quiver  # noqa: E402
from bench_tasks import start_node  # noqa: E402
from bench_udf import proc_cpu_s, proc_ppid  # noqa: E402


def noop(i):
    return i  # defined here, in __main__: sent by value to the workers


def workers_cpu(node_pid: int) -> float:
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if proc_ppid(int(pid)) == node_pid:
                    total += proc_cpu_s(int(pid))
            except OSError:
                pass
    return total


def measured(node_pid: int, n: int, run) -> dict:
    """run() n times' wall and CPU per run, in microseconds."""
    n0, w0, c0 = proc_cpu_s(node_pid), workers_cpu(node_pid), time.process_time()
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    return {"wall": wall / n * 1e6, "client": (time.process_time() - c0) / n * 1e6,
            "node": (proc_cpu_s(node_pid) - n0) / n * 1e6, "workers": (workers_cpu(node_pid) - w0) / n * 1e6}


def transport(address: str, node_pid: int, tasks: int, lane: bool, leases: bool) -> dict:
    os.environ["QUIVER_LANE"] = "1" if lane else "0"
    os.environ["QUIVER_LEASES"] = "1" if leases else "0"
    client = quiver.connect(address)
    try:
        for i in range(200):
            client.submit(noop, i).result()
        out = {}
        out["sync"] = measured(node_pid, tasks, lambda: [client.submit(noop, i).result() for i in range(tasks)])
        lat = []
        for i in range(tasks):
            t = time.perf_counter()
            client.submit(noop, i).result()
            lat.append(time.perf_counter() - t)
        out["sync"]["p50"] = statistics.median(lat) * 1e6
        rounds = max(1, tasks // 1000)

        def many():
            for _ in range(rounds):
                futs = [client.submit(noop, i) for i in range(1000)]
                client.wait(futs)
                [f.result() for f in futs]
        many()
        out["async"] = measured(node_pid, rounds * 1000, many)
        conn = client.connection

        def node_only():
            for _ in range(tasks):
                try:
                    conn.ask({"op": "release", "id": "no-such-object"})
                except quiver.QuiverError:
                    pass
        out["node"] = measured(node_pid, tasks, node_only)
        return out
    finally:
        client.close()


def socketpair_floor(n: int) -> float:
    """Median round trip (us) of a pickled empty call between two processes over a socketpair."""
    import cloudpickle
    prefix = struct.Struct("<B3xIQ")
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        while True:
            d = b.recv(1 << 16)
            if not d:
                os._exit(0)
            _, h, _ = prefix.unpack_from(d)
            args, kwargs = pickle.loads(d[16 + h:])
            out = pickle.dumps(("ok", None), protocol=5)
            b.sendall(prefix.pack(11, 2, len(out)) + b"{}" + out)
    b.close()
    lat = []
    for i in range(n):
        t = time.perf_counter()
        body = cloudpickle.dumps(((i,), {}), protocol=5)
        a.sendall(prefix.pack(2, 2, len(body)) + b"{}" + body)
        d = a.recv(1 << 16)
        _, h, _ = prefix.unpack_from(d)
        pickle.loads(d[16 + h:])
        lat.append(time.perf_counter() - t)
    a.close()
    os.waitpid(pid, 0)
    return statistics.median(lat) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=3000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="qtc-") as run_dir:
        proc, address = start_node(run_dir)
        try:
            for label, lane, leases in (("lane, leases", True, True), ("lane, no leases", True, False),
                                        ("Flight session", False, False)):
                print(f"{label} ...", file=sys.stderr, flush=True)
                rows.append((label, transport(address, proc.pid, args.tasks, lane, leases)))
        finally:
            proc.terminate()
            proc.wait(60)
    floor = socketpair_floor(args.tasks)
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"`bench/task_costs.py --tasks {args.tasks}`; microseconds per task (CPU from /proc, 10 ms ticks "
          f"summed over {args.tasks:,} tasks)\n")
    print("| transport | measurement | wall | p50 | client CPU | node CPU | workers CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows:
        for key, name in (("sync", "sync task"), ("async", "async task (1,000 then gathered)"),
                          ("node", "node-only round trip")):
            m = r[key]
            p50 = f"{m['p50']:.0f}" if "p50" in m else ""
            print(f"| {label} | {name} | {m['wall']:.0f} | {p50} | {m['client']:.0f} | {m['node']:.0f} | "
                  f"{m['workers']:.0f} |")
    print(f"| two Python processes, a socketpair | pickled call round trip | | {floor:.0f} | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
