"""A TOML table consumed field by field, so leftovers (typos) are reported, never ignored."""

from __future__ import annotations

from typing import Any, ClassVar


class FieldTable:
    """Errors name the field (``holder.sex: …``); subclasses choose the error type."""

    error: ClassVar[type[ValueError]] = ValueError

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise self.error(f"{where}: expected a table")
        self.data: dict[str, Any] = dict(data)
        self.where = where

    def path(self, key: str) -> str:
        """The dotted name of ``key`` in this table."""
        return f"{self.where}.{key}" if self.where else key

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
            names = ", ".join(self.path(key) for key in sorted(self.data))
            raise self.error(f"unknown field(s): {names}")
