"""The relay's one error type."""

from __future__ import annotations

from apdu.errors import MynacardError


class RelayError(MynacardError, RuntimeError):
    """The relay cannot run: no such reader, no card, the reader went away. The message names
    the reader (and, for an unknown one, the readers there are)."""
