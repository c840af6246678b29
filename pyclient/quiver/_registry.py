"""Registering Python functions on a node: the blob, the register action, and what one
connection has registered already (so registering again costs nothing)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading

import pyarrow as pa

from . import _options
from ._wire.conn import Connection
from .types import to_arrow_type

__all__ = ["Registry"]


class Registry:
    """The Python functions registered over one connection. Safe to share between threads."""

    def __init__(self, conn: Connection):
        self.conn = conn
        # (name, blob id) -> the node's answer to register.
        self.registered: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def register(self, fn_or_class, name: str | None = None, returns=None,
                 kind: str | None = None, *, spark: dict | None = None) -> str:
        """Register fn_or_class as name (see Client.register); return the name."""
        import cloudpickle

        if not callable(fn_or_class):
            raise TypeError(f"quiver: register needs a function or a class, not {type(fn_or_class).__name__}")
        if returns is None:
            raise ValueError("quiver: register needs returns=, the result type: a Spark DDL string "
                             "such as 'double' or 'array<string>', or a pyarrow DataType")
        arrow_type = to_arrow_type(returns)
        if kind is None:
            kind = "class" if isinstance(fn_or_class, type) else "series"
        kind = _options.check("quiver", kind=kind)["kind"]
        if name is None:
            name = getattr(fn_or_class, "__name__", None)
            if not name or name == "<lambda>":
                raise ValueError("quiver: this function has no usable __name__; pass name=")
        blob = cloudpickle.dumps({"fn": fn_or_class, "kind": kind, "returns": arrow_type, "spark": spark})
        key = (name, hashlib.sha256(blob).hexdigest()[:32])
        with self._lock:
            if key in self.registered:
                return name
        header = {
            "name": name,
            "returns": base64.b64encode(pa.schema([pa.field("result", arrow_type)]).serialize()
                                        .to_pybytes()).decode(),
        }
        if kind == "table":  # the node answers its calls as a table function's
            header["table"] = True
        header = json.dumps(header).encode()
        answer = json.loads(self.conn.action("register", struct.pack("<I", len(header)) + header + blob))
        with self._lock:
            self._forget(name)
            self.registered[key] = answer
        return name

    def forget(self, name: str) -> None:
        """Forget that name is registered, so that register() sends it again."""
        with self._lock:
            self._forget(name)

    def _forget(self, name: str) -> None:
        for k in [k for k in self.registered if k[0] == name]:
            del self.registered[k]

    def drop(self, name: str) -> None:
        """Remove a registered function from the node (FunctionNotFound if there is none)."""
        self.forget(name)
        self.conn.action("drop", name.encode())
