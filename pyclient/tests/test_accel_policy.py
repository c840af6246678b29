"""accelerate's policy (quiver._accel.policy), table-tested without a node.

Each scenario is a list of steps on one Adaptive (the cheap-function switch) or
NodeState, with what each step must answer:

    here            Adaptive.here(): True when the next batch runs in this process
    local           a batch ran here (Adaptive.ran_here)
    obs WORK WALL   a remote batch: the node spent WORK ms in the function, the call took WALL ms
    next            NodeState.next(): use, skip or reprobe
    down            NodeState.mark_down
"""

from __future__ import annotations

import pytest

from quiver._accel import policy
from quiver._accel.policy import LOCAL, RAISE, REPROBE, SKIP, USE

R = 4  # REPROBE_EVERY in these scenarios

ADAPTIVE = {
    "a new function goes to the node": [("here", False)],
    "costly batches stay on the node": [
        ("obs 50 10", None), ("obs 50 10", None), ("obs 50 10", None), ("obs 50 10", None),
        ("here", False)],
    "three cheap batches in a row move it here": [
        ("obs 5 10", None), ("here", False), ("obs 5 10", None), ("here", False),
        ("obs 5 10", None), ("here", True)],
    "one clearly cheap batch (work under a tenth of the wall time) moves it here at once": [
        ("obs 0.9 10", None), ("here", True)],
    "a tenth exactly is not clearly cheap": [
        ("obs 1 10", None), ("here", False)],
    "a costly batch resets the streak": [
        ("obs 1 10", None), ("obs 1 10", None), ("obs 50 10", None), ("obs 1 10", None),
        ("obs 1 10", None), ("here", False), ("obs 1 10", None), ("here", True)],
    "no work reported decides nothing": [
        ("obs 0 10", None), ("obs 0 10", None), ("obs 0 10", None), ("obs None 10", None),
        ("here", False)],
    "after REPROBE_EVERY batches here one batch goes to the node": [
        ("obs 1 10", None), ("obs 1 10", None), ("obs 1 10", None),
        ("here", True), ("local", None), ("here", True), ("local", None), ("here", True),
        ("local", None), ("here", True), ("local", None), ("here", False)],
    "a re-probe that is cheap again moves it back at once": [
        ("obs 1 10", None), ("obs 1 10", None), ("obs 1 10", None),
        *[("local", None)] * R, ("here", False), ("obs 1 10", None), ("here", True)],
    "a re-probe that is costly keeps it on the node": [
        ("obs 1 10", None), ("obs 1 10", None), ("obs 1 10", None),
        *[("local", None)] * R, ("here", False), ("obs 50 10", None), ("here", False),
        ("obs 1 10", None), ("here", False)],
    "batches run here for other reasons do not count while remote": [
        ("local", None), ("local", None), ("here", False)],
}

NODE = {
    "a node that answers is used": [("next", USE), ("next", USE)],
    "a down node is skipped, then re-probed every REPROBE_EVERY batches": [
        ("down", None), ("next", SKIP), ("next", SKIP), ("next", SKIP), ("next", REPROBE),
        ("next", USE)],
    "down again after a re-probe starts counting anew": [
        ("down", None), *[("next", SKIP)] * (R - 1), ("next", REPROBE), ("down", None),
        ("next", SKIP)],
}


def run(state, steps):
    for i, (step, want) in enumerate(steps):
        op, *args = step.split()
        if op == "here":
            got = state.here()
        elif op == "local":
            got = state.ran_here()
        elif op == "obs":
            work = None if args[0] == "None" else float(args[0])
            got = state.observe(work, float(args[1]))
        elif op == "next":
            got = state.next()
        elif op == "down":
            got = state.mark_down("refused")
        else:
            raise ValueError(op)
        assert got == want, f"step {i} ({step}): got {got!r}, want {want!r}"


@pytest.fixture(autouse=True)
def reprobe_every(monkeypatch):
    monkeypatch.setattr(policy, "REPROBE_EVERY", R)


@pytest.mark.parametrize("steps", ADAPTIVE.values(), ids=ADAPTIVE.keys())
def test_adaptive(steps):
    run(policy.Adaptive(), steps)


@pytest.mark.parametrize("steps", NODE.values(), ids=NODE.keys())
def test_node_state(steps):
    run(policy.NodeState(), steps)


def test_node_state_says_why_it_is_down():
    s = policy.NodeState()
    s.mark_down("connection refused")
    assert s.down == "connection refused"
    s.mark_down("")
    assert s.down


@pytest.mark.parametrize("option, want", [("local", LOCAL), ("error", RAISE)])
def test_fallback(option, want):
    assert policy.fallback(option) == want
