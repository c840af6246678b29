"""accelerate's view of the nodes it sends batches to: this process's state per
(address, token, pid) (whether the node answers), over the process's shared
connection to it (quiver._wire.conn.shared), and the once-per-process warning
when batches run here because none answers."""

from __future__ import annotations

import os
import threading
import warnings

from .._registry import Registry
from .._wire import local
from .._wire.address import default_token, run_dir
from .._wire.conn import Connection, forget, shared
from ..errors import Unavailable
from . import policy

__all__ = ["_Node", "_node_for", "_warn_fallback"]


class _Node:
    """A node as this process sees it: its connection, while it answers."""

    def __init__(self, address: str | None, token: str | None):
        self.address = address
        self.token = token
        self.conn: Connection | None = None
        self.functions: Registry | None = None
        self.state = policy.NodeState()

    def get(self) -> Connection | None:
        """The connection, connecting (or starting a node) if needed; None while down."""
        step = self.state.next()
        if step == policy.SKIP:
            return None
        if step == policy.REPROBE and self.conn is not None:
            forget(self.conn)  # the next one is a fresh channel
            self.conn = self.functions = None
        if self.conn is None:
            conn = None
            try:
                conn = shared(self.address or local.ensure_node(self.token), self.token)
                conn.action("health")  # connecting is lazy: find out now, before any work
            except Unavailable as e:
                if conn is not None:
                    forget(conn)
                self.mark_down(e)
                return None
            self.conn, self.functions = conn, Registry(conn)
        return self.conn

    def mark_down(self, err: Exception) -> None:
        self.state.mark_down(str(getattr(err, "message", err)) or type(err).__name__)

    @property
    def down(self) -> str | None:
        return self.state.down

    def where(self) -> str:
        if self.conn is not None:
            return self.conn.address
        return self.address or os.environ.get("QUIVER_ADDRESS") or "the local node"


_nodes: dict[tuple, _Node] = {}
_nodes_lock = threading.Lock()
_warned_fallback = False


def _node_for(opts: _Options) -> _Node:
    address = opts.address or os.environ.get("QUIVER_ADDRESS") or None
    token = opts.token or default_token(address)
    key = (address or ("default", run_dir()), token, os.getpid())
    with _nodes_lock:
        node = _nodes.get(key)
        if node is None:
            node = _nodes[key] = _Node(address, token)
        return node


def _warn_fallback(node: _Node, fn_name: str) -> None:
    global _warned_fallback
    if _warned_fallback:
        return
    _warned_fallback = True
    warnings.warn(f"quiver.accelerate: no quiver node reachable at {node.where()} ({node.down}); "
                  f"running {fn_name} in this process. Start a node (`quiver start`), set "
                  "QUIVER_ADDRESS, or pass fallback='error' to fail instead. "
                  "(Warned once per process.)", RuntimeWarning, stacklevel=4)


