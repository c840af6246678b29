"""quiver.spark's pieces that need no Spark: cutting a sorted partition into groups (Spark's
key equality: nulls together, NaN with NaN, -0.0 with 0.0, nested keys; groups across batch
boundaries), a cogrouped pair cut back into its sides, and a group's exception travelling
back as itself."""

from __future__ import annotations

import pickle
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quiver.errors import UDFError
from quiver.spark._group import GroupTask, _pickled, raise_remote
from quiver.spark._partition import split_groups


def cut(rows: list[tuple], size: int, nkeys: int = 1) -> list[list[tuple]]:
    """rows (value, key...) in batches of size, cut into groups: each group's rows."""
    names = ["v"] + [f"k{i}" for i in range(nkeys)]
    table = pa.Table.from_pylist([dict(zip(names, r)) for r in rows])
    batches = table.to_batches(max_chunksize=size)
    return [[tuple(r.values()) for r in g.to_pylist()] for g in split_groups(iter(batches), nkeys)]


def keyed(keys: list) -> list[tuple]:
    return [(i, k) for i, k in enumerate(keys)]


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_groups_cross_batch_boundaries(size):
    keys = [None, None, 1, 1, 1, 2, 3, 3]
    got = cut(keyed(keys), size)
    assert [[k for _, k in g] for g in got] == [[None, None], [1, 1, 1], [2], [3, 3]]
    assert [v for g in got for v, _ in g] == list(range(len(keys)))


def test_float_keys_group_as_spark_does():
    got = cut(keyed([None, -0.0, 0.0, 1.5, float("nan"), float("nan")]), 2)
    assert [len(g) for g in got] == [1, 2, 1, 2]


def test_nested_and_several_keys():
    rows = [(0, [1, None], "a"), (1, [1, None], "a"), (2, [1, None], "b"), (3, None, "b"),
            (4, [float("nan")], "b"), (5, [float("nan")], "b")]
    assert [len(g) for g in cut(rows, 4, nkeys=2)] == [2, 1, 1, 2]
    structs = [(0, {"a": 1, "b": None}), (1, {"a": 1, "b": None}), (2, {"a": 1, "b": "x"})]
    assert [len(g) for g in cut(structs, 2)] == [2, 1]


def test_no_keys_is_one_group_and_no_rows_none():
    assert [len(g) for g in cut([(1,), (2,), (3,)], 2, nkeys=0)] == [3]
    schema = pa.schema([("v", pa.int64()), ("k0", pa.int64())])
    assert list(split_groups(iter([pa.record_batch([[], []], schema=schema)]), 1)) == []


class NeedsKeywords(Exception):
    def __init__(self, *, code: int):
        super().__init__(f"code {code}")
        self.code = code


@pytest.mark.parametrize("err", [ValueError("plain"), KeyError("k"), NeedsKeywords(code=7)])
def test_exceptions_come_back_as_themselves(err):
    data = _pickled(err)
    assert data is not None
    with pytest.raises(type(err)) as got:
        raise_remote(("err", data, type(err).__name__, str(err), "Traceback: here\n"), "on a node")
    assert str(got.value) == str(err)
    assert any("Traceback: here" in note for note in got.value.__notes__)


def test_an_exception_that_cannot_travel_is_a_udf_error():
    class Local(Exception):
        def __reduce__(self):
            raise pickle.PicklingError("no")

    err = Local("gone")
    err.lock = threading.Lock()  # nor can its attributes travel
    with pytest.raises(UDFError, match="Local: gone") as got:
        raise_remote(("err", _pickled(err), "Local", "gone", "tb"), "on a node")
    assert got.value.remote_type == "Local"


def test_group_task_answers_failures_without_raising():
    from quiver.spark._group import ARROW, Plan, to_ipc

    def boom(table):
        raise ZeroDivisionError("no rows to divide")

    conf = {"assign_cols_by_name": True, "use_large_var_types": False, "max_records_per_batch": 10}
    plan = Plan(ARROW, boom, 1, pytest.importorskip("pyspark.sql.types").StructType([]), 1, conf)
    batch = pa.record_batch({"v": [1], "k0": [2]})
    outcome = GroupTask(plan)(to_ipc([batch], batch.schema))
    assert outcome[0] == "err" and outcome[2:4] == ("ZeroDivisionError", "no rows to divide")


def test_group_task_runs_a_list_of_groups_up_to_the_first_failure():
    from quiver.spark._group import ARROW, Plan, from_ipc, to_ipc

    def double_unless_two(table):
        if table.column("v")[0].as_py() == 2:
            raise ValueError("two")
        return pa.table({"v": pc.multiply(table.column("v"), 2)})

    types = pytest.importorskip("pyspark.sql.types")
    conf = {"assign_cols_by_name": True, "use_large_var_types": False, "max_records_per_batch": 10}
    plan = Plan(ARROW, double_unless_two, 1, types.StructType([types.StructField("v", types.LongType())]), 1, conf)
    groups = [pa.record_batch({"v": [k, k], "k0": [k, k]}) for k in (0, 1, 2, 3)]
    out = GroupTask(plan)([to_ipc([b], b.schema) for b in groups])
    assert [o[0] for o in out] == ["ok", "ok", "err"], "it stops at the failing group"
    assert from_ipc(out[1][1]).column("v").to_pylist() == [2, 2] and out[1][2] >= 0
    assert out[2][2:4] == ("ValueError", "two")


@pytest.mark.parametrize("times, want", [([], 1), ([0.5], 1), ([0.02], 1), ([0.005, 0.005], 4),
                                         ([0.0001], 8), ([0.0], 8)])
def test_groups_per_task_from_measured_times(times, want):
    from quiver.spark._partition import chunk_size

    assert chunk_size(times) == want


def test_a_cogrouped_pair_is_cut_into_its_sides():
    from quiver.spark._group import _side

    left_t = pa.struct([("k", pa.int64()), ("v", pa.float64()), ("__quiver_key_0", pa.int64())])
    right_t = pa.struct([("w", pa.string()), ("__quiver_key_0", pa.int64())])
    pair = pa.table({
        "side": pa.array([1, 0, 1, 0], pa.int8()),
        "left": pa.array([None, {"k": 3, "v": 1.5, "__quiver_key_0": 3}, None,
                          {"k": 3, "v": None, "__quiver_key_0": 3}], left_t),
        "right": pa.array([{"w": "a", "__quiver_key_0": 3}, None, {"w": None, "__quiver_key_0": 3}, None],
                          right_t),
        "key": [3, 3, 3, 3],
    })
    left, right = _side(pair, 0), _side(pair, 1)
    assert left.column_names == ["k", "v", "__quiver_key_0"] and left.column("v").to_pylist() == [1.5, None]
    assert right.column("w").to_pylist() == ["a", None] and right.num_rows == 2
    alone = _side(pair.filter(pc.equal(pair.column(0), 1)), 0)  # a key on the right side only
    assert alone.num_rows == 0 and alone.schema == pa.schema(list(left_t))
