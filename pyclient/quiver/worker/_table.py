"""Table functions in the worker: what a kind "table" function returned, as the
node's two result columns (the int32 row indices, the values of the registered type)."""

from __future__ import annotations

import pyarrow as pa

ROW_FIELD = "row"  # the row-index column, first (RisingWave's external table functions)


def table_schema(returns: pa.DataType) -> pa.Schema:
    return pa.schema([pa.field(ROW_FIELD, pa.int32(), nullable=False), pa.field("result", returns)])


def table_result(name: str, result, returns: pa.DataType) -> list:
    """[row indices, values] from a (rows, values) pair or a RecordBatch/Table whose
    first two columns they are. The node checks the indices (range and order)."""
    if isinstance(result, (pa.RecordBatch, pa.Table)) and result.num_columns >= 2:
        rows, values = result.column(0), result.column(1)
    elif isinstance(result, tuple) and len(result) == 2:
        rows, values = result
    else:
        raise TypeError(f"{name} is a table function: it returns (row indices, values) or a "
                        f"RecordBatch whose first columns they are, not {type(result).__name__}")
    rows, values = _array(rows, pa.int32(), name, "row indices"), _array(values, returns, name, "values")
    if len(rows) != len(values):
        raise ValueError(f"{name} returned {len(rows)} row indices for {len(values)} values")
    return [rows, values]


def _array(v, t: pa.DataType, name: str, what: str) -> pa.Array:
    if isinstance(v, pa.ChunkedArray):
        v = v.combine_chunks() if v.num_chunks != 1 else v.chunk(0)
    if not isinstance(v, pa.Array):
        try:
            return pa.array(v, t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise TypeError(f"{name}: its {what} do not convert to {t}: {e}") from None
    if not v.type.equals(t):
        try:
            v = v.cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise TypeError(f"{name}: its {what} are {v.type}, not {t}: {e}") from None
    return v
