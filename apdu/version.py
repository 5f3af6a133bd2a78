"""The version of mynacard, for any floor of the project (``mynacard --version``, messages).

The one source is ``version`` in ``pyproject.toml``; this reads it back from the installed
distribution's metadata, so a release changes one line. Code run from a source tree that was
never installed (no ``mynacard`` distribution) gets :data:`UNKNOWN` rather than an error.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "mynacard"
"""The distribution name in ``pyproject.toml`` (``[project] name``)."""

UNKNOWN = "0+unknown"
"""The version shown when the distribution's metadata is absent (a valid PEP 440 version)."""


@cache
def version() -> str:
    """The installed mynacard's version, e.g. ``"0.2.0"``; :data:`UNKNOWN` when not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
