"""One host's node of a setup_cluster cluster: start or stop it, its token file, the
address it serves and gossips on, and the functions Spark ships to executors to do so.

Both the driver and the executors' Python workers run these. A host has one node per
user (its run directory's): whoever takes the run directory's lock first starts it, the
others find it answering. The token travels in the task's closure (Spark ships it
inside the serialized task, never on a command line) and rests in the run directory's
user-only ``token`` file, where the node (``--token-file``), `quiver status` and the
Python client (quiver._wire.address.default_token) read it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys

from .._wire.address import TOKEN_NAME, run_dir, socket_address
from .._wire.local import STOP_TIMEOUT_S, answers, find_binary, host_lock, start_detached

__all__ = ["MARKER", "start_here", "stop_here", "node_pid", "write_token", "ip_toward", "node_args",
           "start_task", "stop_task"]

MARKER = "cluster.json"     # in a node's run directory: which cluster started it


def ip_toward(host: str) -> str:
    """This host's IPv4 address on its route to host ("127.0.0.1" when host is loopback):
    the address a node here serves and gossips on so that host's node reaches it."""
    try:
        ip = socket.gethostbyname(host)
    except OSError as e:
        raise OSError(f"quiver: cannot resolve {host!r}: {e}") from e
    if ipaddress.ip_address(ip).is_loopback:
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((ip, 9))  # a UDP connect sends nothing; it picks the route and source
        return s.getsockname()[0]


def node_args(ip: str, directory: str, join: str | None, base: list[str]) -> list[str]:
    """`quiver start` arguments of a cluster node serving and gossiping on ip (free ports),
    with the run directory's token, joining join's cluster when given."""
    args = ["--listen", f"{ip}:0", "--gossip", f"{ip}:0", "--token-file", os.path.join(directory, TOKEN_NAME)]
    if join:
        args += ["--join", join]
    return args + list(base)


def write_token(directory: str, token: str) -> None:
    """directory/token, user-only, replaced atomically (the directory is user-only too)."""
    path = os.path.join(directory, TOKEN_NAME)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def start_here(cid: str, directory: str, args: list[str], owner: int, token: str) -> bool:
    """Start this host's node for cluster cid unless one answers; True if started here."""
    address = socket_address(directory)
    with host_lock(directory):
        if answers(address):
            return False
        write_token(directory, token)
        start_detached(directory, [*args, "--python", sys.executable, "--watch-pid", str(owner)])
        with open(os.path.join(directory, MARKER), "w") as f:
            json.dump({"cluster": cid}, f)
    return True


def stop_here(cid: str, directory: str) -> None:
    """Stop this host's node if cluster cid started it, and remove its token file."""
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
        for name in (MARKER, TOKEN_NAME):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))


def node_pid(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, "quiver.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# The executors' side: functions Spark ships to its Python workers.

def start_task(cid: str, base: list[str], join: str, token: str):
    """A partition function that makes sure its host has this cluster's node: serving
    and gossiping on the host's address toward the driver, joining join."""
    def start(_rows):
        directory = run_dir()
        ip = ip_toward(join.rsplit(":", 1)[0].strip("[]"))
        started = start_here(cid, directory, node_args(ip, directory, join, base), _executor_pid(), token)
        yield json.dumps({"host": socket.gethostname(), "pid": node_pid(directory), "started": started})
    return start


def stop_task(cid: str):
    def stop(_rows):
        stop_here(cid, run_dir())
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
