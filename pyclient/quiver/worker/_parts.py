"""Groups of tasks in one TASK frame (docs/worker-protocol.md, TASK "parts").

The node sends many small consecutive tasks of a batch as one TASK whose
"parts" lists each task's rows. Each part is a call of the function of its
own, as if it had come in a frame of its own: one that raises fails only its
own rows, which are null in the result, and its error is reported with it.
"""

from __future__ import annotations

import pyarrow as pa

from .._util import error_fields

__all__ = ["parts_of", "run_parts"]


class PartsError(ValueError):
    """A TASK's "parts" that do not describe its rows."""


def parts_of(header: dict, rows: int) -> list[int] | None:
    """TASK's "parts": None when absent; PartsError unless positive integers
    that add up to the batch's rows."""
    parts = header.get("parts")
    if parts is None:
        return None
    if (not isinstance(parts, list) or not parts
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in parts)):
        raise PartsError(f"bad parts {parts!r}")
    if sum(parts) != rows:
        raise PartsError(f"parts add up to {sum(parts)} rows, the task has {rows}")
    return parts


def run_parts(call, batch: pa.RecordBatch, parts: list[int], returns: pa.DataType, name: str, skip: int):
    """call (a batch -> (Arrow result, ms)) on each part of batch in turn:
    (the results of all rows, ms in all, each part's outcome for RESULT)."""
    results, outcomes, total = [], [], 0.0
    off = 0
    for n in parts:
        try:
            result, ms = call(batch.slice(off, n))
            if isinstance(result, list):
                raise TypeError(f"{name} is a table function: its tasks run one at a time")
            results.append(result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result)
            outcomes.append({"ms": ms})
            total += ms
        except BaseException as e:  # noqa: BLE001  (as a task of its own: sys.exit fails the part)
            if isinstance(e, KeyboardInterrupt):
                raise
            results.append(pa.nulls(n, returns))
            outcomes.append({"ms": 0.0, "error": error_fields(e, name, skip)})
        off += n
    return pa.concat_arrays(results), total, outcomes
