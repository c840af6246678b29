"""deploy/databricks/quiver-init.sh as Databricks runs it: on a driver host and a worker
host, here two network namespaces joined by a veth pair, with the variables Databricks sets
(DB_IS_DRIVER, DB_DRIVER_IP) and the wheel from pyclient/build_wheels.py. The worker's
script starts first and must wait for the driver's node; the two nodes form one cluster
(each is the other's alive peer, gossiping on its host's address, port 8817); the worker
reads its token from a file (QUIVER_TOKEN_FILE); a second run changes nothing; a node
refuses a wrong token."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "databricks" / "quiver-init.sh"
DRIVER_IP, WORKER_IP = "10.213.7.1", "10.213.7.2"
TIMEOUT_S = 300
JOIN_WITHIN_S = 20

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 for network namespaces")


def sh(*args, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT_S, **kw)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def hosts():
    """Two namespaces, driver and worker, on one link."""
    tag = uuid.uuid4().hex[:6]
    drv, wrk = f"qvd{tag}", f"qvw{tag}"
    sh("ip", "netns", "add", drv)
    sh("ip", "netns", "add", wrk)
    try:
        sh("ip", "link", "add", f"vd{tag}", "type", "veth", "peer", "name", f"vw{tag}")
        sh("ip", "link", "set", f"vd{tag}", "netns", drv)
        sh("ip", "link", "set", f"vw{tag}", "netns", wrk)
        for ns, dev, ip in ((drv, f"vd{tag}", DRIVER_IP), (wrk, f"vw{tag}", WORKER_IP)):
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
        yield {"driver": drv, "worker": wrk}
    finally:
        sh("ip", "netns", "del", drv, check=False)
        sh("ip", "netns", "del", wrk, check=False)


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """The wheel, and a Python environment with the wheel's dependencies but not the wheel
    (the script installs it; the namespaces have no route to a package index)."""
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
    if machine is None:
        pytest.skip(f"no wheel for {platform.machine()}")
    dist = tmp_path_factory.mktemp("dist")
    sh(sys.executable, REPO / "pyclient" / "build_wheels.py", "--arch", machine, "--out", dist)
    [wheel] = dist.glob("*.whl")
    venv = tmp_path_factory.mktemp("py") / "v"
    sh(sys.executable, "-m", "venv", venv)
    sh(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
       "-c", REPO / "pyclient" / "requirements.txt", "pyarrow", "pandas", "numpy", "cloudpickle")
    return {"wheel": wheel, "python": venv / "bin" / "python", "quiver": venv / "bin" / "quiver"}


def script_env(install, run_dir: str, token: str, **databricks) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUIVER_", "DB_"))}
    env.update(QUIVER_WHEEL=str(install["wheel"]), QUIVER_TOKEN=token, QUIVER_PYTHON=str(install["python"]),
               QUIVER_RUN_DIR=run_dir, QUIVER_WORKERS="1", QUIVER_DRIVER_TIMEOUT="120",
               PIP_NO_INDEX="1", **databricks)
    return env


def in_ns(ns: str, *args) -> list[str]:
    return ["ip", "netns", "exec", ns, *map(str, args)]


def status(install, ns: str, address: str, token_file: str) -> subprocess.CompletedProcess:
    return sh(*in_ns(ns, install["quiver"], "status", "--address", address, "--token-file", token_file,
                     "--json"), check=False)


def peers(install, ns: str, ip: str, token_file: str) -> list[dict]:
    """The alive peers of the node at ip, once it sees one (or after JOIN_WITHIN_S)."""
    deadline = time.monotonic() + JOIN_WITHIN_S
    while True:
        st = status(install, ns, f"grpc://{ip}:8815", token_file)
        assert st.returncode == 0, st.stdout + st.stderr
        alive = [p for p in json.loads(st.stdout)["peers"] if p["state"] == "alive"]
        if alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_init_script_on_a_driver_and_a_worker(hosts, install, tmp_path):
    token = uuid.uuid4().hex
    drv_dir, wrk_dir = tempfile.mkdtemp(prefix="qdb-d-"), tempfile.mkdtemp(prefix="qdb-w-")
    secret = tmp_path / "secret"
    secret.write_text(token + "\n")
    drv_env = script_env(install, drv_dir, token, DB_IS_DRIVER="TRUE", DB_DRIVER_IP=DRIVER_IP)
    wrk_env = script_env(install, wrk_dir, "", DB_IS_DRIVER="FALSE", DB_DRIVER_IP=DRIVER_IP,
                         QUIVER_TOKEN_FILE=str(secret))
    try:
        # The worker's script first: it must wait for the driver's node, not fail.
        worker = subprocess.Popen(in_ns(hosts["worker"], "bash", SCRIPT), env=wrk_env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(2)  # the worker is polling by now; the point is that it started first
        assert worker.poll() is None, worker.stdout.read()
        drv = sh(*in_ns(hosts["driver"], "bash", SCRIPT), env=drv_env)
        assert "starting:" in drv.stdout
        out, _ = worker.communicate(timeout=TIMEOUT_S)
        assert worker.returncode == 0, out
        assert "waiting for the driver's node" in out and "the driver's node answers" in out, out

        # Each host serves, across the link, to a client with the token.
        bad = tmp_path / "bad-token"
        bad.write_text("not-the-token\n")
        for ns, ip, run_dir in ((hosts["worker"], DRIVER_IP, drv_dir), (hosts["driver"], WORKER_IP, wrk_dir)):
            ok = status(install, ns, f"grpc://{ip}:8815", os.path.join(run_dir, "token"))
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert json.loads(ok.stdout)["nodes"], ok.stdout
            refused = status(install, ns, f"grpc://{ip}:8815", str(bad))
            assert refused.returncode != 0, "a wrong token was accepted"

        # One cluster: each node is the other's peer, at its host's address.
        for ns, ip, run_dir, other in ((hosts["worker"], DRIVER_IP, drv_dir, WORKER_IP),
                                       (hosts["driver"], WORKER_IP, wrk_dir, DRIVER_IP)):
            [peer] = peers(install, ns, ip, os.path.join(run_dir, "token")) or [None]
            assert peer is not None, f"the node at {ip} has no peer"
            assert peer["gossip"] == f"{other}:8817" and peer["address"] == f"{other}:8815", peer
        pid = int(Path(drv_dir, "quiver.pid").read_text())

        # Idempotent: a second run on the driver changes nothing.
        again = sh(*in_ns(hosts["driver"], "bash", SCRIPT), env=drv_env)
        assert "nothing to do" in again.stdout
        assert int(Path(drv_dir, "quiver.pid").read_text()) == pid
    finally:
        for run_dir, ns in ((drv_dir, hosts["driver"]), (wrk_dir, hosts["worker"])):
            sh(*in_ns(ns, install["quiver"], "stop", "--run-dir", run_dir), check=False)
            shutil.rmtree(run_dir, ignore_errors=True)


def test_init_script_refuses_to_run_without_a_token(install, tmp_path):
    env = script_env(install, str(tmp_path / "run"), "", DB_IS_DRIVER="TRUE")
    p = sh("bash", SCRIPT, env=env, check=False)
    assert p.returncode != 0 and "QUIVER_TOKEN" in p.stdout + p.stderr
