"""pandas <-> Arrow conversions (quiver._convert) and Spark DDL types (quiver.types).

The rule under test: pandas_to_arrow then arrow_to_pandas gives back exactly the
pandas objects Spark hands a pandas UDF, dtypes included; and where pyspark is
installed, arrow_to_pandas gives what pyspark itself would have given."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quiver._convert import arrow_to_pandas, pandas_to_arrow
from quiver.types import to_arrow_type

D = decimal.Decimal
SESSION_TZ = "America/Los_Angeles"


# A strict comparison: dtypes, value types, numpy array dtypes, Decimal digits.

def assert_same(got, want, path="value"):
    if isinstance(want, pd.DataFrame):
        assert isinstance(got, pd.DataFrame), f"{path}: got {type(got).__name__}, want a DataFrame"
        assert list(got.columns) == list(want.columns), path
        assert len(got) == len(want), path
        for i, c in enumerate(want.columns):
            assert_same(got.iloc[:, i], want.iloc[:, i], f"{path}[{c!r}]")
        return
    if isinstance(want, pd.Series):
        assert isinstance(got, pd.Series), f"{path}: got {type(got).__name__}, want a Series"
        assert got.dtype == want.dtype, f"{path}: dtype {got.dtype} != {want.dtype}"
        assert len(got) == len(want), path
        if want.dtype == object:
            for i, (g, w) in enumerate(zip(got, want)):
                _same_value(g, w, f"{path}[{i}]")
        else:
            pdt.assert_series_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                    check_names=False, check_exact=True)
        return
    _same_value(got, want, path)


def _same_value(g, w, path):
    if w is None or (isinstance(w, float) and np.isnan(w)):
        assert g is None or (isinstance(g, float) and np.isnan(g)), f"{path}: {g!r} != {w!r}"
        assert type(g) is type(w), f"{path}: {g!r} != {w!r}"
        return
    if isinstance(w, np.ndarray):
        assert isinstance(g, np.ndarray), f"{path}: {g!r} is not an ndarray"
        assert g.dtype == w.dtype, f"{path}: array dtype {g.dtype} != {w.dtype}"
        assert len(g) == len(w), path
        for i, (gi, wi) in enumerate(zip(g, w)):
            _same_value(gi, wi, f"{path}[{i}]")
        return
    if isinstance(w, dict):
        assert isinstance(g, dict), f"{path}: {g!r} is not a dict"
        assert list(g) == list(w), f"{path}: keys {list(g)} != {list(w)}"
        for k in w:
            _same_value(g[k], w[k], f"{path}[{k!r}]")
        return
    if isinstance(w, (np.generic,)):
        assert g == w and type(g) is type(w), f"{path}: {g!r} != {w!r}"
        return
    assert type(g) is type(w), f"{path}: {type(g).__name__} {g!r} != {type(w).__name__} {w!r}"
    if isinstance(w, D):
        assert str(g) == str(w), f"{path}: {g!r} != {w!r}"
    else:
        assert g == w, f"{path}: {g!r} != {w!r}"


def obj(*values):
    """An object Series holding exactly these values (arrays and dicts as single values)."""
    a = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        a[i] = v
    return pd.Series(a, dtype=object)


def round_trip(value, type=None):
    arr = pandas_to_arrow(value, type)
    assert isinstance(arr, pa.Array)
    if type is not None:
        assert arr.type == type and str(arr.type) == str(type), f"{arr.type} != {type}"
    return arrow_to_pandas(arr)


LONG = "x" * 5_000_000 + "é"
UNICODE = "naïve café — 東京 — 🚀👩‍👩‍👧 — \u0301e — \x00nul"
MAP_SL = pa.map_(pa.string(), pa.int64())
STRUCT_IS = pa.struct([("a", pa.int32()), ("b", pa.string())])

# (id, the pandas object as Spark gives it, Arrow types to try: None = inferred)
CASES = [
    ("float64-nan", pd.Series([1.5, np.nan, -0.0, np.inf]), [None, pa.float64()]),
    ("float32", pd.Series([1.5, np.nan], dtype=np.float32), [None, pa.float32()]),
    ("int8", pd.Series([-128, 0, 127], dtype=np.int8), [None, pa.int8()]),
    ("int16", pd.Series([-32768, 1], dtype=np.int16), [None, pa.int16()]),
    ("int32", pd.Series([-2**31, 2**31 - 1], dtype=np.int32), [None, pa.int32()]),
    ("int64", pd.Series([-2**63, 2**63 - 1], dtype=np.int64), [None, pa.int64()]),
    ("bool", pd.Series([True, False]), [None, pa.bool_()]),
    ("bool-null", obj(True, None, False), [None, pa.bool_()]),
    ("nullable-int-as-float64", pd.Series([1.0, np.nan, 3.0]), [None, pa.int64(), pa.int32(), pa.int8()]),
    ("str", pd.Series(["a", np.nan, ""], dtype="str"), [None, pa.string(), pa.large_string()]),
    ("str-long-unicode", pd.Series([LONG, UNICODE, np.nan], dtype="str"), [None, pa.string()]),
    ("binary", obj(b"\x00\xffab", None, b""), [None, pa.binary(), pa.large_binary()]),
    ("decimal-38-18", obj(D("1.500000000000000000"), None, D("-12345678901234567890.123456789012345678")),
     [pa.decimal128(38, 18)]),
    ("decimal-10-2", obj(D("0.00"), D("-99999999.99"), None), [None, pa.decimal128(10, 2)]),
    ("date", obj(dt.date(1969, 1, 1), None, dt.date(2262, 4, 12), dt.date(1, 1, 1), dt.date(1970, 1, 1)),
     [None, pa.date32()]),
    ("timestamp-naive-ns", pd.Series(pd.to_datetime(
        ["1960-01-01 00:00:00", "2020-03-08 02:30:00", "2020-11-01 01:30:00", None,
         "1969-12-31 23:59:59.999999"], format="ISO8601")).astype("datetime64[ns]"),
     [None, pa.timestamp("us"), pa.timestamp("ns")]),
    ("timestamp-tz", pd.Series(pd.to_datetime(["2020-03-08 10:30", None]).tz_localize("UTC")).astype(
        "datetime64[ns, UTC]"), [None]),
    ("array-long", obj(np.array([1, 2]), np.array([], dtype=np.int64), None),
     [None, pa.list_(pa.int64()), to_arrow_type("array<bigint>")]),
    ("array-long-nulls", obj(np.array([1, None], dtype=object), None, np.array([3], dtype=object)),
     [None, to_arrow_type("array<bigint>")]),
    ("array-double", obj(np.array([1.5, np.nan]), None), [None, to_arrow_type("array<double>")]),
    ("array-array-string", obj(np.array([np.array(["a", None], dtype=object), None], dtype=object), None),
     [None, to_arrow_type("array<array<string>>")]),
    ("map", obj({"a": 1, "b": None}, {}, None, {"c": -5}), [None, MAP_SL, to_arrow_type("map<string,bigint>")]),
    ("map-int-keys", obj({1: "x"}, {2: None}), [None, pa.map_(pa.int64(), pa.string())]),
    ("map-of-arrays", obj({"k": np.array([1, 2])}, None), [None, to_arrow_type("map<string,array<bigint>>")]),
    ("map-of-maps", obj({"k": {"x": 1.5}}, {}), [None, to_arrow_type("map<string,map<string,double>>")]),
    ("array-of-maps", obj(np.array([{"a": 1}, None], dtype=object), None),
     [None, to_arrow_type("array<map<string,bigint>>")]),
    ("array-of-structs", obj(np.array([{"a": 1, "b": "x"}], dtype=object), None),
     [to_arrow_type("array<struct<a:bigint,b:string>>")]),
    ("struct", pd.DataFrame({"a": pd.Series([1, 2], dtype=np.int32),
                             "b": pd.Series(["x", np.nan], dtype="str")}), [None, STRUCT_IS]),
    ("struct-nullable-int", pd.DataFrame({"a": pd.Series([1, None], dtype="Int32"),
                                          "b": pd.Series(["x", np.nan], dtype="str")}), [None, STRUCT_IS]),
    ("struct-big-nullable-int", pd.DataFrame({"a": pd.Series([2**62 + 1, None], dtype="Int64"),
                                              "b": obj(D("1.5"), None)}), [None]),
    ("struct-numeric", pd.DataFrame({"a": [1.0, np.nan], "b": [True, False]}),
     [None, to_arrow_type("struct<a:int,b:boolean>")]),
    ("struct-nested", pd.DataFrame({"x": obj({"y": 1}, {"y": None}), "z": obj(np.array([1]), None),
                                    "m": obj({"k": 1}, None)}),
     [None, to_arrow_type("struct<x:struct<y:bigint>,z:array<bigint>,m:map<string,bigint>>")]),
    ("struct-with-timestamp-and-string", pd.DataFrame({
        "t": pd.Series(pd.to_datetime(["2020-03-08 02:30", None])).astype("datetime64[us]"),
        "s": pd.Series(["a", "b"], dtype="str")}), [None, to_arrow_type("struct<t:timestamp,s:string>")]),
    ("empty-float", pd.Series([], dtype=np.float64), [None, pa.float64()]),
    ("empty-str", pd.Series([], dtype="str"), [None, pa.string()]),
    ("empty-object", pd.Series([], dtype=object), [None, MAP_SL, pa.decimal128(38, 18), pa.binary()]),
    ("empty-struct", pd.DataFrame({"a": pd.Series([], dtype=np.int32), "b": pd.Series([], dtype="str")}),
     [None, STRUCT_IS]),
    ("all-null-object", obj(None, None), [None, MAP_SL, pa.binary()]),
]


@pytest.mark.parametrize("value,types", [pytest.param(v, t, id=i) for i, v, t in CASES])
def test_round_trip(value, types):
    for t in types:
        assert_same(round_trip(value, t), value, f"via {t}")


def test_nan_travels_as_null_and_comes_back_nan():
    arr = pandas_to_arrow(pd.Series([1.0, np.nan]))
    assert arr.null_count == 1
    back = arrow_to_pandas(arr)
    assert back.dtype == np.float64 and np.isnan(back[1])


def test_int_with_nulls_is_float64_like_spark():
    back = arrow_to_pandas(pa.array([1, None], pa.int32()))
    assert back.dtype == np.float64 and back.iloc[0] == 1.0 and np.isnan(back.iloc[1])
    assert arrow_to_pandas(pa.array([1, 2], pa.int32())).dtype == np.int32


def test_object_strings_come_back_as_the_str_dtype():
    s = obj("a", None, "ü")
    back = round_trip(s)
    assert back.dtype == "str" and back.iloc[0] == "a" and pd.isna(back.iloc[1]) and back.iloc[2] == "ü"


def test_bytearray_comes_back_as_bytes():
    back = round_trip(obj(bytearray(b"ab"), None), pa.binary())
    assert back.iloc[0] == b"ab" and type(back.iloc[0]) is bytes and back.iloc[1] is None


def test_decimal_inference_keeps_digits():
    arr = pandas_to_arrow(obj(D("1.5"), D("-22.125"), None))
    assert arr.type == pa.decimal128(5, 3)
    assert arrow_to_pandas(arr).tolist() == [D("1.500"), D("-22.125"), None]


def test_decimal_precision_and_scale_come_from_the_type():
    arr = pandas_to_arrow(obj(D("1.5"), None), pa.decimal128(38, 18))
    assert arr.type == pa.decimal128(38, 18)
    assert str(arrow_to_pandas(arr).iloc[0]) == "1.500000000000000000"
    arr = pandas_to_arrow(pd.Series([1, 2]), pa.decimal128(10, 2))  # ints to a decimal
    assert arrow_to_pandas(arr).tolist() == [D("1.00"), D("2.00")]


def test_timestamps_stay_naive_and_unshifted():
    s = pd.Series(pd.to_datetime(["2020-03-08 02:30:00", "1900-01-01 00:00:00"])).astype("datetime64[ns]")
    arr = pandas_to_arrow(s, pa.timestamp("us"))
    assert arr.type == pa.timestamp("us")
    assert arr.to_pylist() == [dt.datetime(2020, 3, 8, 2, 30), dt.datetime(1900, 1, 1)]
    assert_same(arrow_to_pandas(arr), s)


def test_nanoseconds_truncate_to_microseconds_like_spark():
    s = pd.Series(pd.to_datetime(["2020-01-01 00:00:00.000001999"]))
    assert pandas_to_arrow(s, pa.timestamp("us")).to_pylist() == [dt.datetime(2020, 1, 1, 0, 0, 0, 1)]


def test_tz_aware_to_naive_uses_the_given_zone():
    s = pd.Series(pd.to_datetime(["2020-07-01 12:00"]).tz_localize("UTC"))
    assert pandas_to_arrow(s, pa.timestamp("us")).to_pylist() == [dt.datetime(2020, 7, 1, 12)]
    got = pandas_to_arrow(s, pa.timestamp("us"), timezone=SESSION_TZ).to_pylist()
    assert got == [dt.datetime(2020, 7, 1, 5)]


def test_timestamps_beyond_the_ns_range_keep_their_unit():
    arr = pa.array([dt.datetime(2262, 4, 12), dt.datetime(1, 1, 1)], pa.timestamp("us"))
    back = arrow_to_pandas(arr)
    assert back.dtype == "datetime64[us]"
    assert pandas_to_arrow(back, pa.timestamp("us")).equals(arr)


def test_dicts_infer_a_map_not_a_struct():
    arr = pandas_to_arrow(obj({"a": 1}, {"b": 2, "c": 3}, {}, None))
    assert arr.type == pa.map_(pa.string(), pa.int64())
    assert arrow_to_pandas(arr).tolist() == [{"a": 1}, {"b": 2, "c": 3}, {}, None]


def test_struct_fields_by_name_or_by_position():
    t = pa.struct([("a", pa.int64()), ("b", pa.string())])
    by_name = pandas_to_arrow(pd.DataFrame({"b": ["x"], "a": [1]}), t)
    assert by_name.to_pylist() == [{"a": 1, "b": "x"}]
    by_pos = pandas_to_arrow(pd.DataFrame({"p": [1], "q": ["x"]}), t)
    assert by_pos.to_pylist() == [{"a": 1, "b": "x"}]


def test_struct_from_series_of_dicts():
    t = pa.struct([("a", pa.int64())])
    assert pandas_to_arrow(obj({"a": 1}, None), t).to_pylist() == [{"a": 1}, None]


def test_arrow_input_is_cast_exactly():
    a = pa.chunked_array([pa.array([[1]], pa.list_(pa.int64()))])
    out = pandas_to_arrow(a, to_arrow_type("array<bigint>"))
    assert isinstance(out, pa.Array) and str(out.type) == "list<element: int64>"


def test_categorical_converts_as_its_values():
    s = pd.Series(["a", "b", "a"], dtype="category")
    assert arrow_to_pandas(pandas_to_arrow(s)).tolist() == ["a", "b", "a"]


def test_ddl_string_as_type():
    assert pandas_to_arrow(pd.Series([1, 2]), "int").type == pa.int32()


@pytest.mark.parametrize("value,type,words", [
    (pd.Series(["x", "y"]), pa.float64(), ["double", "str"]),
    (pd.Series([1.5]), pa.int64(), ["int64", "truncated"]),
    (pd.Series([300]), pa.int8(), ["int8"]),
    (obj(D("1.123")), pa.decimal128(10, 2), ["decimal128(10, 2)"]),
    (obj("x"), MAP_SL, ["map<string, int64>"]),
    (obj({"a": "x"}), MAP_SL, ["map<string, int64>"]),
    (pd.DataFrame({"a": [1]}), pa.int64(), ["struct", "int64"]),
    (pd.DataFrame({"a": [1], "b": [2], "c": [3]}), STRUCT_IS, ["3 columns for 2 fields", "struct<a: int32, b: string>"]),
    (pd.DataFrame({"a": [1], "b": [2.5]}), pa.struct([("a", pa.int32()), ("b", pa.int32())]), ["'b'", "int32"]),
])
def test_conversion_errors_name_the_type(value, type, words):
    with pytest.raises(TypeError) as e:
        pandas_to_arrow(value, type)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_uninferable_objects_are_a_type_error():
    with pytest.raises(TypeError, match="cannot convert"):
        pandas_to_arrow(obj(object(), 1))
    with pytest.raises(TypeError, match="pandas Series"):
        pandas_to_arrow(3.5)


def test_arrow_to_pandas_names_the_series():
    assert arrow_to_pandas(pa.array([1]), name="x").name == "x"


# Parity with pyspark itself: what its scalar pandas UDF path hands the function.

SPARK_CASES = [
    ("double", pa.array([1.5, None, float("nan")])),
    ("float", pa.array([1.5, None], pa.float32())),
    ("tinyint", pa.array([1, 2], pa.int8())),
    ("smallint", pa.array([1, None], pa.int16())),
    ("int", pa.array([1, None], pa.int32())),
    ("bigint", pa.array([2**62, 3])),
    ("boolean", pa.array([True, False])),
    ("boolean", pa.array([True, None])),
    ("string", pa.array(["a", None, UNICODE])),
    ("binary", pa.array([b"a", None])),
    ("decimal(38,18)", pa.array([D("1.5"), None], pa.decimal128(38, 18))),
    ("decimal(5,2)", pa.array([D("-1.25"), None], pa.decimal128(5, 2))),
    ("date", pa.array([dt.date(1969, 1, 1), None, dt.date(2262, 4, 12)])),
    ("timestamp", pa.array([dt.datetime(2020, 3, 8, 10, 30), None, dt.datetime(1960, 1, 1)],
                           pa.timestamp("us", tz=SESSION_TZ))),
    ("timestamp_ntz", pa.array([dt.datetime(1960, 3, 8, 10, 30), None], pa.timestamp("us"))),
    ("array<bigint>", pa.array([[1, None], None, []], pa.list_(pa.field("element", pa.int64())))),
    ("array<bigint>", pa.array([[1, 2], []], pa.list_(pa.field("element", pa.int64())))),
    ("array<array<string>>", pa.array([[["a", None], None], None], pa.list_(pa.list_(pa.string())))),
    ("map<string,bigint>", pa.array([{"a": 1}, None, {}], MAP_SL)),
    ("map<string,array<bigint>>", pa.array([{"k": [1]}, None], pa.map_(pa.string(), pa.list_(pa.int64())))),
    ("struct<a:int,b:string>", pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": None}], STRUCT_IS)),
    ("struct<a:int,b:double>", pa.array([{"a": 1, "b": 1.0}, None],
                                        pa.struct([("a", pa.int32()), ("b", pa.float64())]))),
    ("struct<x:struct<y:bigint>,m:map<string,bigint>>",
     pa.array([{"x": {"y": 1}, "m": {"k": 1}}, None],
              pa.struct([("x", pa.struct([("y", pa.int64())])), ("m", MAP_SL)]))),
]


def _spark_pandas(arr: pa.Array):
    from pyspark.sql import types as T
    from pyspark.sql.conversion import ArrowBatchTransformer
    from pyspark.sql.pandas.types import from_arrow_type

    spark_type = from_arrow_type(arr.type)
    batch = pa.RecordBatch.from_arrays([arr], names=["_0"])
    return ArrowBatchTransformer.to_pandas(
        batch, timezone=SESSION_TZ, schema=T.StructType([T.StructField("_0", spark_type)]),
        struct_in_pandas="dict", ndarray_as_list=False, df_for_struct=True)[0], spark_type


def _quiver_wire(arr: pa.Array) -> pa.Array:
    """Spark's wire carries timestamps with the session zone; Quiver's, its wall-clock time."""
    if pa.types.is_timestamp(arr.type) and arr.type.tz:
        return pc.local_timestamp(arr).cast(pa.timestamp(arr.type.unit))
    return arr


@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
@pytest.mark.parametrize("ddl,arr", [pytest.param(d, a, id=f"{d}-{i}") for i, (d, a) in enumerate(SPARK_CASES)])
def test_parity_with_pyspark(ddl, arr):
    pytest.importorskip("pyspark")
    from pyspark.sql import types as T
    from pyspark.sql.conversion import PandasToArrowConversion

    want, spark_type = _spark_pandas(arr)
    assert to_arrow_type(spark_type) == to_arrow_type(ddl)
    # What the function sees behind Quiver is what Spark would have handed it...
    assert_same(arrow_to_pandas(_quiver_wire(arr)), want, "arrow_to_pandas")
    # ...also after the accelerate wrapper's trip through pandas_to_arrow with the Spark type.
    wire = pandas_to_arrow(want, to_arrow_type(ddl), timezone=SESSION_TZ)
    assert_same(arrow_to_pandas(wire), want, "round trip")
    assert_same(arrow_to_pandas(pandas_to_arrow(want)), want, "inferred round trip")
    # And Spark takes the result back exactly as it would take the original objects.
    def to_spark(pandas_obj):
        return PandasToArrowConversion.convert(
            [pandas_obj], T.StructType([T.StructField("_0", spark_type)]),
            timezone=SESSION_TZ, safecheck=True, arrow_cast=True).column(0)

    assert to_spark(arrow_to_pandas(wire)).equals(to_spark(want))


# Spark DDL -> Arrow types.

DDL = [
    ("double", pa.float64()), ("DOUBLE", pa.float64()), ("float", pa.float32()), ("real", pa.float32()),
    ("int", pa.int32()), ("Integer", pa.int32()), ("bigint", pa.int64()), ("long", pa.int64()),
    ("smallint", pa.int16()), ("short", pa.int16()), ("tinyint", pa.int8()), ("byte", pa.int8()),
    ("boolean", pa.bool_()), ("string", pa.string()), ("varchar(20)", pa.string()),
    ("binary", pa.binary()), ("date", pa.date32()),
    ("timestamp", pa.timestamp("us")), ("timestamp_ntz", pa.timestamp("us")),
    ("decimal", pa.decimal128(10, 0)), ("decimal(38,18)", pa.decimal128(38, 18)),
    ("decimal(5)", pa.decimal128(5, 0)), (" Decimal ( 12 , 4 ) ", pa.decimal128(12, 4)),
    ("array<bigint>", pa.list_(pa.field("element", pa.int64()))),
    ("array< array< string > >", pa.list_(pa.field("element", pa.list_(pa.field("element", pa.string()))))),
    ("map<string,bigint>", pa.map_(pa.field("key", pa.string(), False), pa.field("value", pa.int64()))),
    ("MAP<STRING, ARRAY<DOUBLE>>", pa.map_(pa.string(), pa.list_(pa.field("element", pa.float64())))),
    ("struct<a:int,b:string>", pa.struct([("a", pa.int32()), ("b", pa.string())])),
    ("struct<a int, b string>", pa.struct([("a", pa.int32()), ("b", pa.string())])),
    ("a int, b string", pa.struct([("a", pa.int32()), ("b", pa.string())])),
    ("a: double", pa.struct([("a", pa.float64())])),
    ("`weird name` int NOT NULL, c string COMMENT 'hi'",
     pa.struct([pa.field("weird name", pa.int32(), False), ("c", pa.string())])),
    ("struct<x:struct<y:map<string,array<struct<z:decimal(10,2)>>>>>",
     pa.struct([("x", pa.struct([("y", pa.map_(pa.string(), pa.list_(pa.field(
         "element", pa.struct([("z", pa.decimal128(10, 2))])))))]))])),
    ("struct<>", pa.struct([])),
]


@pytest.mark.parametrize("ddl,want", DDL, ids=[d for d, _ in DDL])
def test_ddl(ddl, want):
    got = to_arrow_type(ddl)
    assert got == want and str(got) == str(want)


@pytest.mark.parametrize("ddl,words", [
    ("", ["empty"]),
    ("doubel", ["unknown type 'doubel'"]),
    ("arry<int>", ["unknown type 'arry'"]),
    ("array<int", ["expected '>'"]),
    ("map<string>", ["expected ','"]),
    ("decimal(40,2)", ["precision"]),
    ("decimal(5,6)", ["scale"]),
    ("struct<a:int,>", ["field name"]),
    ("a int, b strin", ["unknown type 'strin'"]),
    ("int;", ["unexpected character ';'"]),
])
def test_bad_ddl(ddl, words):
    with pytest.raises(ValueError) as e:
        to_arrow_type(ddl)
    assert f"{ddl!r}" in str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_type_objects():
    assert to_arrow_type(pa.int16()) == pa.int16()
    with pytest.raises(TypeError, match="DDL"):
        to_arrow_type(3)


def test_pyspark_types():
    T = pytest.importorskip("pyspark.sql.types")
    assert to_arrow_type(T.DoubleType()) == pa.float64()
    assert to_arrow_type(T.DecimalType(38, 18)) == pa.decimal128(38, 18)
    assert to_arrow_type(T.TimestampType()) == pa.timestamp("us")
    got = to_arrow_type(T.StructType([
        T.StructField("a", T.ArrayType(T.LongType(), containsNull=False)),
        T.StructField("m", T.MapType(T.StringType(), T.DateType()), nullable=False)]))
    want = pa.struct([pa.field("a", pa.list_(pa.field("element", pa.int64(), False))),
                      pa.field("m", pa.map_(pa.string(), pa.date32()), False)])
    assert got == want and str(got) == str(want)


def test_pyarrow_alias_as_returns():
    from quiver.types import to_arrow_type
    assert to_arrow_type("int64") == pa.int64()
    assert to_arrow_type("float32") == pa.float32()
    assert to_arrow_type("bigint") == pa.int64()  # DDL wins where both read it
    with pytest.raises(ValueError):
        to_arrow_type("int65")
