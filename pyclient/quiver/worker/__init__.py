"""The Python worker a quiver node runs: ``python -m quiver.worker``.

It speaks docs/worker-protocol.md on file descriptor 3 (one end of a unix
socketpair the node made): READY first, then LOAD (a registered blob) and TASK
(an Arrow IPC stream of arguments) from the node, answered by RESULT (an IPC
stream of one column, "result", of the registered type) or ERROR (the
exception's type, message and traceback). It serves one task at a time and
exits when fd 3 closes or on SHUTDOWN. Standard output and error stay the
worker's own: whatever user code prints goes to the node's log, never into the
protocol.

The IPC streams live in the arena where they can: shared memory the node passes
as file descriptor 4 and names by [offset, length] in the frame headers. The
arguments are read from it without a copy; the result is written into it after
them when it fits, else sent in the RESULT body. Arguments that user code still
holds after its task ("pinned") are reported to the node, which then leaves the
arena alone until they are let go.

The blob is the cloudpickle of {"fn", "kind", "returns", "spark"}; the kinds:

    series     fn(*series) -> Series (a DataFrame for a struct result); struct
               arguments arrive as DataFrames
    iterator   fn(iterator) -> iterator of Series; the input yields one item,
               a Series (one argument) or a tuple of Series
    arrow      fn(*pyarrow.Array) -> pyarrow.Array; no pandas at all
    class      fn is a class: fn() once per worker at its first task, then
               instance(*series) per task
    table      fn(*pyarrow.Array) -> (row indices, values), or a RecordBatch whose
               first two columns they are: any number of output rows, each tied
               to the argument row it came from (quiver.worker._table; the node
               checks the indices); the node registered it as a table function
    task       Client.submit/map (quiver.tasks, quiver._taskrows): one large_binary argument whose
               rows are pickled (args, kwargs); fn(*args, **kwargs) once per
               row, ObjectRef arguments resolved; one large_binary result row
               per input row, the pickled ("ok", value) or ("err", ...): a task
               that raises fails its own row, never the call

Arguments and results convert with quiver._convert, the same functions the
accelerate wrapper uses, so the function sees what Spark would hand it.

This package is the worker side only: it imports quiver's leaf modules
(errors, types, _convert, _options, _util, _taskrows) and none of the
driver side (the Client, the session, tasks, lineage, accelerate); the
layering test in pyclient/tests checks it.
"""

from ._runtime import (
    ARENA_FD,
    CONTROL_FD,
    ERROR,
    KINDS,
    LOAD,
    READY,
    RESULT,
    SHUTDOWN,
    TASK,
    ProtocolError,
    Worker,
    load_blob,
    main,
)

__all__ = ["Worker", "ProtocolError", "load_blob", "main", "KINDS", "LOAD", "TASK", "SHUTDOWN",
           "READY", "RESULT", "ERROR", "CONTROL_FD", "ARENA_FD"]
