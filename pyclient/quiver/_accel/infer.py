"""accelerate's result type when ``returns`` is not given: inferred from local runs.

The function runs here on 1, then a few rows of a batch; the widened Arrow
type of that result is the batch's result type, kept per distinct set of
argument types. A result the node could not convert to it widens it. A
pandas result that no Arrow type holds faithfully is PICKLED: it travels as
it is (quiver._accel.pickled), never making a correct function fail.
"""

from __future__ import annotations

import threading
from typing import Callable

import pyarrow as pa

from .._convert import pandas_to_arrow
from .._util import return_type_error
from .forms import (
    _ARROW,
    _ARROW_ARRAYS,
    _ARROW_ITER,
    _has_null_type,
    _head,
    _head_item,
    _length,
    _widen_type,
)
from .pickled import PICKLED, needs_pickle

__all__ = ["PROBE_ROWS", "MISSING", "ResultTypes"]

PROBE_ROWS = (1, 16)   # rows of the local runs that infer the result type
MISSING = object()     # no local result to hand back


class ResultTypes:
    """The result types of one accelerated function, by argument types. Thread-safe."""

    def __init__(self, name: str, explicit: pa.DataType | None):
        self.name = name
        self.explicit = explicit
        self._returns: dict[tuple, pa.DataType] = {}
        self._lock = threading.Lock()

    def for_batch(self, key, form: str, values: list, item, run_once: Callable, run_local: Callable):
        """(result type, MISSING) or, when it cannot be inferred yet, (None, local result or MISSING).

        run_once(form, values, item) runs the function here on part of a batch;
        run_local(form, values, item) runs a whole batch here (on_error applied).
        Runs on 1, then a few rows; if those results still hold a null type, on
        the whole batch, whose result then is the answer.
        """
        if self.explicit is not None:
            return self.explicit, MISSING
        t = self._returns.get(key)
        if t is not None:
            return t, MISSING
        with self._lock:
            t = self._returns.get(key)
            if t is not None:
                return t, MISSING
            n = len(values[0])
            for rows in PROBE_ROWS:
                rows = min(rows, n)
                part = [_head(v, rows) for v in values]
                try:
                    result = run_once(form, part, _head_item(item, rows) if item is not None else None)
                except Exception:
                    # The function fails here too: run the batch here, so the caller sees
                    # exactly what the plain function does (or on_error="null" semantics).
                    return None, MISSING
                t = self.infer(form, result, rows)
                if t is PICKLED or not _has_null_type(t):
                    self._returns[key] = t
                    return t, MISSING
                if rows == n:
                    break
            result = run_local(form, values, item)
            t = self.infer(form, result, n)
            if t is PICKLED or not _has_null_type(t):
                self._returns[key] = t
            return None, result

    def infer(self, form: str, result, rows: int) -> pa.DataType:
        """The widened Arrow type of a local result, checking it is one row per input row."""
        got = _length(result)
        if got is None:
            expected = "pyarrow.Array" if form in (_ARROW, _ARROW_ITER) else "pandas.Series"
            raise return_type_error(f"quiver.accelerate: {self.name}", result, expected)
        if got != rows:
            raise ValueError(f"quiver.accelerate: {self.name} returned {got} rows for {rows} input "
                             "rows; a vectorized UDF must return one row per input row")
        if isinstance(result, _ARROW_ARRAYS):
            return _widen_type(result.type)
        if needs_pickle(result):
            return PICKLED
        try:
            return _widen_type(pandas_to_arrow(result).type)
        except (TypeError, ValueError, pa.ArrowException):
            return PICKLED  # no Arrow type fits: carry it as it is (quiver._accel.pickled)

    def widen(self, key, form: str, values: list, item, old: pa.DataType, run_local: Callable):
        """The node could not convert a result to the inferred type: run here, widen the type."""
        result = run_local(form, values, item)
        try:
            new = self.infer(form, result, len(values[0]))
            if new is PICKLED:
                with self._lock:
                    self._returns[key] = PICKLED
                return result
            merged = pa.unify_schemas([pa.schema([("r", old)]), pa.schema([("r", new)])],
                                      promote_options="permissive").field(0).type
        except (pa.ArrowException, TypeError, ValueError):
            merged = None
        with self._lock:
            if merged is not None and not _has_null_type(merged):
                self._returns[key] = merged
            else:
                self._returns.pop(key, None)
        return result
