"""What the client does again after a failure, and what it leaves to the node's retry budget.

The retry budget (the ``retries`` option, quiver-retries) is spent on the
node: a task whose worker died runs again there, at most that often. The
client never spends it; it redoes a request only where the node cannot have
run the work, or runs it again under rules of its own, all decided here:

    the node forgot the function (FunctionNotFound: it restarted)   register again, once
    a request of several tasks failed as a whole                    each task alone, once
    the session broke under a lone request (Unavailable)            send again, once
    a task failed because an argument object was lost               make the object again
                                                                    (quiver.lineage), once
                                                                    per object, then retry
    a chain of lost objects deeper than MAX_RECOMPUTE_DEPTH         fail (ObjectLost)

A function that raised (UDFError), a type error, an exhausted retry budget
and anything else fail the task.
"""

from __future__ import annotations

from .errors import FunctionNotFound, Unavailable

__all__ = ["REREGISTER", "SPLIT", "RESEND", "FAIL", "after_failure", "lost_argument",
           "MAX_RECOMPUTE_DEPTH"]

REREGISTER, SPLIT, RESEND, FAIL = "reregister", "split", "resend", "fail"
MAX_RECOMPUTE_DEPTH = 32


def after_failure(e: Exception, *, tasks: int, is_put: bool, reregistered: bool, resent: bool) -> str:
    """What to do with a request of `tasks` tasks that failed as a whole with e."""
    if isinstance(e, FunctionNotFound) and not is_put and not reregistered:
        return REREGISTER
    if tasks > 1:
        return SPLIT
    if isinstance(e, Unavailable) and not resent:
        return RESEND
    return FAIL


def lost_argument(refs: list, e) -> object | None:
    """The ref among refs that a task's failure e says was lost, if it can be made
    again (it has lineage); None otherwise."""
    lost = getattr(e, "remote_object_id", None)
    if lost is None:
        return None
    for r in refs:
        if r.id == lost and r._lineage is not None:
            return r
    return None
