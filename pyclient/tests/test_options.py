"""The option table (quiver._options): one check per option, the same at every entry point."""

from __future__ import annotations

import pytest

import quiver
from quiver import _options

BAD = [
    ("rows_per_task", 0), ("rows_per_task", -3), ("rows_per_task", 1.5), ("rows_per_task", True),
    ("retries", -1), ("retries", 101), ("retries", "3"), ("retries", False),
    ("on_error", "ignore"), ("on_error", ""),
    ("timeout", 0), ("timeout", -1.0), ("timeout", "5"),
    ("fallback", "retry"),
    ("kind", "dataframe"), ("kind", "scalar"),
    ("table_function", 1), ("table_function", "1"),
]

GOOD = [
    ("rows_per_task", 1, 1), ("rows_per_task", 10_000, 10_000),
    ("retries", 0, 0), ("retries", 100, 100),
    ("on_error", "raise", "raise"), ("on_error", "null", "null"),
    ("timeout", 0.5, 0.5), ("timeout", 3, 3),
    ("fallback", "local", "local"), ("fallback", "error", "error"),
    ("kind", "task", "task"), ("kind", "table", "table"), ("kind", None, None),
    ("table_function", True, True), ("table_function", False, False),
]


@pytest.mark.parametrize("name, value", BAD)
def test_bad_values_are_refused_naming_the_option(name, value):
    with pytest.raises(ValueError, match=f"^where: {name} must be "):
        _options.check("where", **{name: value})


@pytest.mark.parametrize("name, value, want", GOOD)
def test_good_values(name, value, want):
    assert _options.check("where", **{name: value}) == {name: want}


def test_headers():
    opts = _options.check("x", rows_per_task=8, retries=0, on_error="null", timeout=1.0001)
    assert _options.call_headers(opts) == (
        (b"quiver-rows-per-task", b"8"), (b"quiver-retries", b"0"),
        (b"quiver-on-error", b"null"), (b"quiver-timeout-ms", b"1001"))
    assert _options.call_headers({"rows_per_task": None, "retries": None}) == ()


@pytest.mark.parametrize("name, value", [b for b in BAD if b[0] in ("rows_per_task", "retries", "on_error")])
def test_every_entry_point_checks_the_same(name, value):
    """accelerate, Client.call and Client.options refuse the same values (before any I/O)."""
    with pytest.raises(ValueError, match=name):
        quiver.accelerate(**{name: value})
    with quiver.Client("grpc://127.0.0.1:1") as c:
        with pytest.raises(ValueError, match=name):
            c.call("f", None, **{name: value})
        if name == "retries":
            with pytest.raises(ValueError, match=name):
                c.options(retries=value)
