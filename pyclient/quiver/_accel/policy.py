"""Where accelerate runs a batch: on the node or here. Pure: no clocks, no I/O, no threads.

The decorator (quiver._accel.decorator) asks and reports; these classes
decide (table-tested in pyclient/tests/test_accel_policy.py). ``Adaptive`` is the cheap-function switch: after CHEAP_STREAK remote
batches in a row whose work (the node's solo_ms) would have been faster here
than the call's wall time, the function runs here, at once after one batch
whose work was under 1/CLEARLY_CHEAP of its wall time (the round trip
dwarfs the function: a vectorized x * 2); every REPROBE_EVERY batches one
batch goes to the node again and decides anew. ``NodeState`` is
whether a node is down, and when to try it again. ``fallback`` turns the
fallback option into an action.
"""

from __future__ import annotations

__all__ = ["CHEAP_STREAK", "CLEARLY_CHEAP", "REPROBE_EVERY", "LOCAL", "RAISE", "USE", "SKIP", "REPROBE",
           "Adaptive", "NodeState", "fallback"]

CHEAP_STREAK = 3       # remote batches in a row that would have been faster here
CLEARLY_CHEAP = 10     # ... or one whose work was this many times shorter than its wall time
REPROBE_EVERY = 200    # batches run here before trying the node again

LOCAL, RAISE = "local", "raise"          # what to do with a batch the node cannot take
USE, SKIP, REPROBE = "use", "skip", "reprobe"  # NodeState.next()


class Adaptive:
    """The cheap-function switch of one accelerated function (per process)."""

    __slots__ = ("streak", "local_batches")

    def __init__(self):
        self.streak = 0           # remote batches in a row that were cheap
        self.local_batches = -1   # >= 0 while running here because it is cheap

    def here(self) -> bool:
        """Whether the next batch runs here because the function is cheap; after
        REPROBE_EVERY batches here, one remote batch decides again."""
        if self.local_batches < 0:
            return False
        if self.local_batches < REPROBE_EVERY:
            return True
        self.local_batches = -1          # re-probe: one remote batch decides
        self.streak = CHEAP_STREAK - 1
        return False

    def ran_here(self) -> None:
        """A batch ran in this process."""
        if self.local_batches >= 0:
            self.local_batches += 1

    def observe(self, work_ms: float | None, wall_ms: float) -> None:
        """A remote batch took wall_ms; the node spent work_ms in the function
        (None or 0: not reported, which decides nothing)."""
        if not work_ms:
            return
        self.streak = self.streak + 1 if work_ms < wall_ms else 0
        if work_ms * CLEARLY_CHEAP < wall_ms:
            self.streak = CHEAP_STREAK
        if self.streak >= CHEAP_STREAK:
            self.local_batches = 0


class NodeState:
    """Whether a node answers, and when to try one that did not again."""

    __slots__ = ("down", "skipped")

    def __init__(self):
        self.down: str | None = None  # why it is unreachable; None when it answers
        self.skipped = 0              # batches run here since it went down

    def next(self) -> str:
        """USE the node, SKIP it (down), or REPROBE it (down for REPROBE_EVERY
        batches: connect afresh and try)."""
        if self.down is None:
            return USE
        self.skipped += 1
        if self.skipped < REPROBE_EVERY:
            return SKIP
        self.down, self.skipped = None, 0
        return REPROBE

    def mark_down(self, why: str) -> None:
        self.down = why or "unreachable"
        self.skipped = 0


def fallback(option: str) -> str:
    """The node cannot take a batch (none answers, or it is over capacity): run
    it here (LOCAL) or RAISE, as the fallback option says."""
    return RAISE if option == "error" else LOCAL
