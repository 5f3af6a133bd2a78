"""The fidelity document: every behaviour of the chip with its source, grade and override.

The data is ``card_emulator/fidelity.toml`` (shipped with the package); this module checks it
against the code (every override it names exists, every policy field is graded, every choice
can be overridden) and renders ``docs/fidelity.md``. ``mynacard fidelity`` prints it;
``--write FILE`` writes it and ``--check FILE`` fails when FILE is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from apdu.vocabulary import CREDENTIALS
from card_emulator.access import load_rules
from card_emulator.persona import CardData
from card_emulator.policy import CardPolicy

GRADES = {
    "observed": "seen on a real card (a client's measurement or trace)",
    "client": "what one published client relies on, not shown on a card",
    "choice": "ours: no public source settles it",
    "GUESS": "next-generation card (provisional): only its outline is public, the bytes are ours",
}
_OVERRIDE = re.compile(r"\b(policy|access|counters|card)\.([\w.<>]+)")


class FidelityError(MynacardError, ValueError):
    """The fidelity table contradicts the code (the message names the entry)."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One row of the fidelity document."""

    id: str
    area: str
    behaviour: str
    grade: str
    sources: tuple[str, ...]
    override: str


def load() -> tuple[list[Behaviour], dict[str, str]]:
    """The behaviours and the source key table, validated against the code."""
    text = resources.files("card_emulator").joinpath("fidelity.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    behaviours = [_behaviour(entry, i) for i, entry in enumerate(raw.get("behaviour", []))]
    check(behaviours)
    return behaviours, dict(raw.get("sources", {}))


def _behaviour(entry: Mapping[str, Any], index: int) -> Behaviour:
    where = f"behaviour #{index + 1} ({entry.get('id', '?')})"
    unknown = set(entry) - {"id", "area", "behaviour", "grade", "sources", "override"}
    if unknown:
        raise FidelityError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in ("id", "area", "behaviour", "grade"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise FidelityError(f"{where}: {key} must be a non-empty string")
    if entry["grade"] not in GRADES:
        raise FidelityError(f"{where}: grade must be one of {', '.join(GRADES)}")
    sources = entry.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise FidelityError(f"{where}: sources must be a non-empty list of strings")
    override = entry.get("override", "")
    if not isinstance(override, str):
        raise FidelityError(f"{where}: override must be a string")
    return Behaviour(
        entry["id"], entry["area"], entry["behaviour"], entry["grade"], tuple(sources), override
    )


def check(behaviours: list[Behaviour]) -> None:
    """Raise :class:`FidelityError` when the table and the code disagree."""
    ids = [b.id for b in behaviours]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise FidelityError(f"duplicate behaviour ids: {', '.join(duplicates)}")
    policy_fields = {f.name for f in fields(CardPolicy)}
    rules = load_rules()
    named_policy: set[str] = set()
    for b in behaviours:
        if b.grade in ("choice", "GUESS") and not b.override:
            raise FidelityError(f"{b.id}: a choice of ours must say how to override it")
        for kind, path in _OVERRIDE.findall(b.override):
            _check_override(b.id, kind, path, policy_fields, rules)
            if kind == "policy":
                named_policy.add(path)
    ungraded = sorted(policy_fields - named_policy)
    if ungraded:
        raise FidelityError(f"policy fields no behaviour names: {', '.join(ungraded)}")


def _check_override(
    behaviour: str, kind: str, path: str, policy_fields: set[str], rules: Mapping[str, Any]
) -> None:
    parts = path.split(".")
    problem = None
    if kind == "policy" and path not in policy_fields:
        problem = "no such policy field"
    elif kind == "counters" and path != "<name>" and path not in CREDENTIALS:
        problem = "no such credential name"
    elif kind == "card" and path not in {f.name for f in fields(CardData)}:
        problem = "no such [card] field"
    elif kind == "access":
        if parts[0] not in rules:
            problem = "no such application"
        elif len(parts) == 2 and parts[1] != "session_key":
            problem = "expected access.<ap>.session_key or access.<ap>.<read|use>.<FID>"
        elif len(parts) > 3:
            problem = "expected access.<ap>.<read|use>.<FID>"
        elif len(parts) == 3:
            ap_rules = rules[parts[0]]
            table = getattr(ap_rules, parts[1]) if parts[1] in ("read", "use") else None
            if table is None or not re.fullmatch(r"[0-9A-F]{4}", parts[2]):
                problem = "expected access.<ap>.<read|use>.<FID>"
            elif int(parts[2], 16) not in table:
                problem = "no such rule"
    if problem:
        raise FidelityError(f"{behaviour}: override {kind}.{path}: {problem}")


def render(behaviours: list[Behaviour], sources: Mapping[str, str]) -> str:
    """``docs/fidelity.md``."""
    counts = {grade: sum(b.grade == grade for b in behaviours) for grade in GRADES}
    out = [
        "# Fidelity: what the emulated chip does, and how sure we are",
        "",
        "<!-- Generated from card_emulator/fidelity.toml by `mynacard fidelity --write "
        "docs/fidelity.md`; edit the TOML, not this file. -->",
        "",
        "Nobody on this project holds a real card, so every behaviour below comes from public",
        "sources and carries a grade. Decide from it how far to trust a result: a kiosk that",
        "passes against a behaviour graded *our choice* has proven only that it copes with our",
        "choice.",
        "",
        "| Grade | Meaning | Behaviours |",
        "|---|---|---|",
        *(f"| {grade} | {meaning} | {counts[grade]} |" for grade, meaning in GRADES.items()),
        "",
        "Every choice can be overridden in a persona: `[policy]` fields, `[access]` rules,",
        "`[counters]` presets and `[card]` fields. `[policy.remap]` replaces any status word",
        "of any instruction, so every status word here that is ours can be changed. A GUESS",
        "about the next-generation card is data in its profile",
        "(`card_emulator/profiles/next-generation.toml`): edit a copy and name it in a persona",
        '(`profile = "my-profile.toml"`).',
        "",
    ]
    areas: dict[str, list[Behaviour]] = {}
    for b in behaviours:
        areas.setdefault(b.area, []).append(b)
    for area, rows in areas.items():
        out += [f"## {area}", "", "| Behaviour | Grade | Sources | Override |", "|---|---|---|---|"]
        for b in rows:
            cells = (b.behaviour, b.grade, "; ".join(b.sources), b.override or "—")
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    defaults = CardPolicy().to_data()
    out += [
        "## Overriding in a persona",
        "",
        "```toml",
        "[policy]                       # defaults shown",
        *(f"{name} = {_toml_value(value)}" for name, value in defaults.items() if name != "remap"),
        "",
        "[policy.remap]                 # <INS or *> <status word> = replacement",
        '"B0 6986" = "6A82"             # e.g. READ BINARY with no current EF answers 6A82',
        "",
        "[access.text.read]             # any rule of card_emulator/access_rules.toml",
        '"0008" = "never"',
        "",
        "[counters]                     # tries left at issue, by credential name",
        "jpki_0010 = 0",
        "```",
        "",
        "## Sources",
        "",
        *(f"- **{key}**: {value}" for key, value in sources.items()),
        "",
    ]
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f'"{value:04X}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + " }"
    return repr(value)


def markdown() -> str:
    """The document, from the shipped table."""
    behaviours, sources = load()
    return render(behaviours, sources)


def register(subparsers: Any) -> None:
    """``mynacard fidelity``."""
    parser = subparsers.add_parser(
        "fidelity", help="print the fidelity document (source and grade of every behaviour)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE")
    group.add_argument("--check", type=Path, metavar="FILE", help="fail if FILE is out of date")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print, write or check the document."""
    text = markdown()
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
        print(f"{args.write}: written")
        return 0
    if args.check is not None:
        try:
            current = args.check.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"mynacard fidelity: {args.check}: {exc.strerror}", file=sys.stderr)
            return 2
        if current != text:
            print(f"{args.check} is out of date: run mynacard fidelity --write {args.check}")
            return 1
        print(f"{args.check}: up to date")
        return 0
    sys.stdout.write(text)
    return 0
