"""End-to-end tests: real quiver processes, real PySpark, the shipped examples.

The node comes from pyclient/tests/nodeproc.py, the same helper the client's own
tests use: bin/quiver (or $QUIVER_BIN) started with --block on a fresh run
directory, its Python workers on this interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pyclient" / "tests"))

from nodeproc import start_node, stop_node  # noqa: E402


@pytest.fixture(scope="session")
def node():
    n = start_node()
    yield n
    stop_node(n)
