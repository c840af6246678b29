"""Databend's own UDF client (databend-udf's UDFClient, installed by `make test` from
test/requirements.txt) against a real node over TCP: it reads each function's schema with
GetFlightInfo (inputs, output, x-databend-udf-input-count) and calls it with DoExchange, as
Databend's query engine does. Its probes, built-ins and a registered Python function whose
arguments were declared at registration."""

from __future__ import annotations

import math
import sys
import uuid

import cloudpickle
import pandas as pd
import pytest

databend_udf = pytest.importorskip("databend_udf.client", reason="databend-udf is installed by `make test`")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def databend(node):
    host, port = node.tcp.removeprefix("grpc://").rsplit(":", 1)
    return databend_udf.UDFClient(host, int(port))


def test_probes(databend):
    assert databend.health_check() is True
    assert databend.echo("héllo, quiver") == "héllo, quiver"
    assert databend.list_functions() == ["builtin_echo", "builtin_healthy"]


def test_builtins(databend):
    (km,) = databend.call_function("haversine_km", 0.0, 0.0, 0.0, 1.0)
    assert math.isclose(km, 6371.0 * math.pi / 180, rel_tol=1e-12)
    assert databend.call_function_batch("levenshtein", a=["kitten", "flaw", None], b=["sitting", "lawn", "x"]) \
        == [3, 2, None]
    # identity's any-type form is Databend's VARIANT: binary JSON in, the same out.
    assert databend.call_function("identity", b'{"k": [1, 2]}') == [b'{"k": [1, 2]}']


def test_registered_python_function(databend, unix_client):
    def discount(price: pd.Series, tier: pd.Series) -> pd.Series:
        rate = tier.map({"gold": 0.2, "silver": 0.1}).fillna(0.0)
        return price * (1 - rate)

    name = unix_client.register(discount, name=f"discount_{uuid.uuid4().hex[:8]}", returns="double",
                                args=["double", "string"])
    assert databend.call_function(name, 100.0, "gold") == [80.0]
    got = databend.call_function_batch(name, price=[10.0, 20.0, 30.0], tier=["silver", "bronze", "gold"])
    assert got == pytest.approx([9.0, 20.0, 24.0])
    with pytest.raises(ValueError, match="expects 2 arguments, got 1"):
        databend.call_function(name, 1.0)


def test_unknown_function(databend):
    with pytest.raises(KeyError):
        databend.call_function("no_such_function", 1)
