"""Task sizing from a function's measured cost, on a real node: a function with a large
fixed cost per call (a model's predict) gets tasks no smaller than its cost model allows.
Observed from the node's task counts, not from timing."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pyarrow as pa

# The node's workers cannot import this module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def predict_like(x):
    """20 ms a call, whatever its rows, and next to nothing a row."""
    time.sleep(0.02)
    return x * 2


def per_row(x):
    """1 ms a row, nothing fixed."""
    time.sleep(0.001 * len(x))
    return x + 1


def tasks_total(client) -> int:
    return client.status()["nodes"][0]["tasks_total"]


def test_a_fixed_cost_function_gets_whole_batches(unix_client):
    c = unix_client
    c.register(predict_like, name="predict_like", returns=pa.int64())
    batch = pa.table({"x": pa.array(range(10_000), pa.int64())})
    # Measured and probed: the first batches are cut in two sizes until the
    # fixed part is told from the part per row.
    for _ in range(8):
        assert c.call("predict_like", batch).to_pylist() == [2 * v for v in range(10_000)]
    before = tasks_total(c)
    for _ in range(5):
        c.call("predict_like", batch)
    # The fixed part is 20 ms and the rows cost ~nothing: splitting a batch
    # only repeats the 20 ms, so each batch is one task.
    assert tasks_total(c) - before == 5


def test_a_per_row_function_still_fans_out(unix_client):
    c = unix_client
    c.register(per_row, name="per_row_ms", returns=pa.int64())
    batch = pa.table({"x": pa.array(range(200), pa.int64())})
    for _ in range(4):
        assert c.call("per_row_ms", batch).to_pylist() == [v + 1 for v in range(200)]
    before = tasks_total(c)
    c.call("per_row_ms", batch)
    # 200 ms of rows and no fixed part: several tasks, so every worker gets some.
    assert tasks_total(c) - before >= 2
