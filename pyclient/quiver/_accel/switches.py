"""The cheap-function switch of each accelerated function, one per process.

Spark unpickles a UDF afresh for every task (and every query); each copy would
otherwise measure again what an earlier task in the same Python worker already
learned. Every copy of one decorated function carries its random id, and the
copies in one process share the policy.Adaptive kept here under that id.
"""

from __future__ import annotations

import os
import threading

from . import policy

__all__ = ["switch_for"]

_switches: dict[tuple[int, str], policy.Adaptive] = {}
_lock = threading.Lock()


def switch_for(uid: str) -> policy.Adaptive:
    """The switch shared by every copy of the accelerated function uid in this process."""
    key = (os.getpid(), uid)
    with _lock:
        switch = _switches.get(key)
        if switch is None:
            switch = _switches[key] = policy.Adaptive()
        return switch
