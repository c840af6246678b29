"""Table calls: one DoExchange whose output batches carry a row-index column first
(docs/protocol.md, "Table functions"), read in lockstep, one output per input batch."""

from __future__ import annotations

from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.flight as flight

from ..errors import QuiverError, mapped_errors
from .conn import CallInfo, Connection, _add_call_info

__all__ = ["exchange_table"]


def exchange_table(conn: Connection, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                   options: flight.FlightCallOptions, info: CallInfo | None = None
                   ) -> Iterator[pa.RecordBatch]:
    """Call table function name on batches; yield each input batch's output batch
    (columns "row", the values, and "error" under on_error="null") as it arrives.
    info, when given, sums what the node reported (nulled rows, work_ms)."""
    if info is None:
        info = {"nulled": 0, "work_ms": 0.0}
    with mapped_errors():
        writer, reader = conn.flight.do_exchange(flight.FlightDescriptor.for_path(name), options)
        try:
            writer.begin(schema)
            for batch in batches:
                writer.write_batch(batch)
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    raise QuiverError(f"{name}: the node ended the stream early") from None
                _add_call_info(info, chunk.app_metadata)
                out = chunk.data
                if out.num_columns < 2 or out.schema.field(0).name != "row":
                    raise QuiverError(f"{name}: the node's answer is not a table function's "
                                      f"(columns {out.schema.names})")
                yield out
            writer.done_writing()
            try:
                reader.read_chunk()
            except StopIteration:
                pass
            else:
                raise QuiverError(f"{name}: the node returned more batches than it was sent")
        except BaseException:
            try:  # stop the node's work on this call; the first error is the one to report
                reader.cancel()
                writer.close()
            except Exception:
                pass
            raise
        writer.close()
