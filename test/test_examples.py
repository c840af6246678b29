"""The runnable examples in spark-jobs/, small, against a real node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_sweep_example_matches_its_serial_loop(node):
    """spark-jobs/sweep.py, small: the task API's results equal the serial loop's."""
    script = REPO / "spark-jobs" / "sweep.py"
    run = subprocess.run([sys.executable, str(script), "--grid", "4", "--paths", "2000",
                          "--address", node.unix], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "results identical" in run.stdout and "best: level=" in run.stdout, run.stdout
