"""The `quiver` command of an installed wheel: runs the node's binary bundled in the package.

Its Python workers default to the interpreter this package is installed into
($QUIVER_PYTHON, which `quiver start --python` overrides), so a node started from
a virtual environment runs its workers in that environment.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main() -> None:
    binary = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "quiver")
    if not os.access(binary, os.X_OK):
        sys.exit(f"quiver: no node binary at {binary}: this install of the quiver package "
                 "has none (install a platform wheel, or run `make setup` in a checkout)")
    os.environ.setdefault("QUIVER_PYTHON", sys.executable)
    os.execv(binary, [binary, *sys.argv[1:]])
