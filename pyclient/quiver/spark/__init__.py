"""quiver.spark: Quiver on a Spark cluster.

``setup_cluster(spark, ...)`` / ``shutdown_cluster()`` (and the ``cluster(spark)`` context
manager) start a node on every host of the application and stop them; see
quiver.spark.cluster.
"""

from __future__ import annotations

from .cluster import Cluster, cluster, setup_cluster, shutdown_cluster

__all__ = ["Cluster", "cluster", "setup_cluster", "shutdown_cluster"]
