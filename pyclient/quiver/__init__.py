"""Quiver's Python package: a client for the quiver node's Arrow Flight endpoint.

    import quiver
    client = quiver.connect()                  # $QUIVER_ADDRESS, the machine's node, or start one
    client.call("sha256_hex", batch)           # RecordBatch, Table or pandas DataFrame
    client.functions(); client.status(); client.health()

    fut = client.submit(fn, *args)             # tasks on the node's workers (quiver.tasks)
    client.map(fn, items); ref = client.put(obj); client.get(ref)
    ref = client.remote(fn, *args)             # the result kept on the node (quiver.lineage)
    quiver.get(ref)                            # in a UDF or task: a broadcast object, cached

    @pandas_udf("double")
    @quiver.accelerate                         # a pandas UDF's batches run on the node
    def f(x: pd.Series) -> pd.Series: ...

Errors from the node arrive as subclasses of quiver.QuiverError (see quiver.errors).
quiver.shutdown() stops the node that quiver.connect() started in this process.
"""

from .accelerate import accelerate
from .client import Client, Function, connect, default_socket, resolve_address
from .errors import (
    FunctionNotFound,
    InvalidArgument,
    ObjectLost,
    OverCapacity,
    QuiverError,
    Timeout,
    UDFError,
    Unauthenticated,
    Unavailable,
)
from .local import shutdown
from .objects import ObjectRef, get

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Function",
    "accelerate",
    "connect",
    "shutdown",
    "get",
    "ObjectRef",
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
    "ObjectLost",
]
