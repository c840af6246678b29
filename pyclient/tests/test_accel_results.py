"""quiver.accelerate's results without returns=, called directly against the session's node:
nested structs from dicts and Rows, results no Arrow type holds (carried pickled, exactly as
returned), DataFrames with integer column labels, and a scalar where a Series is due."""

from __future__ import annotations

import sys
from collections import namedtuple
from decimal import Decimal
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pytest

import quiver
from quiver._accel.pickled import PICKLED

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def env(node, monkeypatch):
    monkeypatch.setenv("QUIVER_ADDRESS", node.unix)
    monkeypatch.setenv("QUIVER_ADAPTIVE", "0")
    return node


def run(fn, *args, **options):
    """fn plain and accelerated (every batch on the node) on the same arguments."""
    acc = quiver.accelerate(fallback="error", **options)(fn)
    got = acc(*args)
    assert acc.__quiver__.remote_batches == 1 and acc.__quiver__.local_batches == 0
    return fn(*args), got, acc.__quiver__


def test_nested_struct_from_dicts(env):
    def nested(v: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"a": v * 1.5, "inner": [{"x": f"s{i}", "y": float(i)} for i in v]})

    want, got, impl = run(nested, pd.Series([1, 2, 3], index=[10, 11, 12]), rows_per_task=1)
    pd.testing.assert_frame_equal(got, want)
    (t,) = impl.types._returns.values()
    assert t == pa.struct([("a", pa.float64()), ("inner", pa.struct([("x", pa.string()), ("y", pa.float64())]))])


def test_rows_are_structs(env):
    Point = namedtuple("Point", "x label")

    def points(v: pd.Series) -> pd.Series:
        return pd.Series([[Point(float(i), str(i)), Point(-1.0, "neg")] for i in v])

    want, got, impl = run(points, pd.Series([1, 2]), rows_per_task=1)
    assert [list(x) for x in got] == [[{"x": 1.0, "label": "1"}, {"x": -1.0, "label": "neg"}],
                                      [{"x": 2.0, "label": "2"}, {"x": -1.0, "label": "neg"}]]
    assert want.tolist()[0][0] == Point(1.0, "1")  # Spark converts either to its struct


def test_unconvertible_result_travels_pickled(env):
    def tags(v: pd.Series) -> pd.Series:
        return pd.Series([frozenset({i, "x"}) for i in v], dtype=object)

    want, got, impl = run(tags, pd.Series(range(7)), rows_per_task=2)
    assert list(impl.types._returns.values()) == [PICKLED]
    pd.testing.assert_series_equal(got, want)


def test_result_that_stops_converting_travels_pickled(env):
    def mixed(v: pd.Series) -> pd.Series:
        return pd.Series([Decimal("1.5") if i % 2 else 2.5 for i in v], dtype=object)

    acc = quiver.accelerate(fallback="error", rows_per_task=2)(mixed)
    batch = pd.Series(range(7))
    first = acc(batch)  # inferred double from one row; the node cannot convert: run here, widen
    assert list(acc.__quiver__.types._returns.values()) == [PICKLED]
    second = acc(batch)
    assert acc.__quiver__.remote_batches == 1
    for got in (first, second):
        pd.testing.assert_series_equal(got, mixed(batch))
        assert [type(x) for x in got] == [type(x) for x in mixed(batch)]


def test_integer_column_labels_survive(env):
    def split(s: pd.Series) -> pd.DataFrame:
        return s.str.split(" ", expand=True)

    names = pd.Series(["ada lovelace", "alan turing", "grace hopper"], index=[5, 6, 7])
    want, got, impl = run(split, names, rows_per_task=1)
    assert list(got.columns) == [0, 1]
    pd.testing.assert_frame_equal(got, want)
    # One piece per task, joined: each column is one Arrow chunk again, as Spark needs.
    assert all(isinstance(pa.Array.from_pandas(got[c]), pa.Array) for c in got.columns)


def test_pickled_class_and_iterator_forms(env):
    class Pair:
        def __call__(self, v: pd.Series) -> pd.DataFrame:
            return pd.DataFrame({0: v, 1: v.astype(str)})

    acc = quiver.accelerate(fallback="error", rows_per_task=2)(Pair)
    v = pd.Series([3, 4, 5])
    pd.testing.assert_frame_equal(acc(v), Pair()(v))
    assert acc.__quiver__.remote_batches == 1

    def pairs(it: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for v in it:
            yield pd.DataFrame({0: v * 2, 1: v})

    acc = quiver.accelerate(fallback="error", rows_per_task=1)(pairs)
    got = list(acc(iter([pd.Series([1, 2]), pd.Series([3])])))
    assert [g.values.tolist() for g in got] == [[[2, 1], [4, 2]], [[6, 3]]]
    assert all(list(g.columns) == [0, 1] for g in got)
    assert acc.__quiver__.remote_batches == 2


def test_pickled_on_error_null(env):
    def picky(v: pd.Series) -> pd.DataFrame:
        if (v == 3).any():
            raise ValueError("three")
        return pd.DataFrame({0: v, 1: v * 10})

    acc = quiver.accelerate(fallback="error", rows_per_task=1, on_error="null")(picky)
    acc(pd.Series([1]))  # infers the (pickled) result type on a good batch
    with pytest.warns(RuntimeWarning, match="three"):
        got = acc(pd.Series([1, 2, 3, 4]))
    assert got.iloc[:, 0].tolist()[:2] == [1, 2] and got.iloc[2].isna().all() and got.iloc[3, 1] == 40


@pytest.mark.parametrize("returns", [None, "bigint"])
def test_scalar_result_says_what_it_returned(env, returns):
    def one(v: pd.Series):
        return 1

    acc = quiver.accelerate(fallback="error", returns=returns)(one)
    with pytest.raises(Exception, match=r"Return type of the user-defined function should be "
                                        r"pandas\.Series, but is int") as e:
        acc(pd.Series([1, 2]))
    assert "None rows" not in str(e.value)
