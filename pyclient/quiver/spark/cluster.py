"""setup_cluster / shutdown_cluster: a quiver node on every host of a Spark application,
joined into one cluster, started from the driver, gone when the application is.

    from quiver.spark import setup_cluster, shutdown_cluster
    info = setup_cluster(spark, workers_per_node=4)   # or: with quiver.spark.cluster(spark): ...
    ...                                               # @quiver.accelerate UDFs find their node
    info.status()                                     # every node, as one cluster
    shutdown_cluster()

The driver's host gets a node from the driver process, serving and gossiping on the
driver's address (``spark.driver.host``; free ports). Every other host gets one from a
Spark job, once the executors have registered, with one task per core (Spark offers every
free core at once, so each executor runs one); each task makes sure its host has a node
(one per host, under the run directory's lock) that serves and gossips on the host's
address toward the driver and joins the driver node's gossip (``--join``), and returns.
The nodes form one cluster: a node whose Python workers are busy spills tasks to peers
with free ones. An executor host that registers later gets its node the same way (the
driver looks for new hosts every few seconds).

The token: the nodes serve the network, so they require a token (and key gossip's
encryption with it). setup_cluster makes a random one unless given one; it travels to the
executors inside the node-starting job's closure (never on a command line, in a log or in
Spark's UI) and rests in each host's run directory as the user-only file ``token``.
Spark's Python workers find their host's node on the default per-user socket
(quiver._wire.address.run_dir) and its token in that file, with no configuration;
``info.token`` is there for other clients.

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
import sys
import threading
import time
from dataclasses import dataclass, field

from .._wire import local
from .._wire.address import run_dir, socket_address
from ..client import connect
from ..errors import QuiverError, Unavailable
from ._hostnode import ip_toward, node_args, node_pid, start_here, start_task, stop_here, stop_task

__all__ = ["Cluster", "setup_cluster", "shutdown_cluster", "cluster"]

APP_POLL_S = 0.5            # how often the driver looks whether the SparkContext stopped
HOSTS_POLL_S = 5.0          # how often it looks for executor hosts without a node
REGISTER_WAIT_S = 30.0      # the longest wait for the executors asked for (Spark's own, for resources)

_lock = threading.Lock()
_active: Cluster | None = None


@dataclass
class Cluster:
    """What setup_cluster started."""

    id: str
    address: str                       # the driver host's node (its unix socket)
    tcp: str                           # the same node over TCP, at the driver's address
    gossip: str = ""                   # its gossip address: other nodes --join it
    token: str = field(default="", repr=False)  # what every node of the cluster requires
    nodes: list[dict] = field(default_factory=list)  # {"host", "pid", "started"} per host
    _spark: object = None
    _start: object = None              # the executors' node-starting partition function
    _hosts: set = field(default_factory=set)  # executor hosts the start job has run for
    _stop: threading.Event = field(default_factory=threading.Event)

    def __repr__(self) -> str:
        return (f"Cluster(id={self.id!r}, address={self.address!r}, gossip={self.gossip!r}, "
                f"nodes={len(self.nodes)})")

    def connect(self):
        """A quiver Client of the driver host's node, with the cluster's token."""
        return connect(self.address, token=self.token)

    def status(self) -> dict:
        """cluster_status of the driver host's node: it, and every other node as its peer."""
        with self.connect() as c:
            return c.status()


def setup_cluster(spark, *, workers_per_node: int | None = None,
                  object_store_memory: int | None = None, driver_workers: bool = True,
                  timeout: float = 120.0, token: str | None = None) -> Cluster:
    """Start a node on the driver's host and on every executor's host, joined into one
    cluster; return the Cluster.

    workers_per_node: Python workers of each node (default: one per core of its host).
    object_store_memory: bytes of each node's object store (default: 30% of its host's memory).
    driver_workers: whether the driver's node runs Python workers (False: it serves
    objects and native functions only; the driver's host then has no Python workers).
    token: what the nodes require of clients and derive gossip's key from (default: a
    random one, ``Cluster.token``); it rests in each host's run directory as ``token``.
    """
    global _active
    sc = _spark_context(spark)
    if token is not None and (not token.strip() or token != token.strip()):
        raise ValueError("quiver: token must be non-empty and without surrounding whitespace")
    with _lock:
        if _active is not None:
            raise QuiverError(f"quiver: a cluster is already set up ({_active!r}); "
                              "call shutdown_cluster() first")
        cid = secrets.token_hex(8)
        token = token or secrets.token_urlsafe(32)
        base = _node_args(workers_per_node, object_store_memory)
        directory = run_dir()
        ip = ip_toward(_driver_host(sc))
        args = node_args(ip, directory, None, base if driver_workers else _no_workers(base))
        own = local.started_node()
        if own is not None and own["run_dir"] == directory:
            local.shutdown()  # quiver.connect()'s node for this process: the cluster's replaces it
        if not start_here(cid, directory, args, os.getpid(), token):
            raise QuiverError(f"quiver: a node that setup_cluster did not start serves {directory}; "
                              f"stop it first (quiver stop --run-dir {directory})")
        try:
            me = _self_status(directory, token)
            info = Cluster(id=cid, address=socket_address(directory), tcp="grpc://" + me["address"],
                           gossip=me["gossip"], token=token, _spark=spark)
            info.nodes.append({"host": socket.gethostname(), "pid": node_pid(directory), "started": True})
            info._start = start_task(cid, base, info.gossip, token)
            info.nodes += _start_on_executors(sc, info, timeout)
        except BaseException:
            stop_here(cid, directory)
            raise
        _active = info
    threading.Thread(target=_watch_app, args=(sc, info), name="quiver-cluster-watch",
                     daemon=True).start()
    hosts = len({n["host"] for n in info.nodes})
    print(f"quiver: cluster {cid} up: {hosts} host(s), gossip {info.gossip}; "
          f"status: quiver status --address {info.address}", file=sys.stderr)
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
            _on_executors(sc, stop_task(info.id))
        except Exception as e:  # an application that is going away: executors end their nodes
            print(f"quiver: stopping the executors' nodes: {e}", file=sys.stderr)
    stop_here(info.id, run_dir())


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


def _driver_host(sc) -> str:
    """The address executors reach the driver at (spark.driver.host, which Spark sets)."""
    return sc.getConf().get("spark.driver.host") or socket.gethostname()


def _self_status(directory: str, token: str) -> dict:
    """The driver's node as its status reports it (address, gossip)."""
    with connect(socket_address(directory), token=token) as c:
        me = c.status()["nodes"][0]
    if not me.get("gossip") or not me.get("address"):
        raise QuiverError(f"quiver: the node in {directory} reports no gossip or TCP address: {me}")
    return me


def _stopped(sc) -> bool:
    try:
        return bool(sc._jsc.sc().isStopped())
    except Exception:
        return True


def _watch_app(sc, info: Cluster) -> None:
    """Stop the driver's node once the SparkContext has stopped; start nodes on executor
    hosts that registered since."""
    next_hosts = time.monotonic() + HOSTS_POLL_S
    while not info._stop.wait(APP_POLL_S):
        if _stopped(sc):
            with _lock:
                global _active
                if _active is info:
                    _active = None
            stop_here(info.id, run_dir())
            return
        if time.monotonic() >= next_hosts:
            next_hosts = time.monotonic() + HOSTS_POLL_S
            _start_on_new_hosts(sc, info)


def _start_on_new_hosts(sc, info: Cluster) -> None:
    """Run the node-starting job again when an executor host registered since the last
    run (best effort: Spark places its tasks on free cores, likely the new executor's)."""
    try:
        hosts = _executor_hosts(sc)
        if hosts <= info._hosts or info._stop.is_set():
            return
        sc.setJobDescription("quiver: nodes on new executor hosts")
        found = _run_start(sc, info)
    except Exception as e:  # the application may be stopping; the next look tries again
        print(f"quiver: starting nodes on new executor hosts: {e}", file=sys.stderr)
        return
    info._hosts |= hosts
    known = {n["host"] for n in info.nodes}
    info.nodes += [n for n in found if n["host"] not in known]


def _executor_hosts(sc) -> set:
    """The hosts of the registered executors (less the driver's own entry)."""
    driver = sc.getConf().get("spark.driver.host")
    infos = sc._jsc.sc().statusTracker().getExecutorInfos()
    hosts = [i.host() for i in infos]
    if driver in hosts:
        hosts.remove(driver)  # the driver's block manager is listed as an executor
    return set(hosts)


def _start_on_executors(sc, info: Cluster, timeout: float) -> list[dict]:
    """One node-starting task per core of the application, once its executors have
    registered: Spark offers every free core at once, so each executor runs one."""
    if sc.master == "local" or sc.master.startswith("local["):
        return []  # the driver's node serves the one host
    _wait_for_executors(sc, timeout)
    info._hosts = _executor_hosts(sc)
    return _run_start(sc, info)


def _run_start(sc, info: Cluster) -> list[dict]:
    found: dict[str, dict] = {}
    for line in _on_executors(sc, info._start):
        rec = json.loads(line)
        if rec["host"] not in found or rec["started"]:
            found[rec["host"]] = rec
    return list(found.values())


def _wait_for_executors(sc, timeout: float) -> None:
    """Until the executors the application asked for have registered; when it names no
    count (or its count does not come within REGISTER_WAIT_S), until the registered ones
    have not changed for a second. Nodes on hosts that register later start from
    _watch_app."""
    deadline = time.monotonic() + timeout
    expected = expected_executors(sc.master, sc.getConf().get)
    settle = time.monotonic() + (min(REGISTER_WAIT_S, timeout) if expected else 0.0)
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # less the driver
        if expected and n >= expected:
            return
        if n != last:
            last, since = n, time.monotonic()
        elif n > 0 and time.monotonic() - since >= 1.0 and time.monotonic() >= settle:
            return
        time.sleep(0.1)
    if last <= 0:
        raise Unavailable(f"quiver: no Spark executor registered within {timeout:.0f} s")


def expected_executors(master: str, conf) -> int | None:
    """How many executors the application asked for, from its master URL and settings
    (conf: key -> value or None), or None when it names no count (dynamic allocation,
    or a standalone application without spark.cores.max)."""
    def number(key):
        try:
            return int(conf(key) or "")
        except ValueError:
            return None
    if (conf("spark.dynamicAllocation.enabled") or "").lower() == "true":
        return None
    instances = number("spark.executor.instances")
    if master.startswith("local-cluster["):
        return instances or int(master[len("local-cluster["):].split(",")[0])
    if instances:
        return instances
    cores_max, per_executor = number("spark.cores.max"), number("spark.executor.cores")
    if master.startswith("spark://") and cores_max and per_executor:
        return max(cores_max // per_executor, 1)
    return None


def _on_executors(sc, fn) -> list:
    """fn's output over one task per core of the application."""
    n = max(sc.defaultParallelism, 1)
    return sc.parallelize(range(n), n).mapPartitions(fn).collect()


def _node_args(workers: int | None, memory: int | None) -> list[str]:
    args = []
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
