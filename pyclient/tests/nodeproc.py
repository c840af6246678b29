"""Start and stop a real quiver node process for tests.

The node is bin/quiver (or $QUIVER_BIN), started with --block on a fresh run
directory, a unix socket there and TCP port 0, its Python workers on this
interpreter; its one ready line on stdout gives both addresses. Stopping sends SIGTERM, after which it must drain and exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"^quiver ready tcp=(?P<tcp>\S+) unix=(?P<unix>\S+)(?: gossip=(?P<gossip>\S+))?$")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 45  # longer than the node's default 30 s drain timeout


@dataclass
class Node:
    """A running node: its addresses as Flight locations, and where it logs."""

    tcp: str
    unix: str
    run_dir: str
    log: Path
    proc: subprocess.Popen
    gossip: str | None = None  # host:port, with --gossip

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def quiver_bin() -> str:
    path = os.environ.get("QUIVER_BIN") or str(REPO / "bin" / "quiver")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no quiver binary at {path}: build it with "
                    "`go build -o bin/quiver ./cmd/quiver` or set QUIVER_BIN", pytrace=False)
    return path


def start_node(extra_args: list[str] = ()) -> Node:
    """Start bin/quiver --block on a fresh run dir; return once it prints its ready line."""
    run_dir = tempfile.mkdtemp(prefix="quiver-test-")  # short: unix socket paths max ~107 bytes
    sock = os.path.join(run_dir, "quiver.sock")
    log = Path(run_dir) / "node.log"
    # Python workers run on this interpreter, which imports the quiver under test.
    python = [] if "--python" in extra_args else ["--python", sys.executable]
    args = [quiver_bin(), "start", "--block", "--listen", "127.0.0.1:0",
            "--socket", sock, "--run-dir", run_dir, *python, *extra_args]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file,
                                stdin=subprocess.DEVNULL, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    m = READY.match(line[0].strip()) if line else None
    if not m:
        proc.kill()
        proc.wait()
        got = f"printed {line[0]!r}" if line else f"printed nothing in {START_TIMEOUT_S}s"
        pytest.fail(f"quiver {got} (exit {proc.returncode}); log:\n"
                    f"{log.read_text(errors='replace')[-4000:]}", pytrace=False)
    return Node(tcp=f"grpc://{m['tcp']}", unix=f"grpc+unix://{m['unix']}",
                run_dir=run_dir, log=log, proc=proc, gossip=m["gossip"])


def stop_node(node: Node) -> None:
    """SIGTERM the node, wait for it, remove its run dir; fail unless it exited 0."""
    node.proc.send_signal(signal.SIGTERM)
    try:
        code = node.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait()
        code = None
    node.proc.stdout.close()
    tail = node.log_tail()
    if os.environ.get("QUIVER_KEEP_LOGS"):
        print(f"\nquiver log kept in {node.log}")
    else:
        shutil.rmtree(node.run_dir, ignore_errors=True)
    assert code == 0, f"quiver exited {code} after SIGTERM (None: still running); log tail:\n{tail}"
