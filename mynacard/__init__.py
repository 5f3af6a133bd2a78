"""mynacard: an emulator of the My Number card's IC chip, its test PKI and a test harness.

This top package only names the distribution: ``python -m mynacard`` runs the ``mynacard``
command (:func:`harness.cli.main`), and :data:`__version__` is the installed version. The code
lives in the floors below it (docs/architecture.md): harness, readers, card_emulator, jpki, apdu.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__: str = metadata.version("mynacard")
    """The installed distribution's version (``[project] version`` in ``pyproject.toml``)."""
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
