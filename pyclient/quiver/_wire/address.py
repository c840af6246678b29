"""Where a node is: the run directory, the default socket and address resolution."""

from __future__ import annotations

import os
import stat

__all__ = ["DEFAULT_TCP_ADDRESS", "SOCKET_NAME", "TOKEN_NAME", "run_dir", "socket_address", "default_socket",
           "resolve_address", "default_token", "token_file"]

DEFAULT_TCP_ADDRESS = "grpc://127.0.0.1:8815"
SOCKET_NAME = "quiver.sock"
TOKEN_NAME = "token"   # beside a node's socket: the token its clients send (user-only)


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


def token_file(address: str | None = None) -> str | None:
    """The token file that goes with address (None: $QUIVER_ADDRESS, else the default
    socket): ``token`` beside a unix socket; None for a TCP address, whose token must be
    given (a token read from this machine is never sent over the network unasked)."""
    location = resolve_address(address)
    if not location.startswith("grpc+unix://"):
        return None
    return os.path.join(os.path.dirname(location.removeprefix("grpc+unix://")), TOKEN_NAME)


def default_token(address: str | None = None) -> str | None:
    """The token to send to address when none is given: $QUIVER_TOKEN, else the token
    file beside the node's unix socket (what quiver.spark.setup_cluster, the Databricks init
    script and `quiver start --token-file RUN_DIR/token` leave there), if this user owns it
    and nobody else may read it; else None."""
    token = os.environ.get("QUIVER_TOKEN")
    if token:
        return token
    path = token_file(address)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        return f.read().strip() or None
