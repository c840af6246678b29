"""Many small tasks on a real node: the node sends them to its workers in groups
(docs/worker-protocol.md, TASK "parts"), and each is still a call of the function of
its own: its own rows, its own error, its own count."""

from __future__ import annotations

import sys
import warnings

import cloudpickle
import pyarrow as pa
import pytest

import quiver

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def call_sizes(x):
    """Each row: how many rows its call got."""
    return x * 0 + len(x)


def unlucky(x):
    if (x % 7 == 3).any():
        raise ValueError("unlucky: " + ",".join(str(v) for v in x[x % 7 == 3]))
    return x + 1


def tasks_total(client) -> int:
    return client.status()["nodes"][0]["tasks_total"]


def test_one_row_tasks_are_calls_of_one_row(client):
    client.register(call_sizes, name="call_sizes", returns=pa.int64())
    batch = pa.table({"x": pa.array(range(3_000), pa.int64())})
    client.call("call_sizes", batch.slice(0, 16), rows_per_task=1)  # its cost measured: groups from now on
    before = tasks_total(client)
    assert client.call("call_sizes", batch, rows_per_task=1).to_pylist() == [1] * 3_000
    assert tasks_total(client) - before == 3_000
    assert client.call("call_sizes", batch, rows_per_task=7).to_pylist() == [7] * 2_996 + [4] * 4


def test_a_failing_task_nulls_only_its_rows(client):
    client.register(unlucky, name="unlucky_groups", returns=pa.int64())
    batch = pa.table({"x": pa.array(range(2_000), pa.int64())})
    client.call("unlucky_groups", pa.table({"x": pa.array([1, 2], pa.int64())}), rows_per_task=1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out, info = client.call("unlucky_groups", batch, rows_per_task=1, on_error="null", info=True)
    want = [None if v % 7 == 3 else v + 1 for v in range(2_000)]
    assert out.to_pylist() == want
    assert info["nulled"] == sum(v is None for v in want)
    # Without on_error a failing task fails the call, naming its one row.
    with pytest.raises(quiver.UDFError, match=r"rows \[\d+, \d+\).* raised ValueError: unlucky: \d+"):
        client.call("unlucky_groups", batch, rows_per_task=1)
