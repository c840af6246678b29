"""The Python side of the chaos soak (test/chaos_test.go).

call ADDRESS SECONDS OUT: call the registered Python function "slow"
(x * 3) on ADDRESS until SECONDS have passed, checking every row of every
answer, and write a JSON summary to OUT: calls, rows, errors by gRPC code,
wrong, lost and duplicated rows.

spark ADDRESS SECONDS OUT: the same from a Spark job (PySpark local[2]):
queries of an accelerated pandas UDF (x * 3, running on ADDRESS's node)
until SECONDS have passed, every row checked; a query that fails counts
as an error named "SparkJobFailed".

fill ADDRESS MIB: put objects of 1 MiB until MIB are stored or the node
refuses one, then release them all; print a JSON summary (objects put, the
refusal's code).
"""
import json
import os
import sys
import time

import pyarrow as pa

import quiver
from quiver import errors as qerr

# The quiver error of each gRPC code of docs/protocol.md's error table.
CODES = [
    (qerr.ObjectLost, "NotFound"),
    (qerr.FunctionNotFound, "NotFound"),
    (qerr.InvalidArgument, "InvalidArgument"),
    (qerr.UDFError, "Internal"),
    (qerr.Unavailable, "Unavailable"),
    (qerr.Unauthenticated, "Unauthenticated"),
    (qerr.OverCapacity, "ResourceExhausted"),
    (qerr.Timeout, "DeadlineExceeded"),
]


def code_of(exc):
    for cls, code in CODES:
        if isinstance(exc, cls):
            return code
    return "Unknown:" + type(exc).__name__


def new_report():
    """A loop's report: calls, rows checked, errors by code (a sample message each)."""
    return {"calls": 0, "ok": 0, "rows": 0, "errors": {}, "samples": {},
            "wrong": 0, "lost": 0, "duplicated": 0}


def count_error(rep, code, exc):
    rep["errors"][code] = rep["errors"].get(code, 0) + 1
    rep["samples"].setdefault(code, str(exc)[:300])


def call_loop(address, seconds, out):
    c = quiver.connect(address)  # the token comes from $QUIVER_TOKEN
    rep = new_report()
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        n = 40 + k % 25
        x = pa.table({"x": pa.array(range(k, k + n), pa.int64())})
        k += n
        rep["calls"] += 1
        try:
            got = c.call("slow", x, rows_per_task=4, timeout=60)
        except Exception as exc:  # every failure is counted by its code
            count_error(rep, code_of(exc), exc)
            time.sleep(0.05)
            continue
        col = got.to_pylist()
        want = [v * 3 for v in x.column(0).to_pylist()]
        m = min(len(col), len(want))
        rep["wrong"] += sum(1 for a, b in zip(col[:m], want[:m]) if a != b)
        rep["lost"] += max(0, len(want) - len(col))
        rep["duplicated"] += max(0, len(col) - len(want))
        rep["ok"] += 1
        rep["rows"] += len(want)
    with open(out, "w") as f:
        json.dump(rep, f)


def spark_loop(address, seconds, out):
    os.environ["QUIVER_ADDRESS"] = address  # Spark's Python workers find the node here
    os.environ["PYSPARK_PYTHON"] = sys.executable  # and run on this interpreter, which has quiver
    import pandas as pd
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf

    spark = (SparkSession.builder.master("local[2]").appName("quiver-chaos")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50").getOrCreate())

    @quiver.accelerate(returns="long", rows_per_task=10)
    def triple(x: pd.Series) -> pd.Series:
        return x * 3

    udf = pandas_udf(triple, "long")
    rep = new_report()
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        n = 400 + k % 97
        rep["calls"] += 1
        try:
            rows = spark.range(k, k + n, numPartitions=2).select("id", udf("id").alias("y")).collect()
        except Exception as exc:  # a failed query: counted, never silently retried
            count_error(rep, "SparkJobFailed", exc)
            k += n
            continue
        got = {}
        for r in rows:
            got.setdefault(r.id, []).append(r.y)
        for i in range(k, k + n):
            ys = got.pop(i, [])
            rep["lost"] += 1 if not ys else 0
            rep["duplicated"] += max(0, len(ys) - 1)
            rep["wrong"] += sum(1 for y in ys if y != 3 * i)
        rep["duplicated"] += sum(len(v) for v in got.values())  # rows of ids never sent
        rep["ok"] += 1
        rep["rows"] += n
        k += n
    spark.stop()
    with open(out, "w") as f:
        json.dump(rep, f)


def fill(address, mib):
    c = quiver.connect(address)
    refs, code = [], ""
    # Random bytes: spill files are compressed, and these do not shrink.
    block = pa.table({"b": pa.array([os.urandom(1024) for _ in range(1024)], pa.binary())})
    try:
        for _ in range(mib):
            refs.append(c.put(block))
    except Exception as exc:
        code = code_of(exc)
    released = 0
    for r in refs:
        try:
            c.release(r)
            released += 1
        except Exception as exc:
            code = code or code_of(exc)
    print(json.dumps({"put": len(refs), "released": released, "refused": code}))


if __name__ == "__main__":
    if sys.argv[1] == "call":
        call_loop(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "spark":
        spark_loop(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    else:
        fill(sys.argv[2], int(sys.argv[3]))
