"""run_all.py's section 5: the UDF forms beyond scalar pandas UDFs, each measured by its own
script (plain Spark, Quiver and the peer its goal names, side by side in one process tree):
bench_rows.py (row-at-a-time @udf vs multiprocessing.Pool), bench_grouped.py (grouped map vs
Pool), bench_explode.py (a map form that changes the number of rows) and bench_io.py (an I/O-bound
row UDF, 20 ms a row against a local HTTP service: plain vs concurrency=32 vs Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))

# script, its arguments for a full run, for a QUICK run
SCRIPTS = [
    ("bench_rows.py", [], ["--quick"]),
    ("bench_grouped.py", [], ["--quick"]),
    ("bench_explode.py", ["--heavy"], ["--rows", "200000", "--repeat", "1"]),
    ("bench_io.py", [], ["--quick"]),
]
TIMEOUT_S = 1800


def run_one(script: str, args: list[str], env: dict) -> dict:
    """The script's figures: its last stdout line (JSON) and the Markdown table rows it printed."""
    path = os.path.join(BENCH, script)
    if not os.path.exists(path):
        return {"script": script, "error": "not present"}
    cmd = [sys.executable, path, *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, cwd=os.path.dirname(BENCH))
    out = {"script": script, "command": " ".join(["python", f"bench/{script}", *args]),
           "wall_s": time.perf_counter() - t0, "markdown": [l for l in p.stdout.splitlines() if l.startswith("|")]}
    if p.returncode != 0:
        out["error"] = f"exit {p.returncode}: {(p.stderr or p.stdout)[-1500:]}"
        return out
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    try:
        out["figures"] = json.loads(lines[-1])
    except (IndexError, ValueError) as e:
        out["error"] = f"no JSON line in its output ({e})"
    return out


def section_forms(quick: bool, quiver_bin: str) -> dict:
    env = dict(os.environ, QUIVER_BIN=quiver_bin)
    return {"runs": [run_one(s, q if quick else full, env) for s, full, q in SCRIPTS]}


def report_forms(f: dict | None) -> list[str]:
    L = ["## 5. UDF forms: row-at-a-time, grouped map, map forms of any length, I/O-bound rows", ""]
    if f is None or "error" in f:
        return L + [f"Not run: {f.get('error') if f else 'skipped'}", ""]
    for r in f["runs"]:
        L += [f"`{r.get('command', r['script'])}`" + (f" ({r['wall_s']:.0f} s)" if "wall_s" in r else ""), ""]
        if "error" in r:
            L += [f"Not measured: {r['error']}", ""]
            continue
        L += [*r["markdown"], ""]
    return L
