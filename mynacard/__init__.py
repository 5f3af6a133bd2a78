"""mynacard: an emulator of the My Number card's IC chip, its test PKI and a test harness.

This top package only names the distribution: ``python -m mynacard`` runs the ``mynacard``
command (:func:`harness.cli.main`), and :data:`__version__` is the installed version. The code
lives in the floors below it (docs/architecture.md): harness, readers, card_emulator, jpki, apdu.
"""

from __future__ import annotations

from apdu.version import version

__all__ = ["__version__"]

__version__: str = version()
"""The installed distribution's version (``[project] version`` in ``pyproject.toml``)."""
