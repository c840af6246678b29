"""Quiver's Python package: a client for the quiver node's Arrow Flight endpoint.

    import quiver
    client = quiver.connect()                  # $QUIVER_ADDRESS, the machine's node, or start one
    client.call("sha256_hex", batch)           # RecordBatch, Table or pandas DataFrame
    client.functions(); client.status(); client.health()

    fut = client.submit(fn, *args)             # tasks on the node's workers (quiver.tasks)
    client.map(fn, items); ref = client.put(obj); client.get(ref)
    ref = client.remote(fn, *args)             # the result kept on the node (quiver.lineage)
    quiver.get(ref)                            # in a UDF or a task: a broadcast object, cached
    quiver.task_context()                      # in a function run for a Spark task: its TaskContext

    @pandas_udf("double")
    @quiver.accelerate                         # a pandas UDF's batches run on the node
    def f(x: pd.Series) -> pd.Series: ...

Errors from the node arrive as subclasses of quiver.QuiverError (see quiver.errors).
quiver.shutdown() stops the node that quiver.connect() started in this process.

Layers. Imports point down this list, never up (pyclient/tests/test_layers.py
checks it, function-level imports included):

    spark                   quiver.spark: grouped map and grouped aggregate helpers
                            that run a partition's groups in parallel on the node
    _accel                  quiver.accelerate: the decorator, the nodes it uses, result-type
                            inference, forms, and its pure policy (conversion is _convert)
    client                  the Client facade: options checked, work handed down
    lineage                 objects made by tasks, made again when lost
    tasks                   submit/map: the dispatcher over the session
    objects, _registry      ObjectRef, quiver.get and its cache; registering functions
    _wire                   address and run directory, the Connection (auth, call
                            options, calls, actions, session), shared memory, the one
                            per-process connection cache, the on-demand local node
    worker                  ``python -m quiver.worker``: the node's Python workers
    _rows                   a Spark row UDF's rows run with Spark's conversions (the
                            node's workers unpickle it; it imports pyspark)
    _taskrows, _convert,    leaves that both the worker and the driver side use:
    _taskcontext, types,    running task rows, pandas <-> Arrow, the task context,
    _util, _options,        Spark types, traceback trimming and joining parts, the
    _retry, errors          option table, the retry rule, the exceptions

The worker imports only the leaves; so that ``python -m quiver.worker`` loads
no driver code, this module imports its public names lazily, on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Client": "client",
    "Function": "client",
    "connect": "client",
    "default_socket": "client",
    "resolve_address": "client",
    "accelerate": "_accel.decorator",
    "shutdown": "_wire.local",
    "get": "objects",
    "ObjectRef": "objects",
    "QuiverError": "errors",
    "FunctionNotFound": "errors",
    "InvalidArgument": "errors",
    "UDFError": "errors",
    "Unavailable": "errors",
    "Unauthenticated": "errors",
    "OverCapacity": "errors",
    "Timeout": "errors",
    "ObjectLost": "errors",
    "TaskContext": "_taskcontext",
    "task_context": "_taskcontext",
}

# Modules that ``quiver.<name>`` reaches without importing them first.
_MODULES = {"client", "errors", "lineage", "objects", "spark", "tasks", "types"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'quiver' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
