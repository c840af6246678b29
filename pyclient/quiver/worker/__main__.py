"""``python -m quiver.worker``: what a quiver node runs for each of its Python workers."""

import sys

from ._runtime import main

sys.exit(main())
