"""Fixtures: one real quiver node for the whole session (see nodeproc.py), and clients
over its unix socket and over TCP."""

from __future__ import annotations

import pytest

import quiver
from nodeproc import start_node, stop_node


@pytest.fixture(scope="session")
def node():
    n = start_node()
    yield n
    stop_node(n)


@pytest.fixture(scope="session")
def unix_client(node):
    with quiver.connect(node.unix) as c:
        yield c


@pytest.fixture(scope="session")
def tcp_client(node):
    with quiver.connect(node.tcp) as c:
        yield c


@pytest.fixture(params=["unix", "tcp"])
def client(request):
    """A client over each transport in turn."""
    return request.getfixturevalue(f"{request.param}_client")
