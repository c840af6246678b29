"""Registering Python functions on a node: the blob, the register action, the argument
types the catalog advertises, and what one connection has registered already (so
registering again costs nothing)."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import struct
import threading

import pyarrow as pa

from . import _options
from ._wire.conn import Connection
from .types import to_arrow_type

__all__ = ["Registry", "arg_fields"]


class Registry:
    """The Python functions registered over one connection. Safe to share between threads."""

    def __init__(self, conn: Connection):
        self.conn = conn
        # (name, blob id) -> the node's answer to register.
        self.registered: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def register(self, fn_or_class, name: str | None = None, returns=None,
                 kind: str | None = None, *, spark: dict | None = None,
                 args: list[pa.Field] | None = None, concurrency: int | None = None) -> str:
        """Register fn_or_class as name (see Client.register); return the name. args are
        the declared argument fields (arg_fields), None for none; concurrency the rows
        each worker runs at once (None: one)."""
        import cloudpickle

        if not callable(fn_or_class):
            raise TypeError(f"quiver: register needs a function or a class, not {type(fn_or_class).__name__}")
        if returns is None:
            raise ValueError("quiver: register needs returns=, the result type: a Spark DDL string "
                             "such as 'double' or 'array<string>', or a pyarrow DataType")
        arrow_type = to_arrow_type(returns)
        if kind is None:
            kind = "class" if isinstance(fn_or_class, type) else "series"
        checked = _options.check("quiver", kind=kind, concurrency=concurrency)
        kind, concurrency = checked["kind"], checked["concurrency"] or 1
        if concurrency > 1 and kind == "table":
            raise ValueError("quiver: a table function runs one task at a time; concurrency must be 1")
        if name is None:
            name = getattr(fn_or_class, "__name__", None)
            if not name or name == "<lambda>":
                raise ValueError("quiver: this function has no usable __name__; pass name=")
        args_schema = None if args is None else pa.schema(args).serialize().to_pybytes()
        spec = {"fn": fn_or_class, "kind": kind, "returns": arrow_type, "spark": spark, "args": args_schema}
        if concurrency > 1:  # another function: workers keep loaded functions by content
            spec["concurrency"] = concurrency
        blob = cloudpickle.dumps(spec)
        key = (name, hashlib.sha256(blob).hexdigest()[:32])
        with self._lock:
            if key in self.registered:
                return name
        header = {
            "name": name,
            "returns": base64.b64encode(pa.schema([pa.field("result", arrow_type)]).serialize()
                                        .to_pybytes()).decode(),
        }
        if args_schema is not None:
            header["args"] = base64.b64encode(args_schema).decode()
        if kind == "table":  # the node answers its calls as a table function's
            header["table"] = True
        if concurrency > 1:  # the node counts its slots by it, and tells the workers
            header["concurrency"] = concurrency
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


def arg_fields(fn, args) -> list[pa.Field] | None:
    """The declared arguments of fn as Arrow fields, or None (not declared).

    args: a list of types (Spark DDL strings, pyarrow or pyspark types) or a dict of
    name -> type; [] is a function of no arguments. Without args, fn's parameter
    annotations declare them when every parameter has one that names a type
    (a pyarrow or pyspark DataType, or a Spark DDL string such as "double" or
    "array<string>"; Python classes such as pd.Series declare nothing). Fields are named after
    the parameters where their number matches, else _0, _1, ...
    """
    params = _parameters(fn)
    if args is None:
        if not params:
            return None
        target = fn.__call__ if isinstance(fn, type) else fn
        hints = [_hint_type(target, p.annotation) for p in params]
        if any(h is None for h in hints):
            return None
        return [pa.field(p.name, h) for p, h in zip(params, hints)]
    if isinstance(args, dict):
        items = list(args.items())
    elif isinstance(args, (list, tuple)):
        names = [p.name for p in params] if len(params) == len(args) else [f"_{i}" for i in range(len(args))]
        items = list(zip(names, args))
    else:
        raise TypeError(f"quiver: args must be a list of types or a dict of name -> type, "
                        f"not {type(args).__name__}")
    return [pa.field(str(n), to_arrow_type(t)) for n, t in items]


def _parameters(fn) -> list[inspect.Parameter]:
    """fn's positional parameters (a class's __call__ without self); [] when unknown or
    when it takes *args."""
    target = fn.__call__ if isinstance(fn, type) else fn
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    if isinstance(fn, type):
        params = params[1:]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return []
    return params


def _hint_type(fn, annotation) -> pa.DataType | None:
    """The Arrow type an annotation names, or None (no annotation, or not a type name).

    A string annotation (``from __future__ import annotations`` makes them all
    strings) is evaluated in fn's module as typing does; one that names nothing
    there is Spark DDL ("double")."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, getattr(inspect.unwrap(fn), "__globals__", {}))  # noqa: S307
        except Exception:  # noqa: BLE001  (not Python: DDL, checked below)
            pass
    if not isinstance(annotation, (str, pa.DataType)) and \
            not type(annotation).__module__.startswith("pyspark."):
        return None  # a class (pd.Series, int) or another object
    try:
        return to_arrow_type(annotation)
    except (TypeError, ValueError):
        return None
