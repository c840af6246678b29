"""A row-at-a-time @udf that calls an HTTP service (ours, on loopback, 20 ms a request),
accelerated with concurrency=8: its rows run 8 at a time per node worker, and Spark gets
exactly what the plain UDF gives, in order, errors and on_error="null" included."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cloudpickle
import pytest

pytest.importorskip("pyspark")

from pyspark import cloudpickle as spark_cloudpickle
from pyspark.sql import functions as F
from pyspark.sql.functions import udf

import quiver

cloudpickle.register_pickle_by_value(sys.modules[__name__])
spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Slow(BaseHTTPRequestHandler):
    """GET /N answers 3*N+1 after 20 ms; /13 answers 500."""

    def do_GET(self):
        time.sleep(0.02)
        n = int(self.path.strip("/"))
        body = b"unlucky" if n == 13 else str(3 * n + 1).encode()
        self.send_response(500 if n == 13 else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def lookup_udf(base: str):
    def lookup(n):
        import urllib.request
        if n is None:
            return None
        with urllib.request.urlopen(f"{base}/{n}", timeout=10) as r:
            return int(r.read())
    return udf(lookup, "bigint")


@pytest.mark.parametrize("arrow", [False, True], ids=["classic", "arrow"])
def test_http_row_udf_same_as_plain(spark, service, arrow):
    df = spark.range(0, 120, numPartitions=2).filter("id != 13").withColumn(
        "n", F.when(F.col("id") % 50 == 7, None).otherwise(F.col("id")))
    plain = lookup_udf(service)
    if arrow:
        plain = udf(plain.func, "bigint", useArrow=True)
    fast = quiver.accelerate(plain, concurrency=8, fallback="error")
    want = df.select("id", plain("n").alias("v")).orderBy("id").collect()
    got = df.select("id", fast("n").alias("v")).orderBy("id").collect()
    assert got == want
    assert want[1].v == 4 and want[7].v is None


def test_http_errors_per_row(spark, service):
    df = spark.range(0, 40, numPartitions=2)
    plain = lookup_udf(service)
    with pytest.raises(Exception, match="500"):
        df.select(quiver.accelerate(plain, concurrency=8, fallback="error")("id")).collect()
    nulled = quiver.accelerate(plain, concurrency=8, on_error="null", fallback="error")
    out = df.select("id", nulled("id").alias("v")).orderBy("id").collect()  # warnings go to Spark's worker
    assert [(r.id, r.v) for r in out] == [(i, None if i == 13 else 3 * i + 1) for i in range(40)]

