"""Small helpers that the worker side and the driver side share: traceback trimming,
joining an iterator function's parts, the error for a result of the wrong kind, and
sending a frame's buffers whole. Imports nothing of quiver."""

from __future__ import annotations

import traceback

import pandas as pd
import pyarrow as pa

__all__ = ["user_traceback", "error_fields", "concat_parts", "return_type_error", "send_all"]


def user_traceback(e: BaseException, skip: frozenset | set) -> str:
    """e's formatted traceback from the first frame whose file is not in skip: the
    user's code (or the conversion that failed), not quiver's own loop."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__))


def error_fields(e: BaseException, fn: str, skip: frozenset | set) -> dict:
    """An exception of function fn as the worker protocol reports it (ERROR, a part's "error")."""
    return {"type": type(e).__name__, "message": str(e), "traceback": user_traceback(e, skip), "fn": fn}


def concat_parts(parts: list):
    """One result from an iterator function's parts: Series/DataFrames joined
    (new index), Arrow arrays combined; an empty Series for none."""
    if not parts:
        return pd.Series([], dtype=object)
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, (pa.Array, pa.ChunkedArray)) for p in parts):
        return pa.chunked_array(parts).combine_chunks()
    return pd.concat(parts, ignore_index=True)


def return_type_error(name: str, result, expected: str) -> TypeError:
    """A function returned something other than a batch (a scalar, None): say what, in
    Spark's words (its UDF_RETURN_TYPE error), e.g. expected "pandas.Series"."""
    return TypeError(f"{name}: Return type of the user-defined function should be {expected}, "
                     f"but is {type(result).__name__}")


def send_all(sock, parts: list) -> None:
    """Send buffers (bytes, memoryviews, pyarrow Buffers) on a blocking socket, in one
    sendmsg when it takes them all, else the rest piece by piece; never a copy."""
    views = [memoryview(p).cast("B") for p in parts]
    sent = sock.sendmsg(views)
    for v in views:
        if sent >= len(v):
            sent -= len(v)
            continue
        sock.sendall(v[sent:])
        sent = 0
