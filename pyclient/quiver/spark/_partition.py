"""A partition's groups in parallel: the mapInArrow function that the grouped helpers plan.

Spark's Python worker calls ``PartitionRunner`` with the batches of one
partition, sorted by the grouping keys (the last ``nkeys`` columns). It cuts
them into groups (``split_groups``: equal keys by Spark's rules, nulls
together, NaN with NaN) and submits each group whole, as Arrow IPC bytes, as
one task to the node (the task API, quiver.tasks, over this process's
shared connection), so the node runs the partition's groups on all its
workers at once. Results are yielded in group order as they come back; at
most WINDOW_GROUPS groups (WINDOW_BYTES of input) are in flight, so a large
partition streams in bounded memory.

A task costs the node about a millisecond of its own, as much as a small
group's conversions. So the first SOLO_GROUPS groups of a partition go one
per task; past them, when the groups measured so far took less than
CHUNK_TARGET_S each, consecutive groups go several to a task (at most
CHUNK_GROUPS, CHUNK_BYTES of input), each task taking about CHUNK_TARGET_S:
a partition of many small groups makes fewer tasks, one of few or slow
groups keeps a task per group.

Without a node (none reachable, or it cannot take the work), fallback
"local" runs the groups here, one after another, with one warning per
process, like quiver.accelerate; fallback "error" raises quiver.Unavailable.
"""

from __future__ import annotations

import collections
import math
import os
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from .._accel.forms import _fn_name as _callable_name, _pickled_by_value
from .._accel.nodes import _node_for, _warn_fallback
from .._accel import policy
from ..errors import OverCapacity, Unavailable
from ..tasks import Dispatcher
from ._group import GroupTask, Plan, from_ipc, raise_remote, run_group, to_ipc

__all__ = ["PartitionRunner", "split_groups", "WINDOW_GROUPS", "WINDOW_BYTES"]

WINDOW_GROUPS = 4096        # groups submitted and not yet yielded, at most
WINDOW_BYTES = 256 << 20    # their input, at most (one larger group still goes alone)
SOLO_GROUPS = 64            # a partition's first groups, one per task
CHUNK_TARGET_S = 0.02       # the work of one task of several groups
CHUNK_GROUPS = 8            # groups in one task, at most
CHUNK_BYTES = 1 << 20       # their input, at most


@dataclass(frozen=True)
class NodeOptions:
    """Where the groups run and what happens without a node (accelerate's options)."""

    fallback: str
    retries: int | None
    address: str | None = None
    token: str | None = None


class PartitionRunner:
    """The mapInArrow function: Iterator[RecordBatch] (sorted by key) -> output batches."""

    def __init__(self, plan: Plan, opts: NodeOptions):
        self.plan = plan
        self.opts = opts

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        groups = split_groups(batches, self.plan.nkeys)
        node = _node_for(self.opts)
        conn = node.get()
        if conn is None:
            yield from self._here(node, groups)
            return
        task = GroupTask(self.plan)
        dispatcher = _dispatcher(node, conn)
        with _pickled_by_value(_first_fn(self.plan)):
            dispatcher.name_for(task)  # register once, the user's module by value
        window: collections.deque = collections.deque()  # (future, [group bytes]) in group order
        times: list[float] = []  # seconds the groups measured so far took
        chunk: list[bytes] = []  # groups not yet submitted
        groups_in = bytes_in = submitted = 0  # groups and bytes read and not yet yielded
        per_task = 1

        def submit(datas: list[bytes]):
            arg = datas[0] if len(datas) == 1 else datas
            window.append((dispatcher.submit(task, (arg,), {}, retries=self.opts.retries), datas))

        def popped() -> Iterator[pa.RecordBatch]:
            nonlocal groups_in, bytes_in
            fut, datas = window.popleft()
            groups_in -= len(datas)
            bytes_in -= sum(map(len, datas))
            yield from self._result(node, fut, datas, times)

        for table in groups:
            data = to_ipc(table.combine_chunks().to_batches(), table.schema)
            submitted += 1
            if submitted == SOLO_GROUPS + 1:  # past the solo groups: how many per task from here
                while window and not times:
                    yield from popped()
                per_task = chunk_size(times)
            if chunk and (len(chunk) >= per_task or sum(map(len, chunk)) + len(data) > CHUNK_BYTES):
                submit(chunk)
                chunk = []
            chunk.append(data)
            groups_in += 1
            bytes_in += len(data)
            if per_task == 1:
                submit(chunk)
                chunk = []
            while window and (groups_in > WINDOW_GROUPS or (bytes_in > WINDOW_BYTES and groups_in > 1)):
                yield from popped()
        if chunk:
            submit(chunk)
        while window:
            yield from popped()

    def _result(self, node, fut, datas: list[bytes], times: list[float]) -> Iterator[pa.RecordBatch]:
        """The output of the groups of one task, in order; their seconds go to times."""
        try:
            outcome = fut.result()
        except (Unavailable, OverCapacity) as e:
            if policy.fallback(self.opts.fallback) == policy.RAISE:
                raise
            if isinstance(e, Unavailable):
                node.mark_down(e)
            _warn_fallback(node, _fn_name(self.plan))
            for data in datas:
                yield from run_group(self.plan, from_ipc(data))
            return
        for one in (outcome if len(datas) > 1 else [outcome]):
            if one[0] != "ok":
                raise_remote(one, f"on the quiver node at {node.where()}")
            times.append(one[2])
            yield from from_ipc(one[1]).to_batches()

    def _here(self, node, groups: Iterable[pa.Table]) -> Iterator[pa.RecordBatch]:
        if policy.fallback(self.opts.fallback) == policy.RAISE:
            raise Unavailable(f"quiver.spark: no quiver node reachable at {node.where()} "
                              f"({node.down}) for {_fn_name(self.plan)}. Start one (`quiver start`), "
                              "set QUIVER_ADDRESS, or use fallback='local' to run in-process instead")
        _warn_fallback(node, _fn_name(self.plan))
        for table in groups:
            yield from run_group(self.plan, table)


def chunk_size(times: list[float]) -> int:
    """Groups per task, from the seconds the groups measured so far took."""
    if not times:
        return 1
    mean = sum(times) / len(times)
    return max(1, min(CHUNK_GROUPS, int(CHUNK_TARGET_S / max(mean, 1e-6))))


def _first_fn(plan: Plan):
    return plan.fn[0][0] if isinstance(plan.fn, tuple) else plan.fn


def _fn_name(plan: Plan) -> str:
    return _callable_name(_first_fn(plan))


# This process's dispatcher per node connection (tasks of every Spark task share it).
_dispatchers: dict[int, tuple] = {}
_dispatchers_lock = threading.Lock()


def _dispatcher(node, conn) -> Dispatcher:
    with _dispatchers_lock:
        entry = _dispatchers.get(id(node))
        if entry is None or entry[0] is not conn or entry[2] != os.getpid():
            if entry is not None and entry[2] == os.getpid():
                entry[1].close()
            entry = _dispatchers[id(node)] = (conn, Dispatcher(conn, node.functions), os.getpid())
        return entry[1]


# Cutting a sorted partition into groups.

def split_groups(batches: Iterable[pa.RecordBatch], nkeys: int) -> Iterator[pa.Table]:
    """The groups of batches sorted by their last nkeys columns, each as a Table,
    in order. Keys are equal as Spark groups them: nulls with nulls, NaN with
    NaN, -0.0 with 0.0. No keys: the whole input is one group (if any rows)."""
    parts: list[pa.RecordBatch] = []   # the current group's slices
    last: pa.RecordBatch | None = None  # its key, one row
    schema = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        schema = batch.schema
        n = batch.num_rows
        keys = batch.select(range(batch.num_columns - nkeys, batch.num_columns))
        if last is not None:
            keys = pa.Table.from_batches([last, keys]).combine_chunks().to_batches()[0]
        starts = _starts(keys)  # rows of keys that begin a new group
        offset = keys.num_rows - n  # 1 when keys begins with the previous batch's key
        cut = 0
        for s in starts:
            i = s - offset
            if i <= 0:
                if i == 0 and parts:
                    yield pa.Table.from_batches(parts, schema)
                    parts = []
                continue
            parts.append(batch.slice(cut, i - cut))
            yield pa.Table.from_batches(parts, schema)
            parts, cut = [], i
        parts.append(batch.slice(cut))
        last = batch.select(range(batch.num_columns - nkeys, batch.num_columns)).slice(n - 1, 1)
    if parts:
        yield pa.Table.from_batches(parts, schema)


def _starts(keys: pa.RecordBatch) -> list[int]:
    """Indices i >= 1 where row i's key differs from row i-1's."""
    n = keys.num_rows
    if n < 2 or keys.num_columns == 0:
        return []
    differ = None
    for col in keys.columns:
        d = _differ(col.slice(1), col.slice(0, n - 1))
        differ = d if differ is None else pc.or_(differ, d)
    return [i + 1 for i in pc.indices_nonzero(differ).to_pylist()]


def _differ(a: pa.Array, b: pa.Array) -> pa.Array:
    """Row-wise: a[i] and b[i] are different group keys (as a boolean array without nulls)."""
    t = a.type
    if pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_null(t):
        return pa.array([not _same(x, y) for x, y in zip(a.to_pylist(), b.to_pylist())], pa.bool_())
    try:
        same = pc.fill_null(pc.equal(a, b), False)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([not _same(x, y) for x, y in zip(a.to_pylist(), b.to_pylist())], pa.bool_())
    same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(t):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return pc.invert(same)


def _same(x, y) -> bool:
    """Python values of two keys: equal as Spark groups them (NaN equals NaN)."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(p, q) for p, q in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    return type(x) is type(y) and x == y
