"""setup_cluster / shutdown_cluster: a quiver node on every host of a Spark application,
started from the driver, gone when the application is.

    from quiver.spark import setup_cluster, shutdown_cluster
    info = setup_cluster(spark, workers_per_node=4)   # or: with quiver.spark.cluster(spark): ...
    ...                                               # @quiver.accelerate UDFs find their node
    shutdown_cluster()

The driver's host gets a node from the driver process. Every other host gets one from a
Spark job, once the executors have registered, with one task per core (Spark offers every
free core at once, so each executor runs one); each task makes sure its host has a node
(one per host, under the run directory's lock) and returns.
Spark's Python workers find their host's node on the default per-user socket
(quiver._wire.address.run_dir), with no configuration. Nodes listen on that user-only
socket and on loopback TCP at a port the kernel chooses.

Nothing outlives the application:
- the driver's node watches the driver process (``--watch-pid``): kill -9 of the driver
  ends it; ``SparkContext.stop()`` ends it too, seen by a watcher thread here;
- a host's node watches its executor's JVM: it ends when the executor does (the
  application stops, the driver dies, the executor is lost). A new executor's Python
  workers start a node of their own on demand, which ends when idle;
- shutdown_cluster() stops every node this cluster started, at once.

A node holds no Spark task slot while it runs: the tasks that start nodes return at once,
so an executor with one core still runs the job's own tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from .._wire.address import run_dir, socket_address
from ..client import connect
from .._wire.local import STOP_TIMEOUT_S, answers, find_binary, host_lock, start_detached
from ..errors import QuiverError, Unavailable

__all__ = ["Cluster", "setup_cluster", "shutdown_cluster", "cluster"]

MARKER = "cluster.json"     # in a node's run directory: which cluster started it
APP_POLL_S = 0.5            # how often the driver looks whether the SparkContext stopped

_lock = threading.Lock()
_active: Cluster | None = None


@dataclass
class Cluster:
    """What setup_cluster started."""

    id: str
    address: str                       # the driver host's node (its unix socket)
    tcp: str                           # the same node over loopback TCP
    nodes: list[dict] = field(default_factory=list)  # {"host", "pid", "started"} per host
    _spark: object = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __repr__(self) -> str:
        return f"Cluster(id={self.id!r}, address={self.address!r}, nodes={len(self.nodes)})"


def setup_cluster(spark, *, workers_per_node: int | None = None,
                  object_store_memory: int | None = None, driver_workers: bool = True,
                  timeout: float = 120.0) -> Cluster:
    """Start a node on the driver's host and on every executor's host; return the Cluster.

    workers_per_node: Python workers of each node (default: one per core of its host).
    object_store_memory: bytes of each node's object store (default: 30% of its host's memory).
    driver_workers: whether the driver's node runs Python workers (False: it serves
    objects and native functions only; the driver's host then has no Python workers).
    """
    global _active
    sc = _spark_context(spark)
    with _lock:
        if _active is not None:
            raise QuiverError(f"quiver: a cluster is already set up ({_active!r}); "
                              "call shutdown_cluster() first")
        cid = secrets.token_hex(8)
        args = _node_args(workers_per_node, object_store_memory)
        directory = run_dir()
        _start_here(cid, directory, args if driver_workers else _no_workers(args), os.getpid())
        tcp = _tcp_address(directory)
        info = Cluster(id=cid, address=socket_address(directory),
                       tcp=tcp, _spark=spark)
        info.nodes.append({"host": socket.gethostname(), "pid": _node_pid(directory), "started": True})
        try:
            info.nodes += _start_on_executors(sc, cid, args, timeout)
        except Exception:
            _stop_here(cid, directory)
            raise
        _active = info
    threading.Thread(target=_watch_app, args=(sc, info), name="quiver-cluster-watch",
                     daemon=True).start()
    hosts = len({n["host"] for n in info.nodes})
    print(f"quiver: cluster {cid} up: {hosts} host(s); status: quiver status --address {info.address}",
          file=sys.stderr)
    return info


def shutdown_cluster() -> None:
    """Stop every node setup_cluster started (a no-op when none is set up)."""
    global _active
    with _lock:
        info, _active = _active, None
    if info is None:
        return
    info._stop.set()
    sc = _spark_context(info._spark, must=False)
    if sc is not None and not _stopped(sc):
        try:
            _on_executors(sc, _stop_task(info.id))
        except Exception as e:  # an application that is going away: executors end their nodes
            print(f"quiver: stopping the executors' nodes: {e}", file=sys.stderr)
    _stop_here(info.id, run_dir())


@contextlib.contextmanager
def cluster(spark, **options):
    """setup_cluster(spark, **options) for the block, shutdown_cluster() after it."""
    info = setup_cluster(spark, **options)
    try:
        yield info
    finally:
        shutdown_cluster()


# The driver's side.

def _spark_context(spark, must: bool = True):
    try:
        return spark.sparkContext
    except Exception:
        if must:
            raise QuiverError(
                "quiver: setup_cluster needs a classic SparkSession, with a SparkContext; a Spark "
                "Connect session has none. Start nodes on the cluster's hosts instead (the init "
                "script or the DaemonSet), and @quiver.accelerate finds them.") from None
        return None


def _stopped(sc) -> bool:
    try:
        return bool(sc._jsc.sc().isStopped())
    except Exception:
        return True


def _watch_app(sc, info: Cluster) -> None:
    """Stop the driver's node once the SparkContext has stopped."""
    while not info._stop.wait(APP_POLL_S):
        if _stopped(sc):
            with _lock:
                global _active
                if _active is info:
                    _active = None
            _stop_here(info.id, run_dir())
            return


def _start_on_executors(sc, cid: str, args: list[str], timeout: float) -> list[dict]:
    """One node-starting task per core of the application, once its executors have
    registered: Spark offers every free core at once, so each executor runs one."""
    if sc.master == "local" or sc.master.startswith("local["):
        return []  # the driver's node serves the one host
    _wait_for_executors(sc, timeout)
    found: dict[str, dict] = {}
    for line in _on_executors(sc, _start_task(cid, args)):
        rec = json.loads(line)
        if rec["host"] not in found or rec["started"]:
            found[rec["host"]] = rec
    return list(found.values())


def _wait_for_executors(sc, timeout: float) -> None:
    """Until the registered executors have not changed for a second (or timeout)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # less the driver
        if n != last:
            last, since = n, time.monotonic()
        elif n > 0 and time.monotonic() - since >= 1.0:
            return
        time.sleep(0.1)
    if last <= 0:
        raise Unavailable(f"quiver: no Spark executor registered within {timeout:.0f} s")


def _on_executors(sc, fn) -> list:
    """fn's output over one task per core of the application."""
    n = max(sc.defaultParallelism, 1)
    return sc.parallelize(range(n), n).mapPartitions(fn).collect()


def _node_args(workers: int | None, memory: int | None) -> list[str]:
    args = ["--listen", "127.0.0.1:0"]
    if workers is not None:
        if workers < 1:
            raise ValueError(f"quiver: workers_per_node must be at least 1, not {workers}")
        args += ["--workers", str(workers)]
    if memory is not None:
        args += ["--object-store-memory", str(int(memory))]
    return args


def _no_workers(args: list[str]) -> list[str]:
    out = list(args)
    if "--workers" in out:
        del out[out.index("--workers"):out.index("--workers") + 2]
    return out + ["--workers", "-1"]


# Both sides: start or stop this host's node.

def _start_here(cid: str, directory: str, args: list[str], owner: int) -> bool:
    """Start this host's node for cluster cid unless one answers; True if started here."""
    address = socket_address(directory)
    with host_lock(directory):
        if answers(address):
            return False
        start_detached(directory, [*args, "--python", sys.executable, "--watch-pid", str(owner)])
        with open(os.path.join(directory, MARKER), "w") as f:
            json.dump({"cluster": cid}, f)
    return True


def _stop_here(cid: str, directory: str) -> None:
    """Stop this host's node if cluster cid started it."""
    with host_lock(directory):
        try:
            with open(os.path.join(directory, MARKER)) as f:
                if json.load(f).get("cluster") != cid:
                    return
        except (OSError, ValueError):
            return
        binary = find_binary()
        if binary is not None:
            subprocess.run([binary, "stop", "--run-dir", directory], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(directory, MARKER))


def _node_pid(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, "quiver.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _tcp_address(directory: str) -> str:
    """The node's loopback TCP address, from its status."""
    with connect(socket_address(directory)) as c:
        node = c.status()["nodes"][0]
    return "grpc://" + node["address"] if node.get("address") else ""


# The executors' side: functions Spark ships to its Python workers.

def _start_task(cid: str, args: list[str]):
    def start(_rows):
        directory = run_dir()
        started = _start_here(cid, directory, args, _executor_pid())
        yield json.dumps({"host": socket.gethostname(), "pid": _node_pid(directory), "started": started})
    return start


def _stop_task(cid: str):
    def stop(_rows):
        _stop_here(cid, run_dir())
        yield ""
    return stop


def _executor_pid() -> int:
    """The JVM this Python worker serves (the nearest ancestor named java), else the parent."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "java":
                    return pid
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return os.getppid()
