"""The task context: Spark's TaskContext carried with a call, and read where the function runs.

In a Spark task, ``quiver.accelerate`` reads Spark's ``TaskContext`` and sends
it with each call as the header ``quiver-task-context`` (a JSON object, see
docs/protocol.md); the node hands it to its worker with each task, and the
worker makes it current for that task (``running``). There,

    quiver.task_context()          # the current quiver.TaskContext, or None
    pyspark.TaskContext.get()      # the same values, when pyspark is importable

answer as they would in Spark's own Python worker: partitionId(), stageId(),
attemptNumber(), taskAttemptId(), cpus(), getLocalProperty(key), resources().
Where the function runs in the Spark task itself, ``task_context()`` reads
Spark's. The worker and the driver side both use this module; it imports
nothing of quiver.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from typing import NamedTuple

__all__ = ["TaskContext", "ResourceInformation", "task_context", "from_spark", "headers",
           "header_value", "running", "HEADER"]

HEADER = b"quiver-task-context"
MAX_HEADER = 8 << 10  # bytes: well within gRPC's metadata limits and the node's 64 KiB

_FIELDS = ("stageId", "partitionId", "attemptNumber", "taskAttemptId", "cpus")


class ResourceInformation(NamedTuple):
    """A resource of the task (a GPU, ...): its name and addresses, as Spark's."""
    name: str
    addresses: list


class TaskContext:
    """The context of the Spark task that sent the call, with the methods of pyspark's."""

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        self._values = dict(values)

    @classmethod
    def get(cls) -> TaskContext | None:
        """The current task context (as pyspark.TaskContext.get()), or None outside a task."""
        return task_context()

    def stageId(self) -> int:
        return self._values.get("stageId")

    def partitionId(self) -> int:
        return self._values.get("partitionId")

    def attemptNumber(self) -> int:
        return self._values.get("attemptNumber")

    def taskAttemptId(self) -> int:
        return self._values.get("taskAttemptId")

    def cpus(self) -> int:
        return self._values.get("cpus")

    def getLocalProperty(self, key: str) -> str | None:
        return (self._values.get("localProperties") or {}).get(key)

    def resources(self) -> dict:
        return {k: ResourceInformation(v.get("name", k), list(v.get("addresses", ())))
                for k, v in (self._values.get("resources") or {}).items()}

    def as_dict(self) -> dict:
        """The values as they travel (JSON-ready)."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"quiver.TaskContext({self._values!r})"


_current: TaskContext | None = None


def task_context() -> TaskContext | None:
    """The current task's context: the one a call carried to this worker, else Spark's own
    when this runs in a Spark task, else None."""
    if _current is not None:
        return _current
    values = from_spark()
    return TaskContext(values) if values is not None else None


def from_spark() -> dict | None:
    """Spark's current TaskContext as JSON-ready values, or None (no Spark task here).

    Reads pyspark only when it is loaded already: a process without a Spark task
    never imports it for this."""
    mod = sys.modules.get("pyspark.taskcontext")
    tc = mod.TaskContext.get() if mod is not None else None
    if tc is None or isinstance(tc, _SparkView):
        return None
    values = {k: getattr(tc, f"_{k}", None) for k in _FIELDS}
    values["localProperties"] = dict(getattr(tc, "_localProperties", None) or {})
    resources = getattr(tc, "_resources", None) or {}
    values["resources"] = {k: {"name": r.name, "addresses": list(r.addresses)} for k, r in resources.items()}
    return values


def headers() -> tuple:
    """The call's task context header, ((HEADER, value),), when this runs in a Spark task;
    else (). Past MAX_HEADER bytes the largest local properties are left out (Spark's
    callSite.long can be a stack trace): the call must not fail for them."""
    values = from_spark()
    if values is None:
        return ()
    value = header_value(values)
    props = values["localProperties"]
    for key in sorted(props, key=lambda k: len(str(props[k])), reverse=True):
        if len(value) <= MAX_HEADER:
            break
        del props[key]
        value = header_value(values)
    return ((HEADER, value),)


def header_value(values: dict) -> bytes:
    """The header's value: compact JSON, ASCII only (gRPC metadata is ASCII)."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=True, default=str).encode()


# pyspark's TaskContext in a node worker: a subclass whose getters read our values.

_SparkView = type("_SparkViewUnset", (), {})  # replaced by the subclass once pyspark is loaded
_pyspark_state: list = []  # [pyspark TaskContext class or None], once looked up


def _pyspark_task_context():
    """pyspark's TaskContext class when pyspark can be imported here, else None (once)."""
    if not _pyspark_state:
        cls = None
        try:
            if importlib.util.find_spec("pyspark") is not None:
                import pyspark.taskcontext
                cls = pyspark.taskcontext.TaskContext
        except Exception:  # noqa: BLE001  (a broken pyspark install: quiver's own context still works)
            cls = None
        _pyspark_state.append(cls)
    return _pyspark_state[0]


def _spark_view(values: dict):
    """A pyspark TaskContext holding values, made without its singleton constructor."""
    global _SparkView
    cls = _pyspark_task_context()
    if cls is None:
        return None
    if not issubclass(_SparkView, cls):
        _SparkView = type("TaskContext", (cls,), {"__module__": cls.__module__})
    view = object.__new__(_SparkView)
    for k in _FIELDS:
        setattr(view, f"_{k}", values.get(k))
    view._localProperties = dict(values.get("localProperties") or {})
    try:
        from pyspark.resource.information import ResourceInformation as SparkResource
        view._resources = {k: SparkResource(v.get("name", k), list(v.get("addresses", ())))
                           for k, v in (values.get("resources") or {}).items()}
    except Exception:  # noqa: BLE001
        view._resources = {}
    return view


@contextlib.contextmanager
def running(values: dict | None):
    """Make values the current task context for the body (no-op for None): quiver's, and
    pyspark's TaskContext.get() when pyspark is importable in this process."""
    global _current
    if not isinstance(values, dict):
        yield
        return
    previous = _current
    _current = TaskContext(values)
    view = _spark_view(values)
    cls = _pyspark_task_context() if view is not None else None
    saved = cls._taskContext if cls is not None else None
    if cls is not None:
        cls._taskContext = view
    try:
        yield
    finally:
        _current = previous
        if cls is not None:
            cls._taskContext = saved
