"""Persona tables consumed field by field: text and date fields checked, errors naming the field.

:class:`PersonaTable` is what every persona table is read through; unknown fields are refused
by :meth:`~jpki.toml_fields.FieldTable.done`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

from card_emulator.persona_model import PersonaError
from jpki.toml_fields import FieldTable, shown

MAX_TEXT_CHARS = 128
"""Any text field without a limit of its own (token, atr, style, states, reasons, layout)."""
FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Cs": "a surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
"""No text field may hold these (NUL, TAB, newline, C1 controls, bidi overrides, U+2029, ...)."""


class PersonaTable(FieldTable):
    """A persona table: field-named :class:`PersonaError` on anything wrong."""

    error = PersonaError

    def text(
        self,
        key: str,
        default: Any = ...,
        pattern: str | None = None,
        what: str = "",
        max_chars: int = MAX_TEXT_CHARS,
    ) -> str:
        """A string field: at most ``max_chars``, printable, matching ``pattern`` if given."""
        value = self.take(key, default)
        if not isinstance(value, str):
            raise PersonaError(f"{self.path(key)}: expected a string, got {shown(value)}")
        if len(value) > max_chars:
            raise PersonaError(f"{self.path(key)}: {len(value)} characters, at most {max_chars}")
        for position, char in enumerate(value, 1):
            kind = FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
            if kind is not None:
                raise PersonaError(
                    f"{self.path(key)}: U+{ord(char):04X} at character {position} is {kind}"
                )
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise PersonaError(f"{self.path(key)}: {shown(value)} is not {what}")
        return value

    def date(self, key: str, default: Any = ...) -> dt.date:
        """A date field (a TOML date or ``YYYY-MM-DD`` text; never a datetime)."""
        value = self.take(key, default)
        if isinstance(value, dt.datetime):
            raise PersonaError(f"{self.path(key)}: expected a date without a time, got {value}")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise PersonaError(f"{self.path(key)}: {shown(value)} is not a real date") from None
        raise PersonaError(f"{self.path(key)}: expected a date (YYYY-MM-DD), got {shown(value)}")

    def table(self, key: str) -> PersonaTable:
        """A sub-table (empty when absent)."""
        return PersonaTable(self.take(key, {}), self.path(key))
