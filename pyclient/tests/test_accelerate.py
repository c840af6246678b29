"""quiver.accelerate without Spark: the wrapped function called directly with the pandas
(and Arrow) objects Spark would hand it, against the session's real node."""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import typing
import warnings
from typing import Iterator, Tuple

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import quiver

nodes_module = importlib.import_module("quiver._accel.nodes")
policy_module = importlib.import_module("quiver._accel.policy")


@pytest.fixture
def env(node, monkeypatch):
    """Point accelerate at the session node, measure nothing (every batch goes to the node)."""
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.setenv("QUIVER_ADAPTIVE", "0")
    return node


def calls(client) -> int:
    return client.status()["nodes"][0]["calls_total"]


def impl(wrapped):
    return wrapped.__quiver__


# The wrapper looks like the function.

def test_keeps_signature_hints_and_name():
    def price(spot: pd.Series, vol: pd.Series) -> pd.Series:
        """Docs."""
        return spot * vol

    w = quiver.accelerate(retries=1)(price)
    assert w.__name__ == "price" and w.__doc__ == "Docs."
    assert inspect.signature(w) == inspect.signature(price)
    assert typing.get_type_hints(w) == typing.get_type_hints(price)
    assert inspect.getfullargspec(w).args == ["spot", "vol"]  # what pandas_udf reads


def test_class_exposes_call_signature_without_self():
    @quiver.accelerate
    class Scale:
        """A model."""

        def __init__(self):
            self.k = 2

        def __call__(self, x: pd.Series) -> pd.Series:
            return x * self.k

    assert list(inspect.signature(Scale).parameters) == ["x"]
    assert typing.get_type_hints(Scale) == {"x": pd.Series, "return": pd.Series}
    assert Scale.__name__ == "Scale" and Scale.__doc__ == "A model."


def test_iterator_hints_survive():
    @quiver.accelerate
    def f(it: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        for a, b in it:
            yield a + b

    assert typing.get_type_hints(f)["it"] == Iterator[Tuple[pd.Series, pd.Series]]


def test_bad_options_fail_at_decoration():
    with pytest.raises(ValueError, match="on_error"):
        quiver.accelerate(on_error="ignore")
    with pytest.raises(ValueError, match="fallback"):
        quiver.accelerate(fallback="never")
    with pytest.raises(ValueError, match="rows_per_task"):
        quiver.accelerate(rows_per_task=0)
    with pytest.raises(ValueError, match="cannot parse"):
        quiver.accelerate(returns="array<")


# Series -> Series.

def test_series_function_runs_on_the_node(env, unix_client):
    def hyp(x: pd.Series, y: pd.Series) -> pd.Series:
        return np.sqrt(x * x + y * y)

    w = quiver.accelerate(hyp)
    x = pd.Series([3.0, 5.0, None, 8.0], index=[10, 11, 12, 13])
    y = pd.Series([4.0, 12.0, 1.0, 15.0], index=[10, 11, 12, 13])
    before = calls(unix_client)
    out = w(x, y)
    pd.testing.assert_series_equal(out, hyp(x, y), check_names=False)
    assert list(out.index) == [10, 11, 12, 13]
    assert impl(w).remote_batches == 1 and impl(w).local_batches == 0
    assert calls(unix_client) == before + 1


def test_keyword_arguments_bind_by_name(env):
    @quiver.accelerate
    def sub(a: pd.Series, b: pd.Series) -> pd.Series:
        return a - b

    a, b = pd.Series([10, 20]), pd.Series([1, 2])
    assert sub(b=b, a=a).tolist() == [9, 18]
    assert impl(sub).remote_batches == 1


def test_types_round_trip_as_spark_hands_them(env):
    """Identity on every kind of column Spark hands a pandas UDF: the same objects come back."""
    import datetime as dt
    from decimal import Decimal

    @quiver.accelerate
    def ident(x: pd.Series) -> pd.Series:
        return x

    columns = [
        pd.Series([1.5, float("nan"), -0.0]),
        pd.Series([1, 2, 3], dtype="int8"),
        pd.Series([1.0, None, 3.0]),  # a long column with nulls, as Spark hands it
        pd.Series([True, None, False], dtype=object),
        pd.Series(["a", None, "é" * 10_000], dtype="str"),
        pd.Series([b"\x00\xff", None, b""], dtype=object),
        pd.Series([Decimal("1.000000000000000001"), None, Decimal("-99999999999999999999.5")]),
        pd.Series([dt.date(1969, 1, 1), None, dt.date(2262, 4, 12)], dtype=object),
        pd.Series(pd.to_datetime(["1900-01-01 00:00:01", None, "2021-03-14 02:30:00"])),
        pd.Series([np.array([1, 2]), None, np.array([], dtype=np.int64)], dtype=object),
        pd.Series([{"a": 1}, {}, None], dtype=object),
    ]
    for col in columns:
        out = ident(col)
        assert len(out) == len(col)
        for got, want in zip(out.tolist(), col.tolist()):
            if isinstance(want, np.ndarray):
                assert list(got) == list(want)
            elif isinstance(want, float) and want != want:
                assert got != got
            else:
                assert got == want or (pd.isna(got) and pd.isna(want)), (col.dtype, got, want)


def test_struct_in_and_out(env):
    @quiver.accelerate
    def swap(p: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"b": p["a"] * 2, "a": p["b"].str.upper()})

    p = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    out = swap(p)
    pd.testing.assert_frame_equal(out, swap.__wrapped__(p))


def test_result_type_inferred_past_null_first_rows(env):
    @quiver.accelerate
    def maybe(x: pd.Series) -> pd.Series:
        return x.map(lambda v: None if v < 20 else {"k": v})

    x = pd.Series(list(range(40)))
    assert maybe(x).tolist() == maybe.__wrapped__(x).tolist()


def test_result_that_outgrows_the_inferred_type_is_widened(env):
    """The first row gives ints; later rows floats: still the plain function's result."""

    @quiver.accelerate(rows_per_task=1)
    def drift(x: pd.Series) -> pd.Series:
        return x.map(lambda v: v // 2 if v % 2 == 0 else v / 2)

    x = pd.Series([0, 3, 5])
    assert drift(x).tolist() == [0, 1.5, 2.5]
    assert drift(pd.Series([0, 7])).tolist() == [0, 3.5]
    assert impl(drift).remote_batches == 1  # the first batch ran here, the type is now double


def test_explicit_returns_skip_the_local_run(env, tmp_path):
    marker = tmp_path / "ran-here"
    here = os.getpid()

    @quiver.accelerate(returns="bigint")
    def f(x: pd.Series) -> pd.Series:
        if os.getpid() == here:
            marker.write_text("x")
        return x + 1

    assert f(pd.Series([1, 2])).tolist() == [2, 3]
    assert not marker.exists()


def test_zero_rows_and_scalars_run_here(env):
    @quiver.accelerate
    def inc(x):
        return x + 1

    assert inc(pd.Series([], dtype="int64")).tolist() == []
    assert inc(41) == 42
    assert impl(inc).remote_batches == 0


# Iterators, classes, Arrow.

def test_iterator_of_series(env):
    @quiver.accelerate
    def plus_one(it: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for s in it:
            yield s + 1

    batches = [pd.Series([1, 2]), pd.Series([3]), pd.Series([4, 5, 6])]
    out = list(plus_one(iter(batches)))
    assert [o.tolist() for o in out] == [[2, 3], [4], [5, 6, 7]]
    assert impl(plus_one).remote_batches == 3


def test_iterator_of_tuples(env):
    @quiver.accelerate
    def mul(it: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        for a, b in it:
            yield a * b

    out = list(mul(iter([(pd.Series([1, 2]), pd.Series([3, 4])), (pd.Series([5]), pd.Series([6]))])))
    assert [o.tolist() for o in out] == [[3, 8], [30]]


def test_class_initialised_once_per_worker(env):
    @quiver.accelerate(returns="string")
    class WhoAmI:
        def __init__(self):
            self.tag = f"{os.getpid()}:{id(self)}"

        def __call__(self, x: pd.Series) -> pd.Series:
            return pd.Series([self.tag] * len(x))

    tags = set()
    for _ in range(6):
        tags.update(WhoAmI(pd.Series([1, 2, 3])).tolist())
    pids = {t.split(":")[0] for t in tags}
    assert str(os.getpid()) not in pids
    assert len(tags) == len(pids)  # one instance per worker process


def test_arrow_arrays(env):
    @quiver.accelerate
    def upper(s: pa.Array, n: pa.Array) -> pa.Array:
        return pc.binary_repeat(pc.utf8_upper(s), n)

    s, n = pa.array(["ab", None, "ç"]), pa.array([2, 1, 3], pa.int32())
    out = upper(s, n)
    assert isinstance(out, pa.Array)
    assert out.equals(upper.__wrapped__(s, n))


def test_arrow_iterator(env):
    @quiver.accelerate
    def double(it: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for a in it:
            yield pc.multiply(a, 2)

    out = list(double(iter([pa.array([1, 2]), pa.array([3])])))
    assert [o.to_pylist() for o in out] == [[2, 4], [6]]


def test_record_batches_per_row(env):
    @quiver.accelerate
    def enrich(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in it:
            yield pa.RecordBatch.from_arrays([b["id"], pc.multiply(b["v"], 10)], names=["id", "v10"])

    batches = [pa.record_batch({"id": [1, 2], "v": [0.5, None]}), pa.record_batch({"id": [3], "v": [2.0]})]
    out = list(enrich(iter(batches)))  # the node may cut batches into tasks: compare rows
    want = list(enrich.__wrapped__(iter(batches)))
    assert pa.Table.from_batches(out).to_pydict() == pa.Table.from_batches(want).to_pydict()
    assert impl(enrich).remote_batches == 2


def test_record_batches_filter(env):
    @quiver.accelerate
    def keep_even(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in it:
            yield b.filter(pc.equal(pc.bit_wise_and(b["id"], 1), 0))

    batches = [pa.record_batch({"id": [1, 2, 3, 4]}), pa.record_batch({"id": [5]})]
    out = pa.Table.from_batches(list(keep_even(iter(batches))))
    assert out.column("id").to_pylist() == [2, 4]
    assert impl(keep_even).remote_batches == 2


# Errors.

def test_exception_carries_message_and_remote_traceback(env):
    @quiver.accelerate(returns="double")
    def boom(x: pd.Series) -> pd.Series:
        raise KeyError("no such instrument: XYZ")

    with pytest.raises(quiver.UDFError) as e:
        boom(pd.Series([1.0, 2.0]))
    assert "no such instrument: XYZ" in str(e.value)
    assert "Remote traceback" in str(e.value) and "KeyError" in str(e.value)


def test_on_error_null(env):
    @quiver.accelerate(on_error="null", rows_per_task=1)
    def inv(x: pd.Series) -> pd.Series:
        if (x == 0).any():
            raise ZeroDivisionError("zero")
        return 1 / x

    with pytest.warns(RuntimeWarning, match="zero"):
        out = inv(pd.Series([1.0, 0.0, 4.0]))
    assert out.tolist()[0] == 1.0 and np.isnan(out.tolist()[1]) and out.tolist()[2] == 0.25


def test_wrong_length_is_a_clear_error(env):
    @quiver.accelerate(returns="bigint")
    def short(x: pd.Series) -> pd.Series:
        return x.iloc[:1]

    with pytest.raises(quiver.UDFError, match=r"returned 1 rows for \d input rows"):
        short(pd.Series([1, 2, 3]))


def test_wrong_length_found_by_the_local_run(env):
    @quiver.accelerate
    def agg(x: pd.Series) -> pd.Series:
        return pd.Series([x.sum(), x.sum()])

    with pytest.raises(ValueError, match="one row per input row"):
        agg(pd.Series([1, 2, 3]))


# No node.

def test_fallback_local_warns_once(monkeypatch, tmp_path):
    monkeypatch.setattr(nodes_module, "_warned_fallback", False)
    dead = f"grpc+unix://{tmp_path}/nothing.sock"

    @quiver.accelerate(address=dead)
    def f(x: pd.Series) -> pd.Series:
        return x * 3

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert f(pd.Series([1, 2])).tolist() == [3, 6]
        assert f(pd.Series([3])).tolist() == [9]
    msgs = [str(w.message) for w in got if "no quiver node" in str(w.message)]
    assert len(msgs) == 1 and "nothing.sock" in msgs[0]
    assert impl(f).local_batches == 2 and impl(f).remote_batches == 0


def test_fallback_error_raises_unavailable(tmp_path):
    @quiver.accelerate(address=f"grpc+unix://{tmp_path}/nothing.sock", fallback="error")
    def f(x: pd.Series) -> pd.Series:
        return x

    with pytest.raises(quiver.Unavailable, match="no quiver node reachable.*nothing.sock"):
        f(pd.Series([1]))


def test_fallback_local_for_iterators(monkeypatch, tmp_path):
    monkeypatch.setattr(nodes_module, "_warned_fallback", True)
    setups = []

    @quiver.accelerate(address=f"grpc+unix://{tmp_path}/nothing.sock")
    def f(it: Iterator[pd.Series]) -> Iterator[pd.Series]:
        setups.append(1)  # one setup for the whole stream, as in Spark
        for s in it:
            yield s + 1

    assert [o.tolist() for o in f(iter([pd.Series([1]), pd.Series([2])]))] == [[2], [3]]
    assert len(setups) == 1


# Cheap functions skip the detour.

def test_cheap_function_goes_local_then_reprobes(node, monkeypatch, unix_client):
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.delenv("QUIVER_ADAPTIVE", raising=False)
    monkeypatch.setattr(policy_module, "REPROBE_EVERY", 5)

    @quiver.accelerate
    def cheap(x: pd.Series) -> pd.Series:
        return x + 1

    x = pd.Series([1, 2, 3])
    cheap(x)
    if not impl(cheap).last_work_ms:
        pytest.xfail("the node reports no work_ms in its batches' app_metadata yet")
    for _ in range(2 + 5 + 1):
        assert cheap(x).tolist() == [2, 3, 4]
    # 3 remote batches, then 5 here, then one re-probe that is cheap again.
    assert impl(cheap).remote_batches == 4
    assert impl(cheap).local_batches == 5


def test_copies_in_one_process_share_the_switch(node, monkeypatch):
    """Spark unpickles a UDF for every task: a copy starts from what an earlier copy in
    the same process learned, and runs a cheap function here at once."""
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.delenv("QUIVER_ADAPTIVE", raising=False)

    @quiver.accelerate
    def cheap_shared(x: pd.Series) -> pd.Series:
        return x + 1

    first = pickle.loads(cloudpickle.dumps(cheap_shared))
    x = pd.Series([1, 2, 3])
    for _ in range(10):
        assert first(x).tolist() == [2, 3, 4]
        if impl(first).local_batches:
            break
    assert impl(first).local_batches, "the cheap function never went local"
    later = pickle.loads(cloudpickle.dumps(cheap_shared))
    assert impl(later) is not impl(first) and impl(later).adaptive is impl(first).adaptive
    assert later(x).tolist() == [2, 3, 4]
    assert impl(later).remote_batches == 0 and impl(later).local_batches == 1
    # Another accelerated function has a switch of its own.
    other = quiver.accelerate(lambda s: s + 2)
    assert impl(other).adaptive is not impl(first).adaptive


def test_costly_function_stays_on_the_node(node, monkeypatch):
    """Work spread over the node's workers beats running here: no switch. (Sleeps 0.4 s of
    work per batch across 2 workers; only a round trip over 0.2 s would flip it.)"""
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.delenv("QUIVER_ADAPTIVE", raising=False)

    @quiver.accelerate
    def slow(x: pd.Series) -> pd.Series:
        import time
        time.sleep(0.05 * len(x))
        return x + 1

    for _ in range(CHEAP_STREAK := 3):
        assert slow(pd.Series(range(8))).tolist() == list(range(1, 9))
    if not impl(slow).last_work_ms:
        pytest.xfail("the node reports no work_ms in its batches' app_metadata yet")
    assert impl(slow).remote_batches == CHEAP_STREAK and impl(slow).local_batches == 0


def test_explicit_rows_per_task_never_goes_local(env, monkeypatch):
    monkeypatch.delenv("QUIVER_ADAPTIVE", raising=False)

    @quiver.accelerate(rows_per_task=2)
    def cheap(x: pd.Series) -> pd.Series:
        return x + 1

    for _ in range(5):
        cheap(pd.Series([1, 2, 3]))
    assert impl(cheap).remote_batches == 5


# Shipping the wrapper (what Spark does).

def test_wrapper_pickles_without_its_connection(env):
    @quiver.accelerate
    def f(x: pd.Series) -> pd.Series:
        return x * 2

    f(pd.Series([1]))  # connect and register first
    g = pickle.loads(cloudpickle.dumps(f))
    assert g(pd.Series([4])).tolist() == [8]
    assert impl(g).remote_batches == 1 and impl(g) is not impl(f)


@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_accelerate_outside_a_pandas_udf_keeps_its_type():
    pytest.importorskip("pyspark")
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import DoubleType

    @quiver.accelerate
    @pandas_udf(DoubleType())
    def f(x: pd.Series) -> pd.Series:
        return x * 1.0

    assert isinstance(f.returnType, DoubleType)
    assert impl(f.func).explicit == pa.float64()
