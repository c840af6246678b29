"""Where a node is: the run directory, the default socket and address resolution."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_TCP_ADDRESS", "SOCKET_NAME", "run_dir", "socket_address", "default_socket", "resolve_address"]

DEFAULT_TCP_ADDRESS = "grpc://127.0.0.1:8815"
SOCKET_NAME = "quiver.sock"


def run_dir() -> str:
    """The default run directory, as the node computes it: $QUIVER_RUN_DIR, else
    $XDG_RUNTIME_DIR/quiver, else /tmp/quiver-<uid>."""
    d = os.environ.get("QUIVER_RUN_DIR")
    if not d and os.environ.get("XDG_RUNTIME_DIR"):
        d = os.path.join(os.environ["XDG_RUNTIME_DIR"], "quiver")
    return d or f"/tmp/quiver-{os.getuid()}"


def socket_address(directory: str) -> str:
    """The Flight location of the node serving the run directory `directory`."""
    return "grpc+unix://" + os.path.join(directory, SOCKET_NAME)


def default_socket() -> str:
    """The node's default unix socket: quiver.sock in the default run directory."""
    return os.path.join(run_dir(), SOCKET_NAME)


def resolve_address(address: str | None = None) -> str:
    """Turn an address (or None) into a Flight location string.

    None means $QUIVER_ADDRESS, else the default socket if it exists, else
    grpc://127.0.0.1:8815. A bare socket path or host:port gets its scheme added.
    """
    if address is None:
        address = os.environ.get("QUIVER_ADDRESS")
    if not address:
        sock = default_socket()
        return f"grpc+unix://{sock}" if os.path.exists(sock) else DEFAULT_TCP_ADDRESS
    if address.startswith("grpc"):
        return address
    if address.startswith("/"):
        return f"grpc+unix://{address}"
    return f"grpc://{address}"
