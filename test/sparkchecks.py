"""Checks the Spark and Spark Connect tests share: the line of a failed job's error that
names a Python exception, and a plain and an accelerated query failing with the same one."""

from __future__ import annotations

import re

import pytest


def error_line(excinfo, kind: str) -> str:
    """The first line of a job's error that names a Python exception (type: message) and
    mentions kind."""
    lines = re.findall(r"^\s*([\w.]+(?:Error|Exception|Warning): .*)$", str(excinfo.value), re.M)
    found = [line.strip() for line in lines if kind in line]
    assert found, f"no {kind} in: {str(excinfo.value)[-3000:]}"
    return found[0]


def same_error(plain, accelerated, kind: str) -> tuple[str, BaseException]:
    """Build and collect each query (plain() and accelerated() return DataFrames): both must
    fail, with the same error line mentioning kind. Returns that line and the accelerated
    query's exception."""
    with pytest.raises(Exception) as p:
        plain().collect()
    with pytest.raises(Exception) as a:
        accelerated().collect()
    line = error_line(a, kind)
    assert line == error_line(p, kind)
    return line, a.value
