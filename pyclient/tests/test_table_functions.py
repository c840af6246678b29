"""Table functions against a real node: a pyarrow.flight client calls a Python table
function (any number of output rows per input row, each tied to it by the "row"
column), bad row indices and exceptions fail with clear messages, scalar functions
called as tables; and accelerate's map forms of any output length without Spark."""

from __future__ import annotations

import sys
import uuid
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import quiver
from quiver._wire.tablecall import exchange_table

cloudpickle.register_pickle_by_value(sys.modules[__name__])

TABLE = (b"quiver-table-function", b"1")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def explode(x: pa.Array):
    """Row i of value v yields v % 4 rows v*10+k; a null row yields nothing."""
    rows, vals = [], []
    for i, v in enumerate(x.to_pylist()):
        for k in range(0 if v is None else v % 4):
            rows.append(i)
            vals.append(v * 10 + k)
    return rows, vals


def want_explode(values: list) -> tuple[list, list]:
    return explode(pa.array(values, pa.int64()))


def lockstep(node, name: str, batches: list, headers=(TABLE,)) -> tuple[pa.Schema, list]:
    """A plain pyarrow.flight client: write one batch, read its answer, as RisingWave does."""
    c = flight.FlightClient(node.tcp)
    try:
        writer, reader = c.do_exchange(flight.FlightDescriptor.for_path(name),
                                       flight.FlightCallOptions(headers=list(headers)))
        writer.begin(batches[0].schema)
        schema = reader.schema  # sent before any data
        out = []
        for b in batches:
            writer.write_batch(b)
            out.append(reader.read_chunk().data)
        writer.done_writing()
        with pytest.raises(StopIteration):
            reader.read_chunk()
        writer.close()
        return schema, out
    finally:
        c.close()


@pytest.fixture(scope="module")
def explode_fn(unix_client):
    return unix_client.register(explode, name=unique("explode"), returns="bigint", kind="table")


def test_any_number_of_rows_per_input_row(node, explode_fn):
    values = [[3, None, 0, 7, 2], [], [1], list(range(40))]
    batches = [pa.record_batch({"x": pa.array(v, pa.int64())}) for v in values]
    schema, out = lockstep(node, explode_fn, batches, headers=[TABLE, (b"quiver-rows-per-task", b"3")])
    assert schema.names == ["row", explode_fn] and schema.field(0).type == pa.int32()
    assert len(out) == len(batches)
    for v, got in zip(values, out):
        rows, vals = want_explode(v)
        assert got.column(0).to_pylist() == rows
        assert got.column(1).to_pylist() == vals


def test_table_function_needs_no_header(node, explode_fn):
    """RisingWave's callers send no header: a table function's calls are table calls."""
    schema, out = lockstep(node, explode_fn, [pa.record_batch({"x": [5, 6]})], headers=[])
    assert schema.names[0] == "row"
    assert out[0].column(0).to_pylist() == [0, 1, 1] and out[0].column(1).to_pylist() == [50, 60, 61]


def test_catalog_lists_the_row_index(node, unix_client, explode_fn):
    c = flight.FlightClient(node.tcp)
    try:
        info = c.get_flight_info(flight.FlightDescriptor.for_path(explode_fn))
    finally:
        c.close()
    n = info.total_records
    assert info.schema.names[n:] == ["row", explode_fn] and info.schema.field(n).type == pa.int32()
    fn = next(f for f in unix_client.functions() if f.name == explode_fn)
    assert fn.result.name == explode_fn and fn.result.type == pa.int64()


def test_quiver_table_call(unix_client, explode_fn):
    info = {"nulled": 0, "work_ms": 0.0}
    b = pa.record_batch({"x": pa.array([2, 3], pa.int64())})
    conn = unix_client.connection
    out = list(exchange_table(conn, explode_fn, b.schema, [b, b], conn.call_options(), info))
    assert [o.column(0).to_pylist() for o in out] == [[0, 0, 1, 1, 1]] * 2
    assert info["work_ms"] > 0


@pytest.mark.parametrize("body, says", [
    ("past_end", "row index 2, outside the task's 2 input rows"),
    ("decreasing", "row index 0 after 1: row indices must not decrease"),
    ("count", "returned 2 row indices for 1 values"),
    ("raises", "ValueError: bad row 11"),
])
def test_bad_results_and_errors(node, unix_client, body, says):
    def f(x: pa.Array):
        if body == "past_end":
            return [len(x)], [1]
        if body == "decreasing":
            return [1, 0], [1, 2]
        if body == "count":
            return [0, 0], [1]
        raise ValueError(f"bad row {x[1]}")

    name = unix_client.register(f, name=unique(body), returns="bigint", kind="table")
    one_task = (b"quiver-rows-per-task", b"2")
    with pytest.raises(flight.FlightInternalError, match=says):
        lockstep(node, name, [pa.record_batch({"x": [10, 11]})], headers=[one_task])
    conn = unix_client.connection
    with pytest.raises(quiver.UDFError, match=says):
        list(exchange_table(conn, name, pa.schema([("x", pa.int64())]),
                            [pa.record_batch({"x": [10, 11]})], conn.call_options([one_task])))


def test_scalar_function_as_a_table(node):
    schema, out = lockstep(node, "identity", [pa.record_batch({"x": [4, None, 6]}),
                                              pa.record_batch({"x": pa.array([], pa.int64())})])
    assert schema.names == ["row", "identity"]
    assert out[0].column(0).to_pylist() == [0, 1, 2] and out[0].column(1).to_pylist() == [4, None, 6]
    assert out[1].num_rows == 0


def test_bad_header(node):
    with pytest.raises(pa.ArrowInvalid, match="quiver-table-function must be 0 or 1"):
        lockstep(node, "identity", [pa.record_batch({"x": [1]})], headers=[(TABLE[0], b"yes")])


# accelerate's map forms, called as Spark calls them.

@pytest.fixture
def env(node, monkeypatch):
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.setenv("QUIVER_ADAPTIVE", "0")
    return node


def explode_frames(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """0-3 rows per row, two frames per input frame (the second may be empty)."""
    for df in it:
        reps = df["id"] % 4
        out = df.loc[df.index.repeat(reps)].assign(k=lambda d: d.groupby(level=0).cumcount())
        half = len(out) // 2
        yield out.iloc[:half].reset_index(drop=True)
        yield out.iloc[half:].reset_index(drop=True)


def frames_equal(got: list, want: list) -> None:
    g = pd.concat(got, ignore_index=True) if got else pd.DataFrame()
    w = pd.concat(want, ignore_index=True) if want else pd.DataFrame()
    pd.testing.assert_frame_equal(g.reset_index(drop=True), w.reset_index(drop=True))


def test_map_in_pandas_any_length(env):
    fn = quiver.accelerate(rows_per_task=3)(explode_frames)
    frames = [pd.DataFrame({"id": range(i, i + n), "s": [f"s{j}" for j in range(n)]})
              for i, n in ((0, 10), (10, 1), (11, 0), (20, 7))]
    frames_equal(list(fn(iter(frames))), list(explode_frames(iter(frames))))
    assert fn.__quiver__.remote_batches == 3  # the empty frame ran here


def test_map_in_pandas_none_and_filter(env):
    @quiver.accelerate
    def nothing(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for _ in it:
            if False:
                yield

    @quiver.accelerate
    def odd(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            yield df[df["id"] % 2 == 1]

    frames = [pd.DataFrame({"id": range(12)})]
    assert list(nothing(iter(frames))) == []
    assert pd.concat(list(odd(iter(frames))))["id"].tolist() == list(range(1, 12, 2))


def test_map_in_arrow_any_length(env):
    @quiver.accelerate(rows_per_task=2)
    def dup(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in it:
            yield pa.Table.from_batches([b, b]).combine_chunks().to_batches()[0]
            yield b.filter(pc.greater(b["id"], 100))  # empty

    batches = [pa.record_batch({"id": [1, 2, 3], "s": ["a", None, "c"]})]
    out = list(dup(iter(batches)))
    assert all(isinstance(b, pa.RecordBatch) for b in out)
    assert pa.Table.from_batches(out).column("id").to_pylist() == [1, 2, 1, 2, 3, 3]


def test_map_form_error_and_on_error_null(env):
    @quiver.accelerate
    def boom(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            raise KeyError(f"no column like {df.columns[0]}")
            yield df

    with pytest.raises(quiver.UDFError, match="KeyError.*no column like id"):
        list(boom(iter([pd.DataFrame({"id": [1, 2]})])))
    with pytest.raises(TypeError, match="on_error='null' does not apply to map functions"):
        list(quiver.accelerate(on_error="null")(explode_frames)(iter([pd.DataFrame({"id": [1]})])))


def test_cheap_map_function_moves_here(node, monkeypatch):
    """The cheap-function switch: the second frame runs here to measure the function, and
    once remote frames cost more than that (three in a row, or one that cost over ten
    times as much, as a passthrough's does), the rest of the stream runs here."""
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.delenv("QUIVER_ADAPTIVE", raising=False)

    @quiver.accelerate
    def passthrough(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from it

    frames = [pd.DataFrame({"id": range(i * 100, i * 100 + 100)}) for i in range(20)]
    out = pd.concat(list(passthrough(iter(frames))), ignore_index=True)
    assert out["id"].tolist() == list(range(2000))
    acc = passthrough.__quiver__
    assert (acc.remote_batches, acc.local_batches) in ((2, 18), (4, 16))
