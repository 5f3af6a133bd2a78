"""Access conditions as data: which credential opens which file or key.

The tables live in ``access_rules.toml`` beside this module. :func:`load_rules` reads them, applies
named overlays and per-persona overrides, and returns one :class:`AccessRules` per application.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from apdu.errors import MynacardError

RULES_RESOURCE = "access_rules.toml"
NEVER = "never"


class RulesError(MynacardError, ValueError):
    """An access-rule table or override that does not parse."""


@dataclass(frozen=True, slots=True)
class Condition:
    """Any one credential in ``credentials`` opens; empty means free; ``never`` means closed."""

    credentials: frozenset[int] = frozenset()
    never: bool = False

    def opens(self, verified: Iterable[int] | frozenset[int] | set[int]) -> bool:
        """True when the verified credentials satisfy this condition."""
        if self.never:
            return False
        if not self.credentials:
            return True
        return not self.credentials.isdisjoint(verified)

    @property
    def free(self) -> bool:
        """True when nothing is needed."""
        return not self.never and not self.credentials

    def to_data(self) -> str | list[str]:
        """The TOML/JSON form: ``"never"`` or a list of FIDs as 4-digit hex."""
        return NEVER if self.never else [f"{c:04X}" for c in sorted(self.credentials)]

    def describe(self) -> str:
        """Human text: ``free``, ``never`` or ``0011 or 0014``."""
        if self.never:
            return "never"
        return " or ".join(f"{c:04X}" for c in sorted(self.credentials)) or "free"


CLOSED = Condition(never=True)


@dataclass(frozen=True, slots=True)
class AccessRules:
    """The rules of one application."""

    read: Mapping[int, Condition] = field(default_factory=dict)
    use: Mapping[int, Condition] = field(default_factory=dict)
    session_key: Condition | None = None
    """What SET SESSION KEY needs (``None``: the AP has no key delivery)."""

    def read_condition(self, fid: int) -> Condition:
        """Condition for reading EF ``fid``; unknown files are closed."""
        return self.read.get(fid, CLOSED)

    def use_condition(self, fid: int) -> Condition:
        """Condition for using key ``fid``; unknown keys are closed."""
        return self.use.get(fid, CLOSED)

    def to_data(self) -> dict[str, Any]:
        """JSON/TOML-ready form (as stored in a card image)."""
        data: dict[str, Any] = {
            "read": {f"{fid:04X}": c.to_data() for fid, c in sorted(self.read.items())},
            "use": {f"{fid:04X}": c.to_data() for fid, c in sorted(self.use.items())},
        }
        if self.session_key is not None:
            data["session_key"] = self.session_key.to_data()
        return data

    def conditions(self) -> list[Condition]:
        """Every condition of this AP (read, use and key delivery)."""
        extra = [] if self.session_key is None else [self.session_key]
        return [*self.read.values(), *self.use.values(), *extra]

    @classmethod
    def from_data(cls, data: Mapping[str, Any], where: str = "rules") -> AccessRules:
        """Parse the form produced by :meth:`to_data`."""
        unknown = set(data) - {"read", "use", "session_key"}
        if unknown:
            raise RulesError(f"{where}: unknown section(s) {sorted(unknown)}")
        session = data.get("session_key")
        return cls(
            read=_parse_table(data.get("read", {}), f"{where}.read"),
            use=_parse_table(data.get("use", {}), f"{where}.use"),
            session_key=(
                None if session is None else _parse_condition(session, f"{where}.session_key")
            ),
        )

    def overridden(self, data: Mapping[str, Any], where: str) -> AccessRules:
        """A copy with the entries in ``data`` (same form as :meth:`to_data`) replaced."""
        patch = AccessRules.from_data(data, where)
        return AccessRules(
            read={**self.read, **patch.read},
            use={**self.use, **patch.use},
            session_key=self.session_key if patch.session_key is None else patch.session_key,
        )

    def to_json(self) -> str:
        """Compact JSON, for the card image."""
        return json.dumps(self.to_data(), sort_keys=True)


def parse_fid(text: str, where: str) -> int:
    """A 4-hex-digit file identifier (exactly four hex digits, nothing else)."""
    if not isinstance(text, str) or re.fullmatch(r"[0-9A-Fa-f]{4}", text) is None:
        raise RulesError(f"{where}: {text!r} is not a 4-digit hex FID")
    return int(text, 16)


def _parse_condition(value: Any, where: str) -> Condition:
    if value == NEVER:
        return CLOSED
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f'{where}: expected a list of FIDs or "never", got {value!r}')
    return Condition(frozenset(parse_fid(v, where) for v in value))


def _parse_table(table: Any, where: str) -> dict[int, Condition]:
    if not isinstance(table, Mapping):
        raise RulesError(f"{where}: expected a table, got {table!r}")
    return {
        parse_fid(k, f"{where}.{k}"): _parse_condition(v, f"{where}.{k}") for k, v in table.items()
    }


@functools.cache
def _raw_tables() -> Mapping[str, Any]:
    """``access_rules.toml``, parsed once per process (read only: callers copy what they change)."""
    text = resources.files(__package__).joinpath(RULES_RESOURCE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_rules(
    overlays: Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, AccessRules]:
    """The rule table of every application, with named overlays then overrides applied."""
    raw = dict(_raw_tables())
    available_overlays: Mapping[str, Any] = raw.pop("overlay", {})
    rules = {ap: AccessRules.from_data(tables, ap) for ap, tables in raw.items()}
    for name in overlays:
        if name not in available_overlays:
            raise RulesError(f"unknown access-rule overlay {name!r}")
        for ap, patch in available_overlays[name].items():
            rules[ap] = rules[ap].overridden(patch, f"overlay.{name}.{ap}")
    for ap, patch in (overrides or {}).items():
        if ap not in rules:
            raise RulesError(f"access override names unknown application {ap!r}")
        rules[ap] = rules[ap].overridden(patch, f"access.{ap}")
    return rules
