"""What the catalog advertises and what calls it accepts, against a real node: Python functions
registered with argument types (from args= or type hints), identity's any-type form, the probes
Databend's client uses, dictionary-encoded arguments, and the task context a call carries."""

from __future__ import annotations

import json
import sys
import uuid

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import quiver

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def info_schema(node, name: str) -> pa.Schema:
    return flight.FlightClient(node.unix).get_flight_info(flight.FlightDescriptor.for_path(name)).schema


def exchange(node, name: str, batch: pa.RecordBatch, headers=()) -> pa.Table:
    """One raw pyarrow DoExchange: the batch in, the output table back."""
    client = flight.FlightClient(node.unix)
    writer, reader = client.do_exchange(flight.FlightDescriptor.for_path(name),
                                        flight.FlightCallOptions(headers=list(headers)))
    with writer:
        writer.begin(batch.schema)
        writer.write_batch(batch)
        writer.done_writing()
        return reader.read_all()


def test_register_args_are_advertised(unix_client, node):
    def score(x: pd.Series, label: pd.Series) -> pd.Series:
        return x * 2 + label.str.len()

    name = unix_client.register(score, name=unique("score"), returns="double", args=["double", "string"])
    schema = info_schema(node, name)
    assert schema.names == ["x", "label", name]
    assert schema.types == [pa.float64(), pa.string(), pa.float64()]
    assert schema.metadata[b"x-databend-udf-input-count"] == b"2"
    out = unix_client.call(name, pa.RecordBatch.from_pydict({"a": [1.0, 2.5], "b": ["ab", "c"]}))
    assert out.to_pylist() == [4.0, 6.0]


def test_register_args_from_type_hints(unix_client, node):
    def scale(x: "double", factor: pa.int64()) -> pd.Series:
        return x * factor

    name = unix_client.register(scale, name=unique("scale"), returns="double")
    schema = info_schema(node, name)
    assert list(zip(schema.names, schema.types)) == [("x", pa.float64()), ("factor", pa.int64()),
                                                     (name, pa.float64())]
    assert schema.metadata[b"x-databend-udf-input-count"] == b"2"


def test_pandas_hints_declare_nothing(unix_client, node):
    def plain(x: pd.Series) -> pd.Series:
        return x

    name = unix_client.register(plain, name=unique("plain"), returns="double")
    schema = info_schema(node, name)
    assert schema.names == [name]
    assert schema.metadata[b"x-databend-udf-input-count"] == b"0"
    # Undeclared: any argument types are accepted (the function checks its own).
    assert unix_client.call(name, pa.RecordBatch.from_pydict({"a": [1, 2]})).to_pylist() == [1.0, 2.0]


def test_declared_args_are_checked(unix_client):
    def add(a: pd.Series, b: pd.Series) -> pd.Series:
        return a + b

    name = unix_client.register(add, name=unique("add"), returns="bigint", args={"a": "bigint", "b": "bigint"})
    with pytest.raises(quiver.InvalidArgument, match=r"argument 1: expected int64, got utf8"):
        unix_client.call(name, pa.RecordBatch.from_pydict({"a": [1], "b": ["x"]}))
    with pytest.raises(quiver.InvalidArgument, match=r"expected 2 arguments, got 1"):
        unix_client.call(name, pa.RecordBatch.from_pydict({"a": [1]}))


def test_bad_args_are_refused_at_registration(unix_client):
    with pytest.raises(TypeError, match="args must be a list of types"):
        unix_client.register(lambda x: x, name=unique("bad"), returns="double", args="double")
    with pytest.raises(ValueError):
        unix_client.register(lambda x: x, name=unique("bad"), returns="double", args=["no_such_type<"])


def test_identity_advertises_any_type(node):
    schema = info_schema(node, "identity")
    assert schema.metadata[b"x-databend-udf-input-count"] == b"1"
    for field in schema:
        assert field.type == pa.large_binary()
        assert field.metadata[b"Extension"] == b"Variant"
    assert schema.field(0).metadata[b"quiver-type"] == b"any"
    # ... and takes any type, returning it unchanged.
    for arr in (pa.array([1, None, 3]), pa.array(["a", None]), pa.array([[1.5], None, []]),
                pa.array([b'{"k": 1}'], pa.large_binary())):
        out = exchange(node, "identity", pa.RecordBatch.from_arrays([arr], names=["x"]))
        assert out.column(0).combine_chunks().equals(arr)


def test_databend_probes(node):
    healthy = info_schema(node, "builtin_healthy")
    assert healthy.names == ["builtin_healthy"] and healthy.types == [pa.int32()]
    assert healthy.metadata[b"x-databend-udf-input-count"] == b"0"
    out = exchange(node, "builtin_healthy", pa.record_batch([pa.array([None] * 3)], names=["d"]).select([]))
    assert out.column(0).to_pylist() == [1, 1, 1]
    echo = info_schema(node, "builtin_echo")
    assert echo.types == [pa.large_string(), pa.large_string()]
    for arr in (pa.array(["héllo", None], pa.large_string()), pa.array(["x"], pa.string())):
        out = exchange(node, "builtin_echo", pa.RecordBatch.from_arrays([arr], names=["s"]))
        assert out.column(0).combine_chunks().equals(arr)
    with pytest.raises(pa.ArrowInvalid, match=r"argument 0: expected large_utf8 \| utf8 \| utf8_view, got int64"):
        exchange(node, "builtin_echo", pa.RecordBatch.from_pydict({"s": [1]}))


def test_dictionary_encoded_strings(unix_client):
    words = ["kitten", None, "flaw", "kitten", "sunday"]
    other = ["sitting", "x", None, "kitten", "saturday"]
    plain = pa.RecordBatch.from_pydict({"a": words, "b": other})
    encoded = pa.RecordBatch.from_arrays([pc.dictionary_encode(pa.array(words)), pa.array(other)],
                                         names=["a", "b"])
    assert encoded.column(0).type == pa.dictionary(pa.int32(), pa.string())
    for fn in ("levenshtein", "jaro_winkler"):
        assert unix_client.call(fn, encoded, rows_per_task=2).equals(unix_client.call(fn, plain))
    one = pa.RecordBatch.from_arrays([pc.dictionary_encode(pa.array(words))], names=["s"])
    assert unix_client.call("sha256_hex", one).equals(unix_client.call("sha256_hex", plain.select([0])))


def test_dictionary_encoded_python_argument(unix_client):
    def shout(s: pd.Series) -> pd.Series:
        return s.astype(object).where(s.isna(), s.astype(str).str.upper())

    declared = unix_client.register(shout, name=unique("shout"), returns="string", args=["string"])
    encoded = pa.RecordBatch.from_arrays([pc.dictionary_encode(pa.array(["a", None, "b", "a"]))], names=["s"])
    assert unix_client.call(declared, encoded).to_pylist() == ["A", None, "B", "A"]


def test_task_context_reaches_the_worker(unix_client, node):
    def context(x: pd.Series) -> pd.Series:
        tc = quiver.task_context()
        if tc is None:
            return pd.Series(["none"] * len(x))
        from pyspark import TaskContext
        spark = TaskContext.get()
        same = spark is not None and (spark.partitionId(), spark.stageId(), spark.attemptNumber(),
                                      spark.taskAttemptId(), spark.cpus(), spark.getLocalProperty("k")) == \
            (tc.partitionId(), tc.stageId(), tc.attemptNumber(), tc.taskAttemptId(), tc.cpus(),
             tc.getLocalProperty("k"))
        return pd.Series([f"{tc.partitionId()}/{tc.stageId()}/{tc.attemptNumber()}/{tc.taskAttemptId()}/"
                          f"{tc.cpus()}/{tc.getLocalProperty('k')}/{tc.getLocalProperty('absent')}/"
                          f"{sorted(tc.resources())}/{same}"] * len(x))

    name = unix_client.register(context, name=unique("context"), returns="string")
    batch = pa.RecordBatch.from_pydict({"x": list(range(6))})
    values = {"stageId": 7, "partitionId": 3, "attemptNumber": 1, "taskAttemptId": 42, "cpus": 2,
              "localProperties": {"k": "vé"}, "resources": {"gpu": {"name": "gpu", "addresses": ["0"]}}}
    header = (b"quiver-task-context", json.dumps(values).encode())
    out = exchange(node, name, batch, [header, (b"quiver-rows-per-task", b"2")])
    assert out.column(0).to_pylist() == ["3/7/1/42/2/vé/None/['gpu']/True"] * 6
    # Without the header there is no task context, in a worker that had one before.
    assert set(unix_client.call(name, batch, rows_per_task=1).to_pylist()) == {"none"}


def test_bad_task_context_is_invalid(node):
    with pytest.raises(pa.ArrowInvalid, match="quiver-task-context must be a JSON object"):
        exchange(node, "identity", pa.RecordBatch.from_pydict({"x": [1]}),
                 [(b"quiver-task-context", b"[1, 2]")])


def test_no_task_context_outside_a_task():
    assert quiver.task_context() is None
    assert quiver.TaskContext.get() is None


def test_task_context_header_from_spark():
    from pyspark.taskcontext import TaskContext
    from quiver import _taskcontext

    big = "x" * (_taskcontext.MAX_HEADER + 1)
    tc = object.__new__(TaskContext)
    TaskContext.__init__(tc, stageId=2, partitionId=1, attemptNumber=0, taskAttemptId=9, cpus=1,
                         localProperties={"keep": "v", "callSite.long": big}, resources={})
    TaskContext._setTaskContext(tc)
    try:
        ((key, value),) = _taskcontext.headers()
        assert quiver.task_context().partitionId() == 1
    finally:
        TaskContext._setTaskContext(None)
    values = json.loads(value)
    assert key == b"quiver-task-context" and len(value) <= _taskcontext.MAX_HEADER
    assert values["localProperties"] == {"keep": "v"}  # the largest property is left out
    assert (values["stageId"], values["partitionId"], values["taskAttemptId"]) == (2, 1, 9)
    assert _taskcontext.headers() == ()
