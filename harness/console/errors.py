"""The one error of the console: an action refused before it changed anything."""

from __future__ import annotations

from apdu.errors import MynacardError


class ControlError(MynacardError, ValueError):
    """An action the controller refused; :attr:`field` names the input at fault (``reader``,
    ``credential``, ``tries``, ``persona``, ``scenario``, ``tree``, ``reason``, ``pki``...).

    Raised before the action changes anything, except where a method's documentation says what
    an outside failure (the reader gone, the card image unwritable) may have left done.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
