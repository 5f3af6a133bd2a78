"""``python -m mynacard``: the ``mynacard`` command, as the console script runs it."""

from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
