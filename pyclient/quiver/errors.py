"""Quiver's exceptions, and the one place that maps pyarrow's Flight errors to them.

The node reports failures as gRPC status codes (see DESIGN.md, "Errors"); pyarrow
turns each code into one of its own exception classes. `translate` maps those
back to the classes below, keeps the node's message (without pyarrow's framing)
and chains the original exception as ``__cause__``.

    gRPC code           pyarrow raises                     quiver raises
    NOT_FOUND           pyarrow.ArrowKeyError              FunctionNotFound
    INVALID_ARGUMENT    pyarrow.ArrowInvalid               InvalidArgument
    RESOURCE_EXHAUSTED  pyarrow.ArrowInvalid (*)           OverCapacity
    INTERNAL            flight.FlightInternalError         UDFError
    UNAVAILABLE         flight.FlightUnavailableError      Unavailable
    UNAUTHENTICATED     flight.FlightUnauthenticatedError  Unauthenticated
    PERMISSION_DENIED   flight.FlightUnauthorizedError     Unauthenticated
    DEADLINE_EXCEEDED   flight.FlightTimedOutError         Timeout

(*) pyarrow gives RESOURCE_EXHAUSTED no class of its own: it raises ArrowInvalid
with a fixed prefix, "gRPC returned resource exhausted error", which is the only
way to tell it from INVALID_ARGUMENT.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import pyarrow as pa
import pyarrow.flight as flight

__all__ = [
    "QuiverError",
    "FunctionNotFound",
    "InvalidArgument",
    "UDFError",
    "Unavailable",
    "Unauthenticated",
    "OverCapacity",
    "Timeout",
    "ObjectLost",
    "translate",
    "from_code",
    "mapped_errors",
]


class QuiverError(Exception):
    """Base class of every error the quiver client raises.

    ``message`` is the node's own message, without pyarrow's framing.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class FunctionNotFound(QuiverError):
    """No function of that name is registered on the node (NOT_FOUND)."""


class InvalidArgument(QuiverError):
    """Wrong arity or types, a rejected value, or malformed input (INVALID_ARGUMENT)."""


class UDFError(QuiverError):
    """The function failed while running (INTERNAL)."""


class Unavailable(QuiverError):
    """The node cannot be reached or is draining (UNAVAILABLE); retry elsewhere or later."""


class Unauthenticated(QuiverError):
    """The token is missing or wrong (UNAUTHENTICATED, PERMISSION_DENIED)."""


class OverCapacity(QuiverError):
    """The node is over capacity (RESOURCE_EXHAUSTED); back off and retry."""


class Timeout(QuiverError):
    """The call ran past its deadline (DEADLINE_EXCEEDED)."""


class ObjectLost(QuiverError):
    """The node does not hold this object (NOT_FOUND on DoGet or object_release):
    it was released, or lost with a node that stopped. ``object_id`` names it."""

    def __init__(self, message: str, object_id: str | None = None):
        super().__init__(message)
        self.object_id = object_id


_RESOURCE_EXHAUSTED_PREFIX = "gRPC returned resource exhausted error"

# pyarrow frames the node's message as "<what pyarrow saw>, with message: <node's
# message>" and, for streams, appends ". gRPC client debug context: ...".
_FRAMED = re.compile(
    r"^(?:Flight returned [\w -]+ error|gRPC returned [\w -]+ error|"
    r"Flight RPC failed|Flight cancelled call),? with message: (?P<msg>.*?)"
    r"(?:\. gRPC client debug context: .*)?$",
    re.DOTALL,
)


def _node_message(exc: BaseException) -> str:
    text = str(exc)
    m = _FRAMED.match(text)
    return m.group("msg") if m else text


def translate(exc: BaseException) -> QuiverError:
    """Return the QuiverError for a pyarrow exception (QuiverError for anything unknown)."""
    msg = _node_message(exc)
    if isinstance(exc, QuiverError):
        return exc
    if isinstance(exc, (flight.FlightUnauthenticatedError, flight.FlightUnauthorizedError)):
        return Unauthenticated(msg)
    if isinstance(exc, flight.FlightTimedOutError):
        return Timeout(msg)
    if isinstance(exc, flight.FlightUnavailableError):
        return Unavailable(msg)
    if isinstance(exc, flight.FlightInternalError):
        return UDFError(msg)
    if isinstance(exc, pa.ArrowKeyError):
        return FunctionNotFound(msg)
    if isinstance(exc, pa.ArrowInvalid):
        if str(exc).startswith(_RESOURCE_EXHAUSTED_PREFIX):
            return OverCapacity(msg)
        return InvalidArgument(msg)
    return QuiverError(msg)


_BY_CODE = {
    "NotFound": FunctionNotFound,
    "InvalidArgument": InvalidArgument,
    "ResourceExhausted": OverCapacity,
    "Internal": UDFError,
    "Unavailable": Unavailable,
    "Unauthenticated": Unauthenticated,
    "PermissionDenied": Unauthenticated,
    "DeadlineExceeded": Timeout,
}


def from_code(code: str, message: str) -> QuiverError:
    """The QuiverError for a gRPC status code name (a session answer's error.code);
    QuiverError for codes without a class of their own."""
    return _BY_CODE.get(code, QuiverError)(message)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Re-raise pyarrow and Flight exceptions raised inside as QuiverErrors."""
    try:
        yield
    except (pa.ArrowException, flight.FlightError) as e:
        raise translate(e) from e
