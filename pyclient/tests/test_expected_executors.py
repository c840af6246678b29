"""How many executors setup_cluster waits for, read from the application's master URL and
settings: a late executor host must not be missed because its peer registered first."""

import pytest

pytest.importorskip("pyspark")
from quiver.spark.cluster import expected_executors  # noqa: E402


def conf(**settings):
    values = {k.replace("_", "."): str(v) for k, v in settings.items()}
    return values.get


@pytest.mark.parametrize("master, settings, want", [
    ("local-cluster[2,1,1024]", {}, 2),
    ("local-cluster[3, 1, 1024]", {}, 3),
    ("spark://m:7077", {"spark_cores_max": 2, "spark_executor_cores": 1}, 2),
    ("spark://m:7077", {"spark_cores_max": 8, "spark_executor_cores": 3}, 2),
    ("spark://m:7077", {"spark_cores_max": 1, "spark_executor_cores": 4}, 1),
    ("yarn", {"spark_executor_instances": 5}, 5),
    ("k8s://https://api:443", {"spark_executor_instances": 4}, 4),
])
def test_the_count_the_application_asked_for(master, settings, want):
    assert expected_executors(master, conf(**settings)) == want


@pytest.mark.parametrize("master, settings", [
    ("spark://m:7077", {}),                                 # as many cores as the cluster has
    ("spark://m:7077", {"spark_cores_max": 4}),             # one executor per worker: unknown
    ("yarn", {}),
    ("yarn", {"spark_executor_instances": 5, "spark_dynamicAllocation_enabled": "true"}),
    ("spark://m:7077", {"spark_cores_max": "lots", "spark_executor_cores": 1}),
])
def test_no_count_when_the_application_names_none(master, settings):
    assert expected_executors(master, conf(**settings)) is None
