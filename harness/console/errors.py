"""The one error of the console: an action refused before it changed anything."""

from __future__ import annotations

from typing import Literal

from apdu.errors import MynacardError

ErrorKind = Literal["invalid", "not_found", "conflict"]
"""Why an action was refused: a bad value (``invalid``), something that does not exist
(``not_found``: an unknown reader or credential), or the reader's state forbids it now
(``conflict``: no card inserted, no PKI attached, the reader did not take the card)."""


class ControlError(MynacardError, ValueError):
    """An action the controller refused; :attr:`field` names the input at fault (``reader``,
    ``credential``, ``tries``, ``persona``, ``scenario``, ``tree``, ``reason``, ``pki``...) and
    :attr:`kind` says why (:data:`ErrorKind`; the web layer answers 400, 404 or 409).

    Raised before the action changes anything, except where a method's documentation says what
    an outside failure (the reader gone, the card image unwritable) may have left done.
    """

    def __init__(self, field: str, message: str, kind: ErrorKind = "invalid") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        self.kind: ErrorKind = kind
