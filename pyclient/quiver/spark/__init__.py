"""quiver.spark: Quiver on a Spark cluster, and helpers for Spark forms that a decorator
cannot accelerate.

    import quiver.spark as qs

    qs.setup_cluster(spark, workers_per_node=4)      # a node on every host (or: with qs.cluster(spark):)
    qs.apply_in_pandas(df.groupBy("k"), fn, schema)   # groupBy().applyInPandas
    qs.apply_in_arrow(df.groupBy("k"), fn, schema)    # groupBy().applyInArrow
    qs.agg(df.groupBy("k"), (mean_udf, "v"))          # groupBy().agg(pandas aggregate UDFs)
    qs.cogroup_apply_in_pandas(df1.groupBy("k").cogroup(df2.groupBy("k")), fn, schema)
    qs.cogroup_apply_in_arrow(df1.groupBy("k").cogroup(df2.groupBy("k")), fn, schema)
    qs.shutdown_cluster()

Spark hands the grouped and cogrouped forms one group (one pair of groups) at a
time; the helpers plan the same query through Spark's map forms so that a
partition's groups run in parallel on the node, with Spark's results and errors
(quiver.spark.grouped and quiver.spark.cogrouped say how).

Modules: cluster (setup_cluster, shutdown_cluster: nodes started from the driver and
gone with the application), grouped (the grouped helpers and their plan), cogrouped
(the cogrouped helpers: both sides as one union, a pair as one of its groups),
_partition (the mapInArrow function: groups cut from a sorted partition, submitted as
tasks), _group (one group or cogrouped pair, run the way Spark's Python worker runs it;
what a node's worker runs).
Names are imported on first use, so that a node's worker that runs a group loads no
driver code.
"""

from __future__ import annotations

import importlib

# Public name -> the module that defines it.
_EXPORTS = {
    "apply_in_pandas": "grouped",
    "apply_in_arrow": "grouped",
    "agg": "grouped",
    "cogroup_apply_in_pandas": "cogrouped",
    "cogroup_apply_in_arrow": "cogrouped",
    "Cluster": "cluster",
    "cluster": "cluster",
    "setup_cluster": "cluster",
    "shutdown_cluster": "cluster",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quiver.spark' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
