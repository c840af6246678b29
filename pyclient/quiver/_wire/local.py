"""A node for this machine, started on demand: what quiver.connect() does with no address.

    client = quiver.connect()     # a node answering on the default socket, else start one

The way ``ray.init()`` works: with no address and no $QUIVER_ADDRESS, connect()
looks for a node on the default unix socket (``quiver.sock`` in the run
directory: $QUIVER_RUN_DIR, else $XDG_RUNTIME_DIR/quiver, else
/tmp/quiver-<uid>). If none answers it starts one, detached, serving only that
socket, with Python workers on this interpreter (``sys.executable``), and stops
it when this process exits; the node also ends by itself if this process dies
without exiting (``--watch-pid``: a driver killed with kill -9 leaves no node).
Other processes of the same user on the machine (Spark's Python workers, a
second notebook) find it on the same socket and reuse it; they never stop it.

Started from inside a Spark task (a Spark Python worker, which Spark may kill at
any time and which other workers share the node with), the node is not tied to
the starting process: it ends once no client has been connected for
$QUIVER_IDLE_EXIT (default 60s; ``--idle-exit``), so it never outlives the
application that used it.

The binary is $QUIVER_BIN, else ``quiver/_bin/quiver`` inside this package
(``make setup`` puts it there), else ``quiver`` on PATH. Concurrent starters
are serialized with an exclusive lock on ``quiver.lock`` in the run directory,
so exactly one of them starts the node and the others connect to it.

``shutdown()`` stops the node this process started, at once (like
``ray.shutdown()``); it is what runs at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import threading

import pyarrow.flight as flight

from ..errors import Unavailable
from .address import SOCKET_NAME, run_dir, socket_address
from .conn import auth_headers

__all__ = ["find_binary", "run_dir", "ensure_node", "started_node", "shutdown", "host_lock",
           "start_detached", "answers"]

LOCK_NAME = "quiver.lock"
PROBE_TIMEOUT_S = 2.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0  # longer than the node's 30 s drain
IDLE_EXIT = "60s"      # a node started from a Spark task ends after this long without a client

_lock = threading.Lock()
_started: dict | None = None  # {"pid": starter pid, "bin": ..., "run_dir": ...} when this process started a node
_atexit_registered = False


def find_binary() -> str | None:
    """$QUIVER_BIN, else quiver/_bin/quiver in this package, else quiver on PATH; None if none."""
    env = os.environ.get("QUIVER_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # quiver/, above _wire/
    bundled = os.path.join(package, "_bin", "quiver")
    if os.access(bundled, os.X_OK):
        return bundled
    return shutil.which("quiver")


def answers(address: str, token: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a node serves `address` (a Flight location): its health action answers."""
    headers = auth_headers(token)
    try:
        client = flight.FlightClient(address)
    except Exception:
        return False
    try:
        options = flight.FlightCallOptions(timeout=timeout, headers=headers)
        list(client.do_action(flight.Action("health", b""), options=options))
        return True
    except flight.FlightUnauthenticatedError:
        return True  # a node is there; the caller's token is its own problem
    except Exception:
        return False
    finally:
        client.close()


def ensure_node(token: str | None = None) -> str:
    """The address of a node on the default socket, starting one if none answers.

    Raises Unavailable when no node answers and none can be started (no binary,
    or it failed to start: the message quotes its output).
    """
    global _started, _atexit_registered
    directory = run_dir()
    address = socket_address(directory)
    if answers(address, token):
        return address
    with host_lock(directory):
        if answers(address, token):
            return address  # another process started it while we waited
        in_task = _in_spark_task()
        lifetime = (["--idle-exit", os.environ.get("QUIVER_IDLE_EXIT") or IDLE_EXIT] if in_task
                    else ["--watch-pid", str(os.getpid())])
        binary = start_detached(directory, ["--listen=", "--python", sys.executable, *lifetime])
        _started = {"pid": os.getpid(), "bin": binary, "run_dir": directory}
        if not _atexit_registered and not in_task:  # other workers may still use it: idle exit ends it
            atexit.register(shutdown)
            _atexit_registered = True
    if not answers(address, token, timeout=10):
        raise Unavailable(f"quiver: started a local node in {directory}, but it does not answer on "
                          f"{address}; see {os.path.join(directory, 'quiver.log')}")
    return address


@contextlib.contextmanager
def host_lock(directory: str):
    """Held by one thread of one process of this user at a time, per run directory:
    who starts (or stops) the node of that directory."""
    with _lock:  # threads of this process; the file lock covers other processes
        _make_private_dir(directory)
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def started_node() -> dict | None:
    """{"pid", "bin", "run_dir"} of the node this process started, or None."""
    s = _started
    return dict(s) if s and s["pid"] == os.getpid() else None


def shutdown() -> None:
    """Stop the node this process started, if any (a no-op in other processes)."""
    global _started
    with _lock:
        s, _started = _started, None
    if not s or s["pid"] != os.getpid():
        return  # a forked child never stops its parent's node
    try:
        subprocess.run([s["bin"], "stop", "--run-dir", s["run_dir"]], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        pass


def start_detached(directory: str, args: list[str]) -> str:
    """Run `quiver start --run-dir directory *args` (a detached node; the caller holds
    host_lock) and return the binary's path; Unavailable, quoting its output, if it fails."""
    binary = find_binary()
    if binary is None:
        raise Unavailable(
            "quiver: no node answers on the default socket "
            f"{os.path.join(directory, SOCKET_NAME)} and there is no quiver binary to start one: "
            "set QUIVER_BIN, run `make setup` (it installs quiver/_bin/quiver), put `quiver` on "
            "PATH, or pass an address / set QUIVER_ADDRESS")
    cmd = [binary, "start", "--run-dir", directory, *args]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"quiver: `{' '.join(cmd)}` did not finish in {START_TIMEOUT_S:.0f}s; "
                          f"see {os.path.join(directory, 'quiver.log')}") from None
    except OSError as e:
        raise Unavailable(f"quiver: cannot run {binary}: {e}") from e
    if proc.returncode != 0:
        raise Unavailable(f"quiver: could not start a local node (`{' '.join(cmd)}` exited "
                          f"{proc.returncode}):\n{proc.stdout.strip()}")
    return binary


def _in_spark_task() -> bool:
    """Whether this process runs a Spark task now (a Spark Python worker): without
    importing pyspark where the caller did not."""
    tc = sys.modules.get("pyspark.taskcontext")
    try:
        return tc is not None and tc.TaskContext.get() is not None
    except Exception:  # a pyspark too different to ask
        return False


def _make_private_dir(directory: str) -> None:
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as e:
        raise Unavailable(f"quiver: cannot create the run directory {directory}: {e}") from e
