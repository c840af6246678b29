"""mapInPandas and mapInArrow over struct, nested struct, array-of-struct and map columns run
on the node, and the function sees each frame exactly as plain Spark builds it (real Spark,
local mode): mapInPandas gets struct and map columns as dicts (NaN apart from None), arrays
as numpy arrays of Spark's dtypes, every column with Spark's pandas dtype; mapInArrow gets
Spark's schema, field nullability included. Outputs and errors equal plain Spark's."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Iterator

import cloudpickle
import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("pyspark")

from pyspark import cloudpickle as spark_cloudpickle  # noqa: E402
from pyspark.sql import Row  # noqa: E402

import quiver  # noqa: E402
from test_spark_mapany import check  # noqa: E402  (same rows as a multiset; the node was called)

for _pickler in (cloudpickle, spark_cloudpickle):
    _pickler.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

SCHEMA = ("id long not null, "
          "st struct<a:int, b:string, d:double, ts:timestamp, ntz:timestamp_ntz, dt:date, "
          "dec:decimal(10,2), bin:binary, al:array<long>, m:map<string,double>, "
          "inner:struct<x:long, y:double>>, "
          "num struct<x:long, y:double>, "
          "ast array<struct<p:int, q:string>>, "
          "ms map<string, struct<u:int, v:array<double>>>, "
          "md map<string, double>, "
          "ats array<timestamp>, "
          "i int, d double, s string, ts timestamp")

NAN = float("nan")


def nested_rows() -> list:
    """Row 1 is null in every column but id; others mix NaN and None, empty and null values."""
    out = [
        (0, Row(a=1, b="x", d=NAN, ts=dt.datetime(2020, 1, 1, 12), ntz=dt.datetime(2020, 1, 1, 12),
                dt=dt.date(2020, 1, 2), dec=Decimal("1.25"), bin=b"ab", al=[1, None], m={"k": NAN, "n": None},
                inner=Row(x=5, y=NAN)),
         Row(x=1, y=NAN), [Row(p=1, q="a"), None, Row(p=None, q=None)], {"z": Row(u=1, v=[NAN, None]), "w": None},
         {"a": NAN, "b": None}, [dt.datetime(2021, 3, 14, 2, 30), None], 1, NAN, "é😀", dt.datetime(1900, 1, 1)),
        (1,) + (None,) * 10,
        (2, Row(a=None, b=None, d=None, ts=None, ntz=None, dt=None, dec=None, bin=None, al=None, m=None,
                inner=None),
         Row(x=None, y=None), [], {}, {}, [], None, None, "", None),
    ]
    for i in range(3, 12):
        out.append((i, Row(a=i, b=str(i), d=i / 3, ts=dt.datetime(2001, 2, 3, 4, 5, i),
                           ntz=dt.datetime(1970, 1, 1, i), dt=dt.date(2000, 1, i), dec=Decimal(i) / 4,
                           bin=bytes([i]), al=[i] * (i % 3), m={str(i): i / 2},
                           inner=Row(x=i, y=-i / 7) if i % 2 else None),
                    Row(x=i, y=i * 1.5), [Row(p=i, q=None)] * (i % 3), {str(i): Row(u=i, v=[i / 2])},
                    {"x": i / 4}, [dt.datetime(2020, 1, i)], i if i % 4 else None, i / 9, f"s{i}",
                    dt.datetime(2022, 6, i, 12)))
    return out


@pytest.fixture(scope="module")
def nested(spark):
    return spark.createDataFrame(nested_rows(), SCHEMA).repartition(3, "id").cache()


def describe_pandas(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """One row per input row: the frame's dtypes, index and column kinds, and the row's values
    as Python sees them (repr tells dict from DataFrame, NaN from None, array dtypes apart)."""
    for df in it:
        frame = f"{type(df.index).__name__} {df.columns.dtype!r} " + " ".join(
            f"{c}={df[c].dtype!r}" for c in df.columns)
        rows = [" | ".join(f"{c}={df[c].iloc[i]!r}" for c in df.columns) for i in range(len(df))]
        yield pd.DataFrame({"id": df["id"].astype("int64"), "frame": [frame] * len(df), "row": rows})


def describe_arrow(it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for b in it:
        rows = [repr(b.slice(i, 1).to_pylist()) for i in range(b.num_rows)]
        yield pa.RecordBatch.from_arrays(
            [b["id"], pa.array([str(b.schema)] * b.num_rows), pa.array(rows)], names=["id", "frame", "row"])


DESCRIBED = "id long, frame string, row string"
COLUMN_SETS = {
    "every column": None,                       # Spark's legacy conversion: dicts, ext dtypes
    "struct only": ["id", "num"],
    "numpy columns": ["id", "i", "d", "ts"],    # Spark's numpy conversion: ints with nulls as float
    "flat columns": ["id", "i", "s", "ts"],     # legacy: Int32, str, datetime64[us]
    "arrays of structs": ["id", "ast", "ms"],
}


@pytest.mark.parametrize("columns", COLUMN_SETS)
@pytest.mark.parametrize("size", [3, 10_000])
def test_pandas_frames_are_spark_s_own(nested, batch_size, node_calls, columns, size):
    batch_size(size)
    df = nested if COLUMN_SETS[columns] is None else nested.select(*COLUMN_SETS[columns])
    rows = check(df.mapInPandas(describe_pandas, DESCRIBED),
                 df.mapInPandas(quiver.accelerate(describe_pandas), DESCRIBED), node_calls)
    assert len(rows) == 12
    if columns == "every column":
        first = next(r.row for r in rows if r.id == 0)
        assert "st={'a': 1, 'b': 'x', 'd': nan" in first and "'n': None" in first, first


def test_arrow_batches_are_spark_s_own(nested, batch_size, node_calls):
    batch_size(4)
    rows = check(nested.mapInArrow(describe_arrow, DESCRIBED),
                 nested.mapInArrow(quiver.accelerate(describe_arrow), DESCRIBED), node_calls, least=3)
    assert all("id: int64 not null" in r.frame for r in rows)


def explode_pandas(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Rows repeated id % 3 times, with a field of the struct pulled out of its dicts."""
    for df in it:
        out = df.loc[df.index.repeat(df["id"] % 3)].reset_index(drop=True)
        yield out.assign(a=[None if v is None else v["a"] for v in out["st"]])


def test_nested_columns_round_trip(nested, batch_size, node_calls):
    """Struct, map and array-of-struct columns go back to Spark as the plain function's do."""
    batch_size(3)
    schema = f"{SCHEMA}, a int"
    rows = check(nested.mapInPandas(explode_pandas, schema),
                 nested.mapInPandas(quiver.accelerate(explode_pandas), schema), node_calls, least=3)
    assert len(rows) == sum(i % 3 for i in range(12))


def error_of(run) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        run()
    return type(info.value), str(info.value)


def test_a_function_that_expects_a_dataframe_fails_as_in_spark(nested):
    """A struct column is a Series of dicts, never a DataFrame: code that indexes it by
    field name fails alike, with the same exception."""
    def by_field(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in it:
            yield pd.DataFrame({"id": df["id"], "a": df["num"]["x"]})

    plain_type, plain = error_of(lambda: nested.mapInPandas(by_field, "id long, a long").collect())
    acc_type, acc = error_of(lambda: nested.mapInPandas(quiver.accelerate(by_field), "id long, a long").collect())
    assert acc_type is plain_type
    assert "KeyError" in plain and "KeyError" in acc


def test_wrong_struct_schema_fails_as_in_spark(nested):
    def ident(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from it

    schema = "id long, num struct<x:string, y:double>"
    df = nested.select("id", "num")
    plain_type, plain = error_of(lambda: df.mapInPandas(ident, schema).collect())
    acc_type, acc = error_of(lambda: df.mapInPandas(quiver.accelerate(ident), schema).collect())
    assert acc_type is plain_type
    for text in (plain, acc):
        assert "num" in text
