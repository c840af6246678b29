"""bench_udf.py's part d: the per-task and per-call overhead of Python functions on the
node (one-row tasks of an identity function, Series and Arrow forms; sequential and
parallel one-row calls; the node's Go identity beside them)."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from bench_udf import Node, _timed, identity, identity_arrow
from machine import self_cpu_s


def part_overhead(client, node: Node, tasks: int, calls: int, cores: int) -> dict:
    out = {}
    ident = client.register(identity, name="bench_identity", returns=pa.int64())
    ident_arrow = client.register(identity_arrow, name="bench_identity_arrow", returns=pa.int64(),
                                  kind="arrow")
    big = pa.record_batch([pa.array(range(tasks), pa.int64())], names=["x"])
    one = pa.record_batch([pa.array([1], pa.int64())], names=["x"])
    for key, name in (("series", ident), ("arrow", ident_arrow)):
        client.call(name, big.slice(0, cores * 8), rows_per_task=1)  # warm
        node0, workers0, self0 = *node.cpu_s(), self_cpu_s()
        t, res = _timed(lambda: client.call(name, big, rows_per_task=1))
        node1, workers1, self1 = *node.cpu_s(), self_cpu_s()
        assert res.equals(big.column(0)), f"{name} changed its input"
        out[f"batch_{key}_us"] = t / tasks * 1e6
        out[f"batch_{key}_cpu"] = tuple((b - a) / tasks * 1e6 for a, b in
                                        ((node0, node1), (workers0, workers1), (self0, self1)))
    for key, name in (("seq", ident), ("native", "identity")):  # identity: the node's Go built-in
        for _ in range(50):
            client.call(name, one)
        t, _ = _timed(lambda: [client.call(name, one) for _ in range(calls)])
        out[f"calls_{key}_us"] = t / calls * 1e6
    threads_n = max(4, 2 * cores)
    per_thread = max(1, calls // threads_n)

    def loop():
        for _ in range(per_thread):
            client.call(ident, one)

    threads = [threading.Thread(target=loop) for _ in range(threads_n)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out["calls_par_us"] = (time.perf_counter() - start) / (per_thread * threads_n) * 1e6
    out["threads"] = threads_n
    return out
