"""What an access-rule audit expects: the declared rules, the objects to probe, the comparison.

The declared rules come from ``card_emulator/access_rules.toml`` or another rules file
(:func:`load_rules_file`); the credentials to verify from a TOML file (:func:`load_credentials`);
the objects to probe per AP (:class:`CardLayout`) from the rules, the card's own content, or
both (:func:`merge_layouts`). :func:`compare` lists the cells of an observed matrix that
disagree with a rule table.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apdu.vocabulary import APPLICATIONS, CREDENTIALS
from card_emulator.access import AccessRules, RulesError
from harness.audit.report import ApplicationMatrix, AuditError, Difference

__all__ = [
    "APPLICATION_AIDS",
    "EXTRA_IEFS",
    "CardLayout",
    "compare",
    "credential_label",
    "layouts_from_rules",
    "load_credentials",
    "load_rules_file",
    "merge_layouts",
]

APPLICATION_AIDS: dict[str, bytes] = {name: app.aid for name, app in APPLICATIONS.items()}
"""The APs a real card is probed for, in probing order."""

EXTRA_IEFS: dict[str, tuple[int, ...]] = {"text": (0x0012,)}
"""Credential objects without a user secret whose counter is still worth reporting."""


def _read_toml(path: str | Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: not valid TOML ({exc})") from None


def load_credentials(path: str | Path) -> dict[tuple[str, int], bytes]:
    """A TOML file of ``name = "secret"`` (names of apdu.vocabulary.CREDENTIALS)."""
    data = _read_toml(path, "credentials")
    table = data.get("credentials", data)
    out: dict[tuple[str, int], bytes] = {}
    for name, value in table.items():
        where = CREDENTIALS.get(name)
        if where is None:
            known = ", ".join(CREDENTIALS)
            raise AuditError(f"{path}: {name}: unknown credential (known: {known})")
        if not isinstance(value, str) or not value or not value.isascii():
            # never echo the value itself
            raise AuditError(f"{path}: {name}: expected a non-empty ASCII string")
        out[(where.application, where.fid)] = value.encode("ascii")
    return out


def load_rules_file(path: str | Path, overlays: Iterable[str] = ()) -> dict[str, AccessRules]:
    """Rules from a file shaped like ``card_emulator/access_rules.toml``."""
    raw = _read_toml(path, "rules")
    try:
        available: Mapping[str, Any] = raw.pop("overlay", {})
        rules = {ap: AccessRules.from_data(t, ap) for ap, t in raw.items()}
        for name in overlays:
            for ap, patch in available.get(name, {}).items():
                rules[ap] = rules[ap].overridden(patch, f"overlay.{name}.{ap}")
    except (RulesError, KeyError) as exc:
        raise AuditError(f"{path}: {exc}") from None
    return rules


@dataclass(frozen=True, slots=True)
class CardLayout:
    """What to probe in one AP."""

    name: str
    aid: bytes
    files: tuple[int, ...]
    keys: tuple[int, ...]
    credentials: tuple[int, ...]


def layouts_from_rules(
    rules: Mapping[str, AccessRules], aids: Mapping[str, bytes] = APPLICATION_AIDS
) -> list[CardLayout]:
    """The objects to probe when only the declared rules are known (a real card)."""
    out = []
    for name, aid in aids.items():
        r = rules.get(name, AccessRules())
        creds = {w.fid for w in CREDENTIALS.values() if w.application == name}
        creds |= set(EXTRA_IEFS.get(name, ()))
        for cond in r.conditions():
            creds |= cond.credentials
        out.append(
            CardLayout(name, aid, tuple(sorted(r.read)), tuple(sorted(r.use)), tuple(sorted(creds)))
        )
    return out


def merge_layouts(a: Sequence[CardLayout], b: Sequence[CardLayout]) -> list[CardLayout]:
    """Union of two layouts, AP by AP (order of ``a`` first)."""
    by_name = {x.name: x for x in b}
    out = []
    seen = set()
    for x in [*a, *b]:
        if x.name in seen:
            continue
        seen.add(x.name)
        y = by_name.get(x.name, x)
        out.append(
            CardLayout(
                x.name,
                x.aid,
                tuple(sorted({*x.files, *y.files})),
                tuple(sorted({*x.keys, *y.keys})),
                tuple(sorted({*x.credentials, *y.credentials})),
            )
        )
    return out


def credential_label(app: str, fid: int) -> str:
    """How the report names credential ``fid`` of ``app`` (never its value)."""
    for name, where in CREDENTIALS.items():
        if (where.application, where.fid) == (app, fid):
            return f"{name} ({where.label})"
    return "no user secret"


def compare(matrix: ApplicationMatrix, rules: AccessRules, against: str) -> list[Difference]:
    """The cells of ``matrix`` that disagree with ``rules`` (the ``against`` table)."""
    differences: list[Difference] = []
    for kind, table in (("read", matrix.read), ("use", matrix.use)):
        for fid, row in sorted(table.items()):
            cond = rules.read_condition(fid) if kind == "read" else rules.use_condition(fid)
            for state, cell in row.items():
                if state not in matrix.states:
                    continue
                expected = "open" if cond.opens(state.credentials) else "closed"
                if cell.outcome != expected:
                    differences.append(
                        Difference(
                            matrix.name,
                            kind,
                            fid,
                            state.label,
                            expected,
                            f"{cell.sw:04X} ({cell.outcome}, {cell.operation})",
                            against,
                        )
                    )
    return differences
