"""Quiver's Python package: a client for the quiver node's Arrow Flight endpoint.

    import quiver
    client = quiver.connect()                  # or connect("grpc://host:8815", token=...)
    client.call("sha256_hex", batch)           # RecordBatch, Table or pandas DataFrame
    client.functions(); client.status(); client.health()

Errors from the node arrive as subclasses of quiver.QuiverError (see quiver.errors).
"""

from .client import Client, Function, connect, default_socket, resolve_address
from .errors import (
    FunctionNotFound,
    InvalidArgument,
    OverCapacity,
    QuiverError,
    Timeout,
    UDFError,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Function",
    "connect",
    "default_socket",
    "resolve_address",
    "QuiverError",
    "FunctionNotFound",
    "InvalidArgument",
    "UDFError",
    "Unavailable",
    "Unauthenticated",
    "OverCapacity",
    "Timeout",
]
