"""Every option of quiver's Python entry points: its name, default, check and header.

accelerate(...), Client.call, Client.register, Client.options and the task
API read option values through ``check`` (once: at decoration, registration
or when the options object is made, never per batch or per row), and turn
the call options into gRPC headers with ``call_headers``.

    option         default   check                         travels as
    rows_per_task  None      an integer, at least 1        quiver-rows-per-task
    retries        3         an integer from 0 to 100      quiver-retries
    on_error       "raise"   "raise" or "null"             quiver-on-error
    timeout        None      seconds, more than 0          quiver-timeout-ms (and the gRPC deadline)
    fallback       "local"   "local" or "error"            (accelerate only)
    concurrency    None      an integer from 1 to 1024     the register header's "concurrency"
                             (rows a worker runs at once,  (and the blob's, so that it
                             for functions that wait)      is another function)
    table_function None      True or False                 quiver-table-function (1 or 0)
    kind           None      series, iterator, arrow,      the registered blob's "kind"
                             class, task or table

None means "not set": the node's default applies (the same as the default
above, for the options the node reads).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple

__all__ = ["OPTIONS", "KINDS", "CALL_OPTIONS", "check", "call_headers", "default"]

KINDS = ("series", "iterator", "arrow", "class", "task", "table")


class Option(NamedTuple):
    default: Any
    check: Callable[[Any], Any]          # the value normalized; raises ValueError(what is allowed)
    header: bytes | None = None          # its gRPC header, for the options a call sends
    encode: Callable[[Any], bytes] | None = None


def _integer(low: int, high: int | None = None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low \
                or (high is not None and v > high):
            raise ValueError("an integer, at least 1" if high is None and low == 1
                             else f"an integer from {low} to {high}")
        return int(v)
    return check


def _one_of(*allowed: str):
    def check(v):
        if v not in allowed:
            raise ValueError(" or ".join(repr(a) for a in allowed) if len(allowed) < 3
                             else "one of " + ", ".join(allowed))
        return v
    return check


def _boolean(v):
    if not isinstance(v, bool):
        raise ValueError("True or False")
    return v


def _positive(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
        raise ValueError("a positive number of seconds")
    return v


OPTIONS: dict[str, Option] = {
    "rows_per_task": Option(None, _integer(1), b"quiver-rows-per-task", lambda v: str(v).encode()),
    "retries": Option(3, _integer(0, 100), b"quiver-retries", lambda v: str(v).encode()),
    "on_error": Option("raise", _one_of("raise", "null"), b"quiver-on-error", str.encode),
    "timeout": Option(None, _positive, b"quiver-timeout-ms",
                      lambda v: str(max(1, math.ceil(v * 1000))).encode()),
    "table_function": Option(None, _boolean, b"quiver-table-function", lambda v: b"1" if v else b"0"),
    "fallback": Option("local", _one_of("local", "error")),
    "concurrency": Option(None, _integer(1, 1024)),
    "kind": Option(None, _one_of(*KINDS)),
}

# The options a call sends to the node as headers, in header order.
CALL_OPTIONS = ("rows_per_task", "retries", "on_error", "timeout", "table_function")


def default(name: str):
    return OPTIONS[name].default


def check(where: str, **values) -> dict:
    """The values checked and normalized (None stays None: not set); ValueError
    naming the option and what it allows, prefixed by where ("quiver", ...)."""
    out = {}
    for name, value in values.items():
        if value is not None:
            try:
                value = OPTIONS[name].check(value)
            except ValueError as e:
                raise ValueError(f"{where}: {name} must be {e}, not {value!r}") from None
        out[name] = value
    return out


def call_headers(values: dict) -> tuple[tuple[bytes, bytes], ...]:
    """The gRPC headers of checked call options (those set)."""
    headers = []
    for name in CALL_OPTIONS:
        value = values.get(name)
        if value is not None:
            opt = OPTIONS[name]
            headers.append((opt.header, opt.encode(value)))
    return tuple(headers)
