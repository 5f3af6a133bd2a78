"""One command of ``mynacard`` run on its own (``python -m harness.audit.cli audit …``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def run_alone(
    register: Callable[[Any], None], argv: Sequence[str] | None, description: str | None = None
) -> int:
    """Parse ``argv`` with only the sub-command ``register`` adds, run it, return its status;
    Ctrl-C ends it with 130 like the full command."""
    parser = argparse.ArgumentParser(prog="mynacard", description=description)
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
