"""run_all.py's section 6: the cluster. Spillback efficiency of one call on node 1 of 1-4
nodes on this host (bench_cluster.py: sleep-bound tasks, so that two cores do not limit
it), a peer killed mid-call, memberlist's failure detection (defaults beside the tuned
detector, a Go benchmark in ./cluster), the pull of a 100 MB object between two nodes
(BenchmarkPullObject), and the placement core alone: decisions per second
(BenchmarkHybridPlace) and the simulated makespan at 1,000 nodes (./internal/placesim)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
TIMEOUT_S = 900


def _go(args: list[str]) -> tuple[str, str]:
    cmd = ["go", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stderr or p.stdout)[-800:]}")
    return " ".join(cmd), p.stdout


def section_cluster(quick: bool, quiver_bin: str) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cluster.json")
        args = ["--rows", "100" if quick else "200", "--json", path]
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(BENCH, "bench_cluster.py"), *args], capture_output=True,
                           text=True, timeout=TIMEOUT_S, env=dict(os.environ, QUIVER_BIN=quiver_bin))
        out["spill_command"] = "python bench/bench_cluster.py " + " ".join(args[:2])
        if p.returncode != 0 or not os.path.exists(path):
            out["spill_error"] = (p.stderr or p.stdout)[-800:]
        else:
            with open(path) as f:
                out["spill"] = json.load(f)
            out["spill_wall_s"] = time.perf_counter() - t0
    try:
        cmd, text = _go(["test", "-run", "-", "-bench", "Detection", "-benchtime", "1x" if quick else "3x", "./cluster/"])
        out["detect_command"] = cmd
        out["detect"] = {m[0]: float(m[1]) for m in re.findall(r"BenchmarkDetection/(\S+?)-\d+\s.*?([\d.]+) ms", text)}
    except Exception as e:  # noqa: BLE001
        out["detect_error"] = str(e)
    try:
        cmd, text = _go(["test", "-run", "-", "-bench", "PullObject", "-benchtime", "3x" if quick else "10x",
                         "-count", "1" if quick else "3", "./flight/"])
        mbs = [float(x) for x in re.findall(r"BenchmarkPullObject\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) MB/s", text)]
        out["pull_command"], out["pull_mbs"] = cmd, mbs
    except Exception as e:  # noqa: BLE001
        out["pull_error"] = str(e)
    try:
        cmd, text = _go(["test", "-run", "-", "-bench", "HybridPlace", "-count", "1" if quick else "3", "./scheduler/"])
        ns = [float(x) for x in re.findall(r"BenchmarkHybridPlace\S*\s+\d+\s+([\d.]+) ns/op", text)]
        out["place_command"], out["place_ns"] = cmd, min(ns)
    except Exception as e:  # noqa: BLE001
        out["place_error"] = str(e)
    try:
        cmd, text = _go(["test", "-count", "1", "-run", "TestSmallCluster|TestThousandNodes", "-v", "./internal/placesim/"])
        out["sim_command"] = cmd
        out["sim"] = re.findall(r"sim_test.go:\d+: ((?:with|without) room reports: makespan .*|makespan .*)", text)
    except Exception as e:  # noqa: BLE001
        out["sim_error"] = str(e)
    return out


def report_cluster(c: dict | None) -> list[str]:
    L = ["## 6. Cluster: spillback, failure detection, placement", ""]
    if c is None or "error" in c:
        return L + [f"Not run: {c.get('error') if c else 'skipped'}", ""]
    cores = os.cpu_count() or 1
    L += [f"`{c['spill_command']}`: one call on node 1 of N nodes on this host, one Python worker per node, "
          "tasks that sleep 20 ms a row (so the cores do not limit it); speedup against N = 1 in the same run. "
          f"CPU-bound scaling across real nodes needs more cores than this machine's {cores}: not measured.", ""]
    if "spill_error" in c:
        L += [f"Not measured: {c['spill_error']}", ""]
    else:
        s = c["spill"]
        secs = {int(k): v for k, v in s["seconds"].items()}
        L += ["| nodes | seconds | speedup | of ideal linear |", "| --- | --- | --- | --- |"]
        for n, t in sorted(secs.items()):
            L.append(f"| {n} | {t:.2f} | {secs[1] / t:.2f}x | {secs[1] / t / n:.2f} |")
        L += ["", f"kill -9 of the peer 0.3 s into a two-node call: the call ended {s['kill_to_end_s']:.2f} s after the "
              f"kill, where the origin alone needs about {s['kill_left_s']:.1f} s for the work left; results exact. "
              "The killed peer's tasks ran again at the origin as soon as their streams broke.", ""]
    if "detect_error" in c:
        L += [f"Failure detection not measured: {c['detect_error']}", ""]
    else:
        L += [f"`{c['detect_command']}`: ms from stopping a member without a leave (as kill -9 looks) until "
              "another declares it dead, real memberlist instances on loopback:", "",
              "| detector, nodes | ms |", "| --- | --- |"]
        L += [f"| {k} | {v:,.0f} |" for k, v in sorted(c["detect"].items())] + [""]
    if "pull_error" in c or not c.get("pull_mbs"):
        L += [f"Object pull not measured: {c.get('pull_error', 'no figure')}", ""]
    else:
        L += [f"`{c['pull_command']}`: a node pulls a 100 MB object (6.25 M rows of int64 and float64) from its "
              "owner over TCP loopback in 5 MiB pieces, both nodes in one process: best "
              f"**{max(c['pull_mbs']):,.0f} MB/s**, runs {', '.join(f'{x:,.0f}' for x in c['pull_mbs'])} MB/s "
              "(goal 1 GB/s).", ""]
    if "place_error" in c:
        L += [f"Placement not measured: {c['place_error']}", ""]
    else:
        L += [f"`{c['place_command']}`: one Hybrid decision with 999 peers takes {c['place_ns']:.0f} ns on one core, "
              f"{1e3 / c['place_ns']:.2f} M decisions/s.", ""]
    if "sim_error" in c:
        L += [f"Simulation not run: {c['sim_error']}", ""]
    else:
        L += [f"`{c['sim_command']}` (virtual time; 4 nodes x 2 slots with one origin, then 1,000 nodes x 4 slots, "
              "tasks of 1-100 ms arriving at 100 origins over 1 s, views refreshed every 100 ms):", ""]
        L += [f"- {line}" for line in c["sim"]] + [""]
    return L
