"""quiver._retry, table-tested without a node: what the client does again after a
failure, and what it leaves to the node's retry budget."""

from __future__ import annotations

import pytest

from quiver import _retry
from quiver.errors import FunctionNotFound, InvalidArgument, UDFError, Unavailable
from quiver.objects import ObjectRef

R = _retry

# (error, tasks in the request, is a put, already re-registered, already resent) -> step
CASES = [
    (FunctionNotFound("gone"), 1, False, False, False, R.REREGISTER),
    (FunctionNotFound("gone"), 5, False, False, False, R.REREGISTER),
    (FunctionNotFound("gone"), 1, False, True, False, R.FAIL),      # once only
    (FunctionNotFound("gone"), 5, False, True, False, R.SPLIT),
    (FunctionNotFound("gone"), 1, True, False, False, R.FAIL),      # a put registers nothing
    (Unavailable("draining"), 1, False, False, False, R.RESEND),
    (Unavailable("draining"), 1, False, False, True, R.FAIL),       # once only
    (Unavailable("draining"), 3, False, False, False, R.SPLIT),     # each alone first
    (UDFError("ValueError: boom"), 1, False, False, False, R.FAIL),  # the function raised
    (UDFError("ValueError: boom"), 4, False, False, False, R.SPLIT),  # find which one did
    (InvalidArgument("bad type"), 1, False, False, False, R.FAIL),
    (RuntimeError("anything else"), 1, False, False, False, R.FAIL),
]


@pytest.mark.parametrize("err,tasks,is_put,reregistered,resent,want", CASES)
def test_after_failure(err, tasks, is_put, reregistered, resent, want):
    got = R.after_failure(err, tasks=tasks, is_put=is_put, reregistered=reregistered, resent=resent)
    assert got == want


def _ref(oid: str, lineage):
    r = ObjectRef(oid, "pickle", "grpc+unix:///nowhere")
    r._lineage = lineage
    return r


def test_lost_argument_names_the_ref_with_lineage():
    made, put = _ref("a" * 32, lineage=object()), _ref("b" * 32, lineage=None)
    e = UDFError("ObjectLost")
    e.remote_object_id = made.id
    assert R.lost_argument([put, made], e) is made
    e.remote_object_id = put.id           # a put object cannot be made again
    assert R.lost_argument([put, made], e) is None
    e.remote_object_id = "c" * 32         # not an argument of this task
    assert R.lost_argument([put, made], e) is None
    assert R.lost_argument([put, made], UDFError("no object named")) is None
