"""Client.register / drop against a real node with Python workers: every kind of
function, replacement, errors with remote tracebacks, on_error="null"."""

from __future__ import annotations

import os
import sys
import uuid
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import quiver

# The workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def unique(prefix: str) -> str:
    """A function name no other test (or run against the same node) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def batch(**columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_series_function(client):
    def hypot(x: pd.Series, y: pd.Series) -> pd.Series:
        return np.sqrt(x * x + y * y)

    name = client.register(hypot, name=unique("hypot"), returns="double")
    out = client.call(name, batch(x=[3.0, 5.0, None], y=[4.0, 12.0, 1.0]))
    assert out.type == pa.float64()
    assert out.to_pylist() == [5.0, 13.0, None]
    assert name in [f.name for f in client.functions()]


def test_name_defaults_to_the_function_name(client):
    def twice_for_quiver_test(s):
        return s * 2

    assert client.register(twice_for_quiver_test, returns="bigint") == "twice_for_quiver_test"
    assert client.call("twice_for_quiver_test", batch(a=[1, 2])).to_pylist() == [2, 4]


def test_pandas_dataframe_in_and_out(client):
    def label(n: pd.Series, s: pd.Series) -> pd.Series:
        return s.str.upper() + "-" + n.astype(str)

    name = client.register(label, name=unique("label"), returns="string")
    df = pd.DataFrame({"n": [1, 2], "s": ["a", "b"]}, index=[10, 20])
    out = client.call(name, df)
    assert out.tolist() == ["A-1", "B-2"] and list(out.index) == [10, 20]


def test_class_is_initialised_once_per_worker(client):
    class Model:
        inits = 0

        def __init__(self):
            type(self).inits += 1
            self.pid = os.getpid()

        def __call__(self, s: pd.Series) -> pd.Series:
            return pd.Series([self.pid * 100 + type(self).inits] * len(s))

    name = client.register(Model, name=unique("model"), returns="bigint")
    seen = set()
    for _ in range(3):
        out = client.call(name, batch(a=list(range(64))), rows_per_task=4).to_pylist()
        seen.update(out)
    assert all(v % 100 == 1 for v in seen), f"__init__ ran more than once in a worker: {seen}"
    pids = {v // 100 for v in seen}
    assert os.getpid() not in pids  # it ran in the node's workers
    print(f"\nclass ran in {len(pids)} worker(s)")


def test_arrow_function(client):
    def scale(a: pa.Array, b: pa.Array) -> pa.Array:
        assert isinstance(a, pa.Array)
        return pc.multiply(a, b)

    name = client.register(scale, name=unique("scale"), returns=pa.int64(), kind="arrow")
    assert client.call(name, batch(a=[1, 2, None], b=[10, 20, 30])).to_pylist() == [10, 40, None]


def test_iterator_function(client):
    def running(batches):
        for a, b in batches:
            yield a + b

    name = client.register(running, name=unique("running"), returns="bigint", kind="iterator")
    assert client.call(name, batch(a=[1, 2], b=[10, 20])).to_pylist() == [11, 22]


def test_spark_types_round_trip_through_the_node(client):
    def describe(m: pd.Series, st: pd.DataFrame) -> pd.DataFrame:
        assert all(d is None or isinstance(d, dict) for d in m) and isinstance(st, pd.DataFrame)
        return pd.DataFrame({
            "keys": [sorted(d) if d is not None else None for d in m],
            "total": [sum(d.values()) if d else 0 for d in m] + st["n"],
        })

    name = client.register(describe, name=unique("describe"),
                           returns="struct<keys:array<string>,total:bigint>")
    data = pa.RecordBatch.from_arrays(
        [pa.array([{"b": 1, "a": 2}, {}, None], pa.map_(pa.string(), pa.int64())),
         pa.array([{"n": 1}, {"n": 2}, {"n": 3}])], names=["m", "st"])
    out = client.call(name, data)
    assert out.to_pylist() == [{"keys": ["a", "b"], "total": 4}, {"keys": [], "total": 2},
                               {"keys": None, "total": 3}]


def test_reregistering_is_free_and_a_new_version_replaces(node, client):
    name = unique("versioned")

    def v1(s):
        return s + 1

    def v2(s):
        return s + 2

    sent = []
    action = client.connection.action

    def counting(kind, body=b""):
        sent.append(kind)
        return action(kind, body)

    client.connection.action = counting
    try:
        client.register(v1, name=name, returns="bigint")
        client.register(v1, name=name, returns="bigint")  # cached: nothing sent
        assert sent == ["register"]
    finally:
        del client.connection.action
    assert client.call(name, batch(a=[1])).to_pylist() == [2]

    with quiver.connect(node.tcp) as other:  # the node, too, knows it already
        other.register(v1, name=name, returns="bigint")
        assert list(other._functions.registered.values())[0]["replaced"] is False
        other.register(v2, name=name, returns="bigint")
        assert list(other._functions.registered.values())[0]["replaced"] is True
    assert client.call(name, batch(a=[1])).to_pylist() == [3]


def test_drop(client):
    name = client.register(lambda s: s, name=unique("dropme"), returns="bigint")
    assert client.call(name, batch(a=[1])).to_pylist() == [1]
    client.drop(name)
    with pytest.raises(quiver.FunctionNotFound):
        client.call(name, batch(a=[1]))
    with pytest.raises(quiver.FunctionNotFound):
        client.drop(name)
    # Registering it again after a drop really registers it again.
    client.register(lambda s: s, name=name, returns="bigint")
    assert client.call(name, batch(a=[5])).to_pylist() == [5]


def test_builtins_cannot_be_dropped_or_replaced(client):
    with pytest.raises(quiver.QuiverError):
        client.drop("identity")
    with pytest.raises(quiver.QuiverError):
        client.register(lambda s: s, name="identity", returns="bigint")


def test_raising_function_is_a_udf_error_with_the_remote_traceback(client):
    def fragile(s):
        if (s > 2).any():
            raise KeyError(f"bad value {int(s.max())}")
        return s

    name = client.register(fragile, name=unique("fragile"), returns="bigint")
    with pytest.raises(quiver.UDFError) as e:
        client.call(name, batch(a=[1, 2, 3]), retries=0)
    msg = str(e.value)
    assert "KeyError" in msg and "bad value 3" in msg
    assert "Traceback (most recent call last)" in msg and "in fragile" in msg
    assert name in msg


def test_wrong_length_is_a_udf_error(client):
    name = client.register(lambda s: s.iloc[:1], name=unique("short"), returns="bigint")
    with pytest.raises(quiver.UDFError, match="returned 1 rows for 3 input rows"):
        client.call(name, batch(a=[1, 2, 3]), retries=0, rows_per_task=3)


def test_on_error_null(client):
    def picky(s):
        if (s == 13).any():
            raise ValueError("unlucky")
        return s * 10

    name = client.register(picky, name=unique("picky"), returns="bigint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, info = client.call(name, batch(a=[1, 13, 3]), on_error="null", rows_per_task=1,
                                retries=0, info=True)
    assert out.to_pylist() == [10, None, 30]
    assert any("unlucky" in str(w.message) for w in caught)
    assert info["nulled"] == 1, info


def test_call_info_counts_work(client):
    def sleepy(s):
        import time
        time.sleep(0.02)
        return s

    name = client.register(sleepy, name=unique("sleepy"), returns="bigint")
    out, info = client.call(name, batch(a=[1, 2]), info=True)
    assert out.to_pylist() == [1, 2]
    assert info["nulled"] == 0
    assert info["work_ms"] >= 15, info
    assert 0 < info["solo_ms"] <= info["work_ms"], info


class MetadataServer(flight.FlightServerBase):
    """A stand-in node: echoes each batch with the app_metadata it is given to send."""

    def __init__(self, metadata: list[bytes]):
        super().__init__("grpc://127.0.0.1:0")
        self.metadata = metadata

    def do_exchange(self, context, descriptor, reader, writer):
        writer.begin(reader.schema)
        for i, chunk in enumerate(reader):
            writer.write_with_metadata(chunk.data, pa.py_buffer(self.metadata[i % len(self.metadata)]))


def test_call_info_sums_app_metadata():
    meta = [b'{"nulled": 2, "work_ms": 1.5, "solo_ms": 1.0}', b"", b'{"work_ms": 0.25}', b"not json"]
    with MetadataServer(meta) as server, quiver.Client(f"grpc://127.0.0.1:{server.port}") as c:
        assert not hasattr(c, "last_call_info")
        _, info = c.call("echo", pa.Table.from_batches([batch(a=[i]) for i in range(4)]), info=True)
        assert info == {"nulled": 2, "work_ms": 1.75, "solo_ms": 1.25}  # no solo_ms: its work_ms
        _, info = c.call("echo", batch(a=[1]), info=True)
        assert info == {"nulled": 2, "work_ms": 1.5, "solo_ms": 1.0}


def test_missing_module_in_the_worker_is_reported(client, tmp_path):
    (tmp_path / "quiver_only_in_client.py").write_text("def f(s):\n    return s\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import quiver_only_in_client
        name = client.register(quiver_only_in_client.f, name=unique("nomodule"), returns="bigint")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("quiver_only_in_client", None)
    with pytest.raises(quiver.UDFError, match="ModuleNotFoundError.*quiver_only_in_client"):
        client.call(name, batch(a=[1]), retries=0)


def test_register_argument_errors(client):
    with pytest.raises(ValueError, match="returns="):
        client.register(lambda s: s, name="x")
    with pytest.raises(ValueError, match="kind"):
        client.register(lambda s: s, name="x", returns="int", kind="scalar")
    with pytest.raises(ValueError, match="cannot parse Spark type"):
        client.register(lambda s: s, name="x", returns="doubel")
    with pytest.raises(ValueError, match="name="):
        client.register(lambda s: s, returns="int")
    with pytest.raises(TypeError):
        client.register(42, name="x", returns="int")
