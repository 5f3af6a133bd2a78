"""A TOML table consumed field by field, so leftovers (typos) are reported, never ignored."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

SHOWN_CHARS = 60
"""Longest rendering of a bad value in a message (a megabyte of input gives a short error)."""
MAX_UNKNOWN_SHOWN = 10
"""At most this many unknown field names are listed."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (``'aaaa…' (1000000 characters)``)."""
    try:
        text = repr(value)
    except RecursionError:  # a value nested too deeply to print
        return f"<{type(value).__name__} nested too deeply>"
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}…{size}"


def key_text(key: str) -> str:
    """``key`` as TOML writes it: bare if it can be, else quoted (and cut if absurdly long)."""
    if _BARE_KEY.fullmatch(key):
        return key
    quoted = json.dumps(key)  # escapes control characters, so a message cannot smuggle any
    return quoted if len(quoted) <= SHOWN_CHARS else f"{quoted[:SHOWN_CHARS]}…"


class FieldTable:
    """Errors name the field (``holder.sex: …``); subclasses choose the error type."""

    error: ClassVar[type[ValueError]] = ValueError

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise self.error(f"{where}: expected a table, got {shown(data)}")
        self.data: dict[str, Any] = dict(data)
        self.where = where

    def path(self, key: str) -> str:
        """The dotted name of ``key`` in this table."""
        name = key_text(key)
        return f"{self.where}.{name}" if self.where else name

    def take(self, key: str, default: Any = ...) -> Any:
        """Remove and return a field; required unless a default is given."""
        if key not in self.data:
            if default is ...:
                raise self.error(f"{self.path(key)}: required field is missing")
            return default
        return self.data.pop(key)

    def done(self) -> None:
        """Refuse any field nobody took."""
        if self.data:
            keys = sorted(self.data)
            names = ", ".join(self.path(key) for key in keys[:MAX_UNKNOWN_SHOWN])
            more = len(keys) - MAX_UNKNOWN_SHOWN
            if more > 0:
                names += f" and {more} more"
            raise self.error(f"unknown field(s): {names}")
