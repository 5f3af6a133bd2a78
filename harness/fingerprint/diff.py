"""Two profiles compared behaviour by behaviour.

Every leaf of a profile has a path and a field: ``jpki/select/000A/p2=0C`` ``sw``,
``jpki/ef/000A`` ``certificate.key_bits``, ``atr``. A difference names both and the two values
(``absent`` when one profile lacks it): ``jpki/select/000A/p2=0C: sw 9000 → 6A82``. The timing
section is compared only when asked; the tool version is mentioned, never counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.fingerprint.profile import TIMING

__all__ = ["FORMATS", "Difference", "Report", "compare", "leaves"]

FORMATS = ("text", "markdown", "json")
ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Difference:
    """One behaviour that differs."""

    path: str
    field: str
    a: Any
    b: Any

    def text(self) -> str:
        return f"{self.path}: {self.field} {_show(self.a)} → {_show(self.b)}"


def _show(value: Any) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _fields(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"sw": .., "long_le": {"sw": ..}}`` → ``{"sw": .., "long_le.sw": ..}``."""
    if not isinstance(values, dict):
        return {prefix or "value": values}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_fields(value, name))
        else:
            out[name] = value
    return out


def leaves(profile: dict[str, Any], *, timing: bool = False) -> dict[tuple[str, str], Any]:
    """(path, field) → value of every behaviour in ``profile``."""
    out: dict[tuple[str, str], Any] = {}
    for key in ("atr", "complete", "stopped"):
        if key in profile:
            out[(key, "value")] = profile[key]
    for scope, probes in profile.get("probes", {}).items():
        for key, values in probes.items():
            for name, value in _fields(values).items():
                out[(f"{scope}/{key}", name)] = value
    if timing:
        for kind, values in profile.get(TIMING, {}).items():
            for name, value in _fields(values).items():
                out[(f"{TIMING}/{kind}", name)] = value
    return out


@dataclass(frozen=True, slots=True)
class Report:
    """The differences between profile ``a`` and profile ``b``."""

    a_name: str
    b_name: str
    differences: tuple[Difference, ...]
    notes: tuple[str, ...]

    @property
    def equal(self) -> bool:
        return not self.differences

    def render(self, form: str = "text") -> str:
        if form == "json":
            return (
                json.dumps(
                    {
                        "a": self.a_name,
                        "b": self.b_name,
                        "equal": self.equal,
                        "notes": list(self.notes),
                        "differences": [
                            {"path": d.path, "field": d.field, "a": d.a, "b": d.b}
                            for d in self.differences
                        ],
                    },
                    ensure_ascii=False,
                    indent=2,
                    sort_keys=True,
                )
                + "\n"
            )
        if form == "markdown":
            out = [f"# Fingerprint diff: `{self.a_name}` → `{self.b_name}`", ""]
            out += [f"- {note}" for note in self.notes]
            if self.notes:
                out.append("")
            if self.equal:
                return "\n".join([*out, "No behaviour differs.", ""])
            out += ["| Behaviour | Field | A | B |", "|---|---|---|---|"]
            out += [
                f"| `{d.path}` | {d.field} | {_cell(_show(d.a))} | {_cell(_show(d.b))} |"
                for d in self.differences
            ]
            return "\n".join([*out, "", f"{len(self.differences)} behaviour(s) differ.", ""])
        out = [f"--- {self.a_name}", f"+++ {self.b_name}", *(f"note: {n}" for n in self.notes)]
        out += [d.text() for d in self.differences]
        count = len(self.differences)
        out.append(f"{count} behaviour(s) differ" if count else "no behaviour differs")
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def compare(
    a: dict[str, Any],
    b: dict[str, Any],
    *,
    a_name: str = "A",
    b_name: str = "B",
    timing: bool = False,
) -> Report:
    """Every (path, field) whose value differs, in path order."""
    left, right = leaves(a, timing=timing), leaves(b, timing=timing)
    differences = tuple(
        Difference(path, name, left.get((path, name)), right.get((path, name)))
        for path, name in sorted(left.keys() | right.keys())
        if left.get((path, name)) != right.get((path, name))
    )
    notes = []
    if a.get("tool") != b.get("tool"):
        notes.append(f"made by different tool versions: {a.get('tool')} → {b.get('tool')}")
    for name, profile in ((a_name, a), (b_name, b)):
        if not profile.get("complete", True):
            notes.append(f"{name} is incomplete: {profile.get('stopped', 'no reason given')}")
    return Report(a_name, b_name, differences, tuple(notes))
