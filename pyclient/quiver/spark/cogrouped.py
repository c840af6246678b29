"""Cogrouped maps whose pairs of groups run in parallel on a quiver node.

    import quiver.spark as qs

    # df1.groupBy("id").cogroup(df2.groupBy("id")).applyInPandas(asof, schema), accelerated:
    out = qs.cogroup_apply_in_pandas(df1.groupBy("id").cogroup(df2.groupBy("id")), asof, schema)
    out = qs.cogroup_apply_in_arrow(df1.groupBy("id").cogroup(df2.groupBy("id")), asof_arrow, schema)

Spark hands a cogrouped-map function one pair of groups (the rows of both
sides with one key) at a time, in one Python process per partition. These
helpers plan the same query through Spark's map form, as the grouped helpers
do (quiver.spark.grouped), over the union of both sides:

    side.select(side marker, the side's row as a struct, key expressions)
        for each side, then unionByName        one table, both sides' rows
      .repartition(keys)                       the pairs' shuffle (as cogroup's)
      .sortWithinPartitions(keys)              each pair's rows together
      .mapInArrow(PartitionRunner, schema)     quiver.spark._partition

so that a pair is one group of the union: the partition function submits
each pair whole, as a task, to the node, which runs a partition's pairs on all
its workers at once. A worker cuts the pair back into its two sides and runs it
through pyspark's own conversion and checks (quiver.spark._group): each
side gets every column of its DataFrame, a key present on one side only pairs
with an empty frame of the other side's columns and dtypes, null keys pair
with null keys, the three-argument form gets the key (from the left side
unless it has no rows, as in Spark), and the result's columns match the
schema by name (by position when the labels are not strings).

Both groupings must be groupBy groupings with as many keys; the keys are
shuffled as one column each, so both sides' keys of one position must have
types that Spark's union can combine (the function still gets each side's own
key values and types). Options as in quiver.spark.grouped.
"""

from __future__ import annotations

import inspect
from typing import Callable

from .. import _options
from ._group import COGROUP_ARROW, COGROUP_PANDAS, Plan
from .grouped import KEY_PREFIX, _frame_and_keys, _node_options, _run, _runner_conf

__all__ = ["cogroup_apply_in_pandas", "cogroup_apply_in_arrow"]

# The union's columns before the keys (quiver.spark._group reads them by position).
SIDE, LEFT, RIGHT = "__quiver_side", "__quiver_left", "__quiver_right"


def cogroup_apply_in_pandas(cogrouped, fn: Callable, schema, *,
                            fallback: str = _options.default("fallback"),
                            retries: int | None = _options.default("retries"),
                            address: str | None = None, token: str | None = None):
    """``cogrouped.applyInPandas(fn, schema)`` with a partition's pairs of groups run in
    parallel on the node.

    cogrouped is ``df1.groupBy(...).cogroup(df2.groupBy(...))``. fn takes the two
    sides' pandas DataFrames (or the key tuple and both) and returns a DataFrame;
    schema: a StructType or DDL string.
    """
    sides = _sides(cogrouped)
    spark_df = cogrouped.applyInPandas(fn, schema)  # Spark's checks of fn, schema and keys
    opts = _node_options("cogroup_apply_in_pandas", fallback, retries, address, token)
    return _cogrouped_map(sides, fn, spark_df.schema, COGROUP_PANDAS, opts)


def cogroup_apply_in_arrow(cogrouped, fn: Callable, schema, *,
                           fallback: str = _options.default("fallback"),
                           retries: int | None = _options.default("retries"),
                           address: str | None = None, token: str | None = None):
    """``cogrouped.applyInArrow(fn, schema)`` with a partition's pairs of groups run in
    parallel on the node.

    fn takes the two sides' pyarrow Tables (or the key tuple of pyarrow scalars
    and both) and returns a Table.
    """
    sides = _sides(cogrouped)
    spark_df = cogrouped.applyInArrow(fn, schema)
    opts = _node_options("cogroup_apply_in_arrow", fallback, retries, address, token)
    return _cogrouped_map(sides, fn, spark_df.schema, COGROUP_ARROW, opts)


def _sides(cogrouped) -> tuple:
    """The two GroupedData of a cogroup (classic and Spark Connect keep them alike)."""
    sides = (getattr(cogrouped, "_gd1", None), getattr(cogrouped, "_gd2", None))
    if sides[0] is None or sides[1] is None:
        raise TypeError(f"quiver.spark: expected a cogrouped pair (df1.groupBy(...).cogroup("
                        f"df2.groupBy(...))), not {type(cogrouped).__name__}")
    return sides


def _cogrouped_map(sides: tuple, fn, return_type, form: str, opts):
    from pyspark.sql import functions as F

    (left, left_keys), (right, right_keys) = (_frame_and_keys(g) for g in sides)
    if len(left_keys) != len(right_keys):  # Spark's own message (a Connect plan fails only when run)
        raise ValueError(f"requirement failed: Cogroup keys must have same size: "
                         f"{len(left_keys)} != {len(right_keys)}")
    key_names = [f"{KEY_PREFIX}{i}" for i in range(len(left_keys))]

    def one_side(df, keys, side: int):
        row = F.struct(F.col("*"), *[k.alias(n) for k, n in zip(keys, key_names)])
        return df.select(F.lit(side).cast("tinyint").alias(SIDE), row.alias((LEFT, RIGHT)[side]),
                         *[k.alias(n) for k, n in zip(keys, key_names)])

    both = one_side(left, left_keys, 0).unionByName(one_side(right, right_keys, 1),
                                                    allowMissingColumns=True)
    num_args = len(inspect.getfullargspec(fn).args)
    plan = Plan(form, fn, num_args, return_type, len(key_names), _runner_conf(left.sparkSession))
    return _run(both, [SIDE, LEFT, RIGHT], [F.col(n) for n in key_names], plan, return_type, opts)
