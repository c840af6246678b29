"""Table calls: one DoExchange whose output batches carry a row-index column first
(docs/protocol.md, "Table functions"), read in lockstep, one output per input batch."""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.flight as flight

from ..errors import QuiverError
from .conn import CallInfo, Connection, new_call_info

__all__ = ["exchange_table"]


def exchange_table(conn: Connection, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                   options: flight.FlightCallOptions, info: CallInfo | None = None
                   ) -> Iterator[pa.RecordBatch]:
    """Call table function name on batches; yield each input batch's output batch
    (columns "row", the values, and "error" under on_error="null") as it arrives.
    info, when given, sums what the node reported (nulled rows, work_ms)."""
    if info is None:
        info = new_call_info()
    with contextlib.closing(iter(conn.lockstep(name, schema, batches, options, info))) as pairs:
        for _, out in pairs:
            if out.num_columns < 2 or out.schema.field(0).name != "row":
                raise QuiverError(f"{name}: the node's answer is not a table function's "
                                  f"(columns {out.schema.names})")
            yield out
