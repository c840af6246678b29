"""run_all.py's section 7: deploying. bench_deploy.py (setup_cluster beside Ray on Spark's
setup_ray_cluster on local-cluster[2,2,3072], and a skewed heavy UDF plain, accelerated
and with ray.remote inside it), then the wheel: its size, and from `pip install` of it
into a fresh venv outside the source tree to the first accelerated batch returned
(quiver.connect() starting the wheel's own node, a registered Python function called on a
batch).

    python bench/section_deploy.py [--quick] [--json out.json]   # alone: prints the section's Markdown
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
TIMEOUT_S = 1800

FIRST_BATCH = r"""
import time, pyarrow as pa, quiver
t = time.perf_counter()
with quiver.connect() as c:
    name = c.register(lambda x: x * 2, name="twice", returns="bigint")
    got = c.call(name, pa.record_batch({"x": list(range(1000))}))
assert got.to_pylist() == [2 * x for x in range(1000)], got
print(time.perf_counter() - t)
"""


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT_S, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}: {(p.stderr or p.stdout)[-800:]}")
    return p


def wheel_part() -> dict:
    """The wheel built for this machine, installed into a fresh venv, serving its first batch."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="qv-wheel-") as d:
        dist = os.path.join(d, "dist")
        t = time.perf_counter()
        _run([sys.executable, os.path.join(ROOT, "pyclient", "build_wheels.py"), "--arch", arch, "--out", dist])
        out["build_s"] = time.perf_counter() - t
        [wheel] = [os.path.join(dist, w) for w in os.listdir(dist) if w.endswith(".whl")]
        out["wheel"], out["wheel_bytes"] = os.path.basename(wheel), os.path.getsize(wheel)
        venv, run_dir = os.path.join(d, "venv"), os.path.join(d, "run")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUIVER_", "PYTHON", "VIRTUAL_ENV"))}
        env["QUIVER_RUN_DIR"] = run_dir
        t0 = time.perf_counter()
        _run([sys.executable, "-m", "venv", venv], env=env, cwd=d)
        out["venv_s"] = time.perf_counter() - t0
        py = os.path.join(venv, "bin", "python")
        t = time.perf_counter()
        _run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], env=env, cwd=d)
        out["pip_s"] = time.perf_counter() - t
        t = time.perf_counter()
        try:
            p = _run([py, "-c", FIRST_BATCH], env=env, cwd=d)
            out["first_batch_s"] = time.perf_counter() - t
            out["first_batch_in_process_s"] = float(p.stdout.split()[-1])
        finally:
            subprocess.run([os.path.join(venv, "bin", "quiver"), "stop", "--run-dir", run_dir], capture_output=True)
        out["install_to_batch_s"] = time.perf_counter() - t0
    return out


def section_deploy(quick: bool, quiver_bin: str, no_ray: bool = False) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deploy.json")
        args = ["--rows", "1000" if quick else "3000"] + (["--no-ray"] if no_ray else [])
        out["command"] = "python bench/bench_deploy.py " + " ".join(args)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(BENCH, "bench_deploy.py"), *args, "--json", path],
                           capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                           env=dict(os.environ, QUIVER_BIN=quiver_bin))
        out["wall_s"] = time.perf_counter() - t
        out["markdown"] = [line for line in p.stdout.splitlines() if line.startswith("|") or not line]
        if os.path.exists(path):
            with open(path) as f:
                out["figures"] = json.load(f)
        if p.returncode != 0:
            out["spark_error"] = f"exit {p.returncode}: {(p.stderr or p.stdout)[-800:]}"
    try:
        out["wheel"] = wheel_part()
    except Exception as e:  # noqa: BLE001
        out["wheel_error"] = f"{type(e).__name__}: {e}"
    return out


def report_deploy(c: dict | None) -> list[str]:
    L = ["## 7. Deploying on Spark: setup_cluster vs Ray on Spark, and the wheel", ""]
    if c is None or "error" in c:
        return L + [f"Not run: {c.get('error') if c else 'skipped'}", ""]
    f = c.get("figures", {})
    L += [f"`{c['command']}` ({c['wall_s']:.0f} s) on `{f.get('master', 'local-cluster[2,2,3072]')}`, one Spark "
          "application: Quiver's cluster, then Ray on Spark's, each shut down before the next. On one machine "
          "every executor shares the driver's host, so setup_cluster's one node serves them all (one node per "
          "host); Ray on Spark starts a head and a worker node per executor. The UDF: heavy_row "
          f"(~1 ms a row, loop {f.get('loop', '?')}) on {f.get('rows', '?')} rows, {f.get('hot_share', 0.9):.0%} of "
          f"them in one partition (partition sizes {f.get('partitions', '?')}); Ray's variant is the recipe "
          "Quiver replaces, ray.remote tasks of 20 rows inside the pandas UDF; rows compared with the plain UDF's. "
          "A Ray worker node holds its Spark task's cores while it runs, so each takes one core of its executor "
          "(num_cpus_worker_node=1; with 2 it takes them all and the UDF's Spark tasks never start); "
          "setup_cluster's node holds none.",
          ""]
    if "spark_error" in c:
        L += [f"Not measured (or partly): {c['spark_error']}", ""]
    if f.get("ray_error"):
        L += [f"Ray on Spark failed: {f['ray_error']}", ""]
    L += [*c.get("markdown", []), ""]
    w = c.get("wheel")
    if w is None:
        L += [f"Wheel not measured: {c.get('wheel_error')}", ""]
    else:
        L += [f"The wheel `{w['wheel']}`: {w['wheel_bytes'] / 2**20:.1f} MiB (built in {w['build_s']:.0f} s). "
              f"From a fresh venv outside the source tree ({w['venv_s']:.1f} s to make it): `pip install` of the wheel "
              f"{w['pip_s']:.1f} s (dependencies from pip's cache), then a new process's first accelerated batch "
              f"(quiver.connect() starts the wheel's node; register a function; call it on 1,000 rows) "
              f"{w['first_batch_s']:.1f} s ({w['first_batch_in_process_s']:.1f} s of it inside the process): "
              f"{w['install_to_batch_s']:.1f} s from nothing installed to the first batch returned.", ""]
    return L


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    qbin = os.environ.get("QUIVER_BIN") or os.path.join(ROOT, "bin", "quiver")
    res = section_deploy(quick, qbin)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(res, f, indent=1)
    print("\n".join(report_deploy(res)))
    sys.exit(0 if "spark_error" not in res and "wheel_error" not in res else 1)
