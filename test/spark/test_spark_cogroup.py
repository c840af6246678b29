"""quiver.spark's cogroup helpers give exactly what Spark's own
df1.groupBy().cogroup(df2.groupBy()).applyInPandas and applyInArrow give on the same data, in
a real Spark (local mode): keys on one side only, null keys, every column type, the frames'
dtypes, empty results and sides, no keys, several and computed keys, the key-taking form,
columns by name and by position, errors with their messages; and the pairs run as tasks on
the node."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pyspark")

from pyspark import cloudpickle as spark_cloudpickle  # noqa: E402
from pyspark.sql import Row  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

import quiver.spark as qs  # noqa: E402
from sparkchecks import same_error  # noqa: E402
from test_spark_grouped import SCHEMA, check_same, ran_on_node, rows, tasks_total  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

RIGHT = ("k long, label string, amount decimal(10,2), at timestamp, tags array<string>, "
         "meta struct<a:int, b:double>, m map<string, double>")


def right_rows() -> list:
    """Keys 1, 2 (also in the left frame), 5 (right only) and null; nulls in every column."""
    out = []
    for n, k in enumerate([1, 1, 2, 5, 5, 5, None, None, 2]):
        null = n % 4 == 3
        out.append((k,) + (None,) * 6 if null else (
            k, f"r{n}", Decimal(n) / 4, dt.datetime(2022, 1, 1, n), [str(n)] * (n % 3),
            Row(a=n, b=float("nan") if n % 2 else n / 2), {"x": float("nan"), "y": None} if n % 2 else {}))
    return out


@pytest.fixture(scope="module")
def left(spark):
    return spark.createDataFrame(rows(), SCHEMA).repartition(3).cache()


@pytest.fixture(scope="module")
def right(spark):
    return spark.createDataFrame(right_rows(), RIGHT).repartition(2).cache()


def records(pdf: pd.DataFrame) -> str:
    """A frame's rows in an order of their own (Spark promises none within a group)."""
    return "\n".join(sorted(repr(r) for r in pdf.to_dict("records")))


def describe(key, lpdf, rpdf):
    return pd.DataFrame({"key": [repr(key)], "nl": [len(lpdf)], "nr": [len(rpdf)],
                         "ldt": [repr(list(lpdf.dtypes))], "rdt": [repr(list(rpdf.dtypes))],
                         "cols": [repr((list(lpdf.columns), list(rpdf.columns)))],
                         "lrows": [records(lpdf)], "rrows": [records(rpdf)]})


DESCRIBED = "key string, nl long, nr long, ldt string, rdt string, cols string, lrows string, rrows string"


def test_pairs_see_what_spark_gives_them(left, right, client):
    """Every key of either side, null keys paired, one side empty where the key is the
    other's only: the same key tuples, frames, dtypes and values as in Spark."""
    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    before = tasks_total(client)
    got = check_same(cg.applyInPandas(describe, DESCRIBED),
                     qs.cogroup_apply_in_pandas(cg, describe, DESCRIBED, fallback="error"), min_rows=6)
    ran_on_node(client, before, 6)
    by_key = {r.key: (r.nl, r.nr) for r in got}
    assert by_key["(np.int64(5),)"] == (0, 3) and by_key["(np.int64(0),)"][1] == 0
    assert by_key["(np.float64(nan),)"] == (2, 2)  # the null keys of both sides, as one pair


def test_two_argument_form_joins_as_spark(left, right):
    def joined(lpdf, rpdf):
        return pd.merge(lpdf[["k", "i", "s"]], rpdf[["k", "label"]], on="k", how="outer")

    schema = "k long, i int, s string, label string"
    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    check_same(cg.applyInPandas(joined, schema), qs.cogroup_apply_in_pandas(cg, joined, schema), min_rows=20)


def test_several_computed_keys_and_keys_of_other_types(left, right):
    def keyed(key, lpdf, rpdf):
        return pd.DataFrame({"key": [repr(key)], "n": [len(lpdf) + len(rpdf)]})

    cg = left.groupBy("k", (F.col("i") % 2).alias("p")).cogroup(
        right.groupBy("k", (F.length("label") % 2).alias("p")))
    check_same(cg.applyInPandas(keyed, "key string, n long"),
               qs.cogroup_apply_in_pandas(cg, keyed, "key string, n long"), min_rows=6)
    cg = left.groupBy(F.upper("s")).cogroup(right.groupBy("label"))  # string keys, null ones too
    check_same(cg.applyInPandas(keyed, "key string, n long"),
               qs.cogroup_apply_in_pandas(cg, keyed, "key string, n long"), min_rows=6)


def test_empty_results_sides_and_no_keys(left, right):
    def odd_only(key, lpdf, rpdf):
        if key[0] is None or pd.isna(key[0]) or key[0] % 2 == 0:
            return pd.DataFrame()  # no rows and no columns: Spark accepts it
        return pd.DataFrame({"k": [key[0]], "n": [len(lpdf) - len(rpdf)]})

    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    check_same(cg.applyInPandas(odd_only, "k long, n long"),
               qs.cogroup_apply_in_pandas(cg, odd_only, "k long, n long"), min_rows=2)
    nothing = lambda lpdf, rpdf: pd.DataFrame({"k": pd.Series([], dtype="int64")})  # noqa: E731
    out = qs.cogroup_apply_in_pandas(cg, nothing, "k long")
    check_same(cg.applyInPandas(nothing, "k long"), out, min_rows=0)
    assert out.count() == 0
    none_left = left.where("k > 100").groupBy("k").cogroup(right.groupBy("k"))  # one side empty
    check_same(none_left.applyInPandas(describe, DESCRIBED),
               qs.cogroup_apply_in_pandas(none_left, describe, DESCRIBED), min_rows=4)
    both_empty = left.where("k > 100").groupBy("k").cogroup(right.where("k > 100").groupBy("k"))
    check_same(both_empty.applyInPandas(describe, DESCRIBED),
               qs.cogroup_apply_in_pandas(both_empty, describe, DESCRIBED), min_rows=0)
    for cg in (left.groupBy().cogroup(right.groupBy()),  # no keys: one pair of every row
               left.where("k > 100").groupBy().cogroup(right.groupBy())):
        check_same(cg.applyInPandas(describe, DESCRIBED),
                   qs.cogroup_apply_in_pandas(cg, describe, DESCRIBED), min_rows=1)


def test_columns_by_name_by_position_and_legacy(left, right, spark):
    def reordered(lpdf, rpdf):
        return pd.DataFrame({"label": rpdf["label"].dropna().head(1).tolist() or [None], "k": [len(lpdf)]})

    def positional(lpdf, rpdf):
        return pd.DataFrame({0: [len(lpdf)], 1: [float(len(rpdf))]})

    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    for fn, schema in [(reordered, "k long, label string"), (positional, "a long, b double")]:
        check_same(cg.applyInPandas(fn, schema), qs.cogroup_apply_in_pandas(cg, fn, schema), min_rows=6)
    key = "spark.sql.legacy.execution.pandas.groupedMap.assignColumnsByName"
    spark.conf.set(key, "false")
    try:  # the legacy setting: by position even for string labels
        check_same(cg.applyInPandas(reordered, "a string, b long"),
                   qs.cogroup_apply_in_pandas(cg, reordered, "a string, b long"), min_rows=6)
    finally:
        spark.conf.unset(key)


ERRORS = {
    "wrong names": (lambda lpdf, rpdf: pd.DataFrame({"x": [1]}), "k long", "RESULT_COLUMN_NAMES_MISMATCH"),
    "not a frame": (lambda lpdf, rpdf: 42, "k long", "UDF_RETURN_TYPE"),
    "incompatible": (lambda lpdf, rpdf: pd.DataFrame({"k": ["not a number"]}), "k long", "PySparkValueError"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_result_errors_match_spark(left, right, case):
    fn, schema, kind = ERRORS[case]
    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    same_error(lambda: cg.applyInPandas(fn, schema),
               lambda: qs.cogroup_apply_in_pandas(cg, fn, schema, fallback="error"), kind)


def test_function_errors_and_bad_calls(left, right):
    def fails(key, lpdf, rpdf):
        if key[0] == 5:
            raise LookupError(f"no left rows for {key[0]}")
        return pd.DataFrame({"k": [len(lpdf)]})

    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    line, _ = same_error(lambda: cg.applyInPandas(fails, "k long"),
                         lambda: qs.cogroup_apply_in_pandas(cg, fails, "k long", fallback="error"), "LookupError")
    assert line == "LookupError: no left rows for 5"
    # checked when the query is planned, as Spark checks them
    with pytest.raises(Exception, match="INVALID_PANDAS_UDF"):
        qs.cogroup_apply_in_pandas(cg, lambda only_one: only_one, "k long")
    with pytest.raises(Exception, match="Cogroup keys must have same size: 2 != 1"):
        qs.cogroup_apply_in_pandas(left.groupBy("k", "s").cogroup(right.groupBy("k")), describe, DESCRIBED)
    with pytest.raises(TypeError, match="cogrouped pair"):
        qs.cogroup_apply_in_pandas(left.groupBy("k"), describe, DESCRIBED)


def test_apply_in_arrow_matches_spark(left, right, client):
    def keyed(key, lt: pa.Table, rt: pa.Table) -> pa.Table:
        return pa.table({"key": [repr(key)], "nl": [lt.num_rows], "nr": [rt.num_rows],
                         "schemas": [f"{lt.schema} / {rt.schema}"],
                         "top": [pc.max(lt["i"]).as_py() if lt.num_rows else None]}).cast(
            pa.schema([("key", pa.string()), ("nl", pa.int64()), ("nr", pa.int64()),
                       ("schemas", pa.string()), ("top", pa.int32())]))

    def right_labels(lt, rt):
        return rt.select(["label", "k"])

    cg = left.drop("ts").groupBy("k").cogroup(right.drop("at").groupBy("k"))
    before = tasks_total(client)
    check_same(cg.applyInArrow(keyed, "key string, nl long, nr long, schemas string, top int"),
               qs.cogroup_apply_in_arrow(cg, keyed, "key string, nl long, nr long, schemas string, top int"),
               min_rows=6)
    ran_on_node(client, before, 6)
    check_same(cg.applyInArrow(right_labels, "k long, label string"),
               qs.cogroup_apply_in_arrow(cg, right_labels, "k long, label string"), min_rows=9)
    same_error(lambda: cg.applyInArrow(right_labels, "k int"),
               lambda: qs.cogroup_apply_in_arrow(cg, right_labels, "k int", fallback="error"),
               "RESULT_COLUMN_NAMES_MISMATCH")


def test_no_node_falls_back_or_fails(left, right, tmp_path):
    dead = f"grpc+unix://{tmp_path}/nobody.sock"
    cg = left.groupBy("k").cogroup(right.groupBy("k"))
    with pytest.raises(Exception, match="no quiver node reachable.*nobody.sock"):
        qs.cogroup_apply_in_pandas(cg, describe, DESCRIBED, address=dead, fallback="error").collect()
    check_same(cg.applyInPandas(describe, DESCRIBED),
               qs.cogroup_apply_in_pandas(cg, describe, DESCRIBED, address=dead), min_rows=6)
