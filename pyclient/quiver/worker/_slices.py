"""Concurrency in the worker: a function loaded with concurrency N (LOAD's
"concurrency") runs up to N pieces of a task at once (quiver._concurrent).

Row-wise functions map rows: a task function's rows (quiver._taskrows) and a
Spark row UDF (quiver._rows.run.RowUDF, marked ``quiver_row_wise``) are told
N and run N rows at once. A batch function (kinds series, iterator, arrow,
class) gets the task's rows cut into up to N contiguous slices, each called on
a thread of its own, the results joined in order: a scalar UDF must not depend
on where its batches are cut (Spark cuts them too), so this is the same
function. A class's one instance is shared by the threads. A table function
runs one task at a time.
"""

from __future__ import annotations

import pyarrow as pa

from .._concurrent import run_all, total_ms, values_or_raise

__all__ = ["concurrency_of", "run_slices", "row_wise"]


def concurrency_of(header: dict) -> int:
    """LOAD's "concurrency": 1 when absent; ValueError unless a positive integer."""
    n = header.get("concurrency", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"bad concurrency {n!r}")
    return n


def row_wise(fn) -> bool:
    """Whether fn maps its rows itself, told its concurrency (RowUDF)."""
    return bool(getattr(fn, "quiver_row_wise", False))


def run_slices(call_batch, batch: pa.RecordBatch, n: int):
    """call_batch (a batch -> (Arrow result, ms)) over up to n slices of batch at
    once; the results joined in row order and the ms added up. The first failed
    slice's exception (in row order) is raised once every slice has ended."""
    rows = batch.num_rows
    k = max(1, min(n, rows))
    bounds = [(i * rows // k, (i + 1) * rows // k) for i in range(k)]
    outcomes = run_all(lambda b: call_batch(batch.slice(b[0], b[1] - b[0])), bounds, n)
    parts = values_or_raise(outcomes)
    ms = sum(p[1] for p in parts) if parts else total_ms(outcomes)
    results = [p[0] for p in parts]
    if isinstance(results[0], list):  # a table function's columns (never sliced today)
        raise TypeError("a table function runs one task at a time")
    return pa.concat_arrays([_array(r) for r in results]), ms


def _array(a):
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
