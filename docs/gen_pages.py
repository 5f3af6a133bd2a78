"""The generated parts of the documentation site, made from the code at build time.

A page in ``docs/`` asks for generated Markdown with a line of its own::

    <!-- generate: NAME [ARGUMENT] -->

and the MkDocs hook (``docs/hooks.py``) replaces that line with :func:`expand`'s text. The
generators read the project as it is — the access rules the chip loads, the persona validator,
the real ``mynacard`` parser, the plugin's fixtures, the conformance catalogue, module
docstrings, README sections — so a page cannot drift from the code; the test suite
(``tests/docs/``) checks that they cover everything the code knows. An unknown generator, a
missing README section or a page element that no longer matches the code raises
:class:`DocsError`, which fails the build.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import datetime as dt
import enum
import importlib.util
import inspect
import itertools
import re
import textwrap
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

from apdu import vocabulary
from apdu.vocabulary import (
    APPLICATIONS,
    CREDENTIALS,
    ISSUER_SECURITY_DOMAIN_AID,
    KNOWN_ATRS,
    MF_PROTECTED_EF,
    credential_name,
)
from card_emulator import persona as persona_module
from card_emulator.access import RULES_RESOURCE, AccessRules, Condition, load_rules
from card_emulator.persona import CARD_CREDENTIALS, IMAGE_KINDS, TOP_LEVEL_FIELDS
from card_emulator.persona_fields import MAX_TEXT_CHARS
from card_emulator.persona_model import Persona, PersonaError
from card_emulator.policy import CardPolicy
from card_emulator.render import load_image_file
from harness.cli import build_parser
from harness.conformance.catalogue import OUTCOMES, REASONS, load_catalogue, load_full_catalogue
from harness.conformance.rules import GENERAL_RULES, OUTCOME_RULES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
PROJECT = Path(inspect.getfile(build_parser)).resolve().parents[1]
"""Where the imported packages live (this clone, or the one the environment installed)."""
DIRECTIVE = re.compile(r"^<!-- generate: ([a-z-]+)(?: (.+?))? -->[ \t]*$", re.MULTILINE)


class DocsError(ValueError):
    """A page asks for something the code does not have (the message says what)."""


# -- the directive ---------------------------------------------------------------------------


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- generate: NAME [ARGUMENT] -->`` line replaced."""

    def one(match: re.Match[str]) -> str:
        name, argument = match.group(1), (match.group(2) or "").strip()
        generator = GENERATORS.get(name)
        if generator is None:
            raise DocsError(f"unknown generator {name!r} (known: {', '.join(GENERATORS)})")
        return generator(argument).rstrip("\n")

    return DIRECTIVE.sub(one, markdown)


def cell(text: object) -> str:
    """``text`` fit for one cell of a Markdown table (one line, ``|`` escaped)."""
    return re.sub(r"[ \t\r\n]+", " ", str(text)).strip().replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (cells are used as given: pass them through :func:`cell`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fid(value: int) -> str:
    """A file identifier as the card's documents write it: ``000A``."""
    return f"{value:04X}"


# -- README sections and files ---------------------------------------------------------------


def readme_section(title: str) -> str:
    """The body of the README section ``## title``.

    ``lead`` is the README's first paragraph and ``intro`` the rest of the text before the
    first section. Links into ``docs/`` are rewritten to the pages beside this one; any other
    relative link is left as it is, so the strict build reports it.
    """
    lines = README.read_text(encoding="utf-8").splitlines()
    if title in ("lead", "intro"):
        start = next(i for i, line in enumerate(lines) if line.startswith("# ")) + 1
    else:
        try:
            start = lines.index(f"## {title}") + 1
        except ValueError:
            raise DocsError(f"README.md has no section '## {title}'") from None
    end, fenced = len(lines), False
    for number in range(start, len(lines)):
        if lines[number].startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", lines[number]):  # not a comment in code
            end = number
            break
    if fenced:
        raise DocsError(f"README.md: a code block in '{title}' is not closed")
    body = "\n".join(lines[start:end]).strip("\n")
    if title in ("lead", "intro"):
        lead, _, rest = body.partition("\n\n")
        body = lead if title == "lead" else rest
    return re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", body)


def repository_file(path: str) -> str:
    """A file of the repository as a fenced code block."""
    file = ROOT / path
    if not file.is_file():
        raise DocsError(f"no file {path} in the repository")
    language = {".toml": "toml", ".py": "python", ".sh": "bash"}.get(file.suffix, "text")
    return f"```{language}\n{file.read_text(encoding='utf-8').rstrip()}\n```"


def apt_packages(_: str = "") -> str:
    """The Debian packages ``scripts/dev.sh`` installs for running cards (its APT_PACKAGES)."""
    script = (ROOT / "scripts" / "dev.sh").read_text(encoding="utf-8")
    found = re.search(r"^APT_PACKAGES=\(([^)]*)\)", script, re.MULTILINE)
    if found is None:
        raise DocsError("scripts/dev.sh no longer sets APT_PACKAGES=(...)")
    names = found.group(1).split()
    return "```bash\napt-get install " + " ".join(names) + "\n```"


# -- docstrings ------------------------------------------------------------------------------

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`~?([^`]+)`")
_SIMPLE_TABLE_RULE = re.compile(r"^=+( +=+)+$")


def rst_to_markdown(text: str) -> str:
    """A reStructuredText-flavoured docstring as Markdown.

    Roles become code (``:class:`~a.b.C``` → ```C```, ``:class:`a.b.C``` → ```a.b.C```), a
    ``::`` paragraph end becomes ``:`` (its indented block is already a Markdown code block)
    and a simple table (``====  ====`` rules) becomes a Markdown table.
    """

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        short = match.group(0).count("`~") == 1
        return f"``{target.rsplit('.', 1)[-1] if short else target}``"

    text = _ROLE.sub(role, text)
    out: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if _SIMPLE_TABLE_RULE.match(line):
            block = [line]
            index += 1
            while index < len(lines) and not _SIMPLE_TABLE_RULE.match(lines[index]):
                block.append(lines[index])
                index += 1
            index += 1  # the closing rule
            out += ["", _simple_table(block), ""]
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            line = f"{stripped}:" if stripped else ""
        out.append(line)
        index += 1
    return "\n".join(out)


def _simple_table(block: list[str]) -> str:
    """A reStructuredText simple table without a header (its opening rule, then its rows) as
    a Markdown table with an empty header."""
    starts = [match.start() for match in re.finditer(r"=+", block[0])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows = [[cell(line[start:end]) for start, end in bounds] for line in block[1:] if line.strip()]
    return table([" "] * len(starts), rows)


def module_docstring(module: str) -> str:
    """A module's docstring as Markdown, read from its source (the module is not run)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DocsError(f"no module {module}")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    if not docstring:
        raise DocsError(f"{module} has no docstring")
    return rst_to_markdown(docstring)


def _assignment_docstrings(body: list[ast.stmt]) -> dict[str, str]:
    """The docstrings written under assignments (``x: int = 1`` then ``\"\"\"…\"\"\"``)."""
    found: dict[str, str] = {}
    for first, second in itertools.pairwise(body):
        targets: list[ast.expr] = []
        if isinstance(first, ast.AnnAssign):
            targets = [first.target]
        elif isinstance(first, ast.Assign):
            targets = first.targets
        if (
            len(targets) == 1
            and isinstance(targets[0], ast.Name)
            and isinstance(second, ast.Expr)
            and isinstance(second.value, ast.Constant)
            and isinstance(second.value.value, str)
        ):
            found[targets[0].id] = inspect.cleandoc(second.value.value)
    return found


def attribute_docstrings(cls: type) -> dict[str, str]:
    """The docstrings written under a class's attributes."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    node = tree.body[0]
    return _assignment_docstrings(node.body) if isinstance(node, ast.ClassDef) else {}


def module_attribute_docstrings(module: types.ModuleType) -> dict[str, str]:
    """The docstrings written under a module's constants."""
    return _assignment_docstrings(ast.parse(inspect.getsource(module)).body)


def class_docstring(cls: type) -> str:
    """``cls``'s own docstring as Markdown (empty when it has none)."""
    return rst_to_markdown(inspect.cleandoc(cls.__doc__ or ""))


# -- the card's applications and access rules ------------------------------------------------


def _rules_source() -> str:
    return resources.files("card_emulator").joinpath(RULES_RESOURCE).read_text("utf-8")


def rule_comments() -> dict[str, str]:
    """The comment after each entry of ``access_rules.toml``, by ``ap.section.FID`` (and the
    comment of each ``[ap]`` header by ``ap``): the rules' sources and reasons."""
    comments: dict[str, str] = {}
    section = ""
    for line in _rules_source().splitlines():
        header = re.match(r"\[([\w.]+)\]\s*(?:#\s*(.*))?$", line)
        if header:
            section = header.group(1)
            if header.group(2):
                comments[section] = header.group(2).strip()
            continue
        entry = re.match(r'"?(\w+)"?\s*=\s*[^#]*#\s*(.*)$', line)
        if entry and section:
            key = entry.group(1)
            key = key.upper() if re.fullmatch(r"[0-9A-Fa-f]{4}", key) else key
            comments[f"{section}.{key}"] = entry.group(2).strip()
    return comments


def overlay_names() -> list[str]:
    """The named rule overlays of ``access_rules.toml`` (card variants)."""
    return list(tomllib.loads(_rules_source()).get("overlay", {}))


_FID_CONSTANT = re.compile(r"EF_|KEY|PIN|CHECK_CODE|BIRTH_DATE_KEY|BLOCKED_KEY|UNKNOWN_KEY")


def vocabulary_names() -> dict[tuple[str, int], list[str]]:
    """``(application, FID)`` → the ``apdu.vocabulary`` constants naming it (``Jpki.EF_TOKEN``)."""
    by_aid = {app.aid: name for name, app in APPLICATIONS.items()}
    found: dict[tuple[str, int], list[str]] = {}
    for class_name, cls in vars(vocabulary).items():
        application = by_aid.get(getattr(cls, "AID", b"")) if isinstance(cls, type) else None
        if application is None:
            continue
        for name, value in vars(cls).items():
            if not _FID_CONSTANT.match(name) or name.endswith(("TRIES", "SIZE")):
                continue
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if isinstance(item, int):
                    found.setdefault((application, item), []).append(f"{class_name}.{name}")
    return found


def known_fids(application: str, rules: AccessRules) -> set[int]:
    """Every FID of ``application`` the code knows: its rules (files, keys and the credentials
    they name), its credentials and the names in ``apdu.vocabulary``."""
    fids = set(rules.read) | set(rules.use)
    for condition in rules.conditions():
        fids |= condition.credentials
    fids |= {where.fid for where in CREDENTIALS.values() if where.application == application}
    fids |= set(CARD_CREDENTIALS.get(application, frozenset()))
    fids |= set(APPLICATIONS[application].files)
    fids |= {f for (app, f) in vocabulary_names() if app == application}
    return fids


def _fid_name(application: str, value: int) -> str:
    named = credential_name(application, value)
    if named is not None:
        return CREDENTIALS[named].label
    return APPLICATIONS[application].files.get(value, "")


def _condition(application: str, condition: Condition) -> str:
    if condition.never:
        return "**never**"
    if condition.free:
        return "free"
    return " or ".join(
        f"`{fid(c)}` {_fid_name(application, c)}".strip() for c in sorted(condition.credentials)
    )


def access_rules_page(_: str = "") -> str:
    """Every application with its files, keys and credentials, and what opens each."""
    rules = load_rules()
    comments = rule_comments()
    names = vocabulary_names()
    out = [
        table(
            ["application", "name", "AID", "files", "keys", "credentials"],
            [
                [
                    f"[{cell(APPLICATIONS[name].label)}](#{name})",
                    f"`{name}`",
                    f"`{APPLICATIONS[name].aid.hex().upper()}`",
                    str(len(app_rules.read)),
                    str(len(app_rules.use)),
                    str(len(_credentials_of(name, app_rules))),
                ]
                for name, app_rules in rules.items()
            ],
        )
    ]
    for name, app_rules in rules.items():
        out.append(_application_section(name, app_rules, comments, names))
    out.append(_overlays_section(rules, comments))
    documented = module_attribute_docstrings(vocabulary)
    out.append("## Outside the applications")
    out.append(
        table(
            ["identifier", "value", "note"],
            [
                [
                    "`ISSUER_SECURITY_DOMAIN_AID`",
                    f"AID `{ISSUER_SECURITY_DOMAIN_AID.hex().upper()}`",
                    cell(rst_to_markdown(documented.get("ISSUER_SECURITY_DOMAIN_AID", ""))),
                ],
                [
                    "`MF_PROTECTED_EF`",
                    f"EF `{fid(MF_PROTECTED_EF)}`",
                    cell(rst_to_markdown(documented.get("MF_PROTECTED_EF", ""))),
                ],
            ],
        )
    )
    return "\n\n".join(out)


def _credentials_of(application: str, rules: AccessRules) -> list[int]:
    fids = set(CARD_CREDENTIALS.get(application, frozenset()))
    for condition in rules.conditions():
        fids |= condition.credentials
    return sorted(fids)


def _application_section(
    name: str,
    rules: AccessRules,
    comments: Mapping[str, str],
    names: Mapping[tuple[str, int], list[str]],
) -> str:
    app = APPLICATIONS[name]

    def constants(value: int) -> str:
        return "<br>".join(f"`{c}`" for c in names.get((name, value), []))

    def note(key: str) -> str:
        return cell(comments.get(key, ""))

    parts = [
        f"## {app.label} (`{name}`) {{: #{name} }}",
        f"AID `{app.aid.hex().upper()}`; in one-line summaries *{app.short}*."
        + (f" Rules: {cell(comments[name])}." if name in comments else ""),
    ]
    parts.append("### Files\n\nREAD BINARY / READ RECORD of each EF.")
    parts.append(
        table(
            ["EF", "name", "vocabulary", "readable after", "note (access_rules.toml)"],
            [
                [
                    f"`{fid(f)}`",
                    cell(app.files.get(f, "")),
                    constants(f),
                    _condition(name, rules.read[f]),
                    note(f"{name}.read.{fid(f)}"),
                ]
                for f in sorted(rules.read)
            ],
        )
    )
    parts.append("### Keys\n\nCOMPUTE DIGITAL SIGNATURE / INTERNAL AUTHENTICATE with each key.")
    if rules.use:
        parts.append(
            table(
                ["key", "name", "vocabulary", "usable after", "note (access_rules.toml)"],
                [
                    [
                        f"`{fid(f)}`",
                        cell(app.files.get(f, "")),
                        constants(f),
                        _condition(name, rules.use[f]),
                        note(f"{name}.use.{fid(f)}"),
                    ]
                    for f in sorted(rules.use)
                ],
            )
        )
    else:
        parts.append("None.")
    credentials = _credentials_of(name, rules)
    parts.append("### Credentials\n\nVERIFY of each IEF: PINs, passwords and 照合番号.")
    rows = []
    for value in credentials:
        named = credential_name(name, value)
        where = CREDENTIALS[named] if named else None
        opens = [f"EF `{fid(f)}`" for f, c in sorted(rules.read.items()) if value in c.credentials]
        opens += [f"key `{fid(f)}`" for f, c in sorted(rules.use.items()) if value in c.credentials]
        if rules.session_key is not None and value in rules.session_key.credentials:
            opens.append("SET SESSION KEY")
        rows.append(
            [
                f"`{fid(value)}`",
                cell(where.label if where else app.files.get(value, "")),
                f"`{named}`" if named else "—",
                str(where.max_tries) if where else "—",
                constants(value),
                ", ".join(opens) or "nothing",
            ]
        )
    parts.append(table(["IEF", "name", "`[counters]` name", "tries", "vocabulary", "opens"], rows))
    if rules.session_key is not None:
        parts.append(
            "### Secure messaging\n\nSET SESSION KEY (`80 AE`) delivers a key after "
            f"{_condition(name, rules.session_key)}. {note(f'{name}.session_key')}"
        )
    listed = set(rules.read) | set(rules.use) | set(credentials)
    others = sorted(known_fids(name, rules) - listed)
    if others:
        parts.append("### Other identifiers")
        parts.append(
            table(
                ["FID", "name", "vocabulary"],
                [[f"`{fid(f)}`", cell(app.files.get(f, "")), constants(f)] for f in others],
            )
        )
    return "\n\n".join(parts)


def _overlays_section(base: Mapping[str, AccessRules], comments: Mapping[str, str]) -> str:
    parts = [
        "## Card variants (overlays)",
        "An overlay changes single entries for a kind of card; personalization applies it by the "
        "persona's token. A persona's `[access]` table may change entries too (for negative "
        "tests; see [Personas](personas.md#access)).",
    ]
    for overlay in overlay_names():
        changed = load_rules([overlay])
        rows = []
        for application, rules in changed.items():
            before = base[application]
            for section in ("read", "use"):
                old: Mapping[int, Condition] = getattr(before, section)
                new: Mapping[int, Condition] = getattr(rules, section)
                for value in sorted(new):
                    if old.get(value) != new[value]:
                        rows.append(
                            [
                                f"`{application}`",
                                section,
                                f"`{fid(value)}`",
                                _condition(application, old[value]) if value in old else "—",
                                _condition(application, new[value]),
                            ]
                        )
        heading = next((c for k, c in comments.items() if k.startswith(f"overlay.{overlay}.")), "")
        parts.append(f"### `{overlay}`" + (f"\n\n{cell(heading)}" if heading else ""))
        parts.append(table(["application", "rule", "FID", "base card", "this variant"], rows))
    return "\n\n".join(parts)


# -- personas --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonaField:
    """One field of a persona file, as the validator treats it."""

    path: str
    kind: str
    required: bool
    default: str
    example: str
    check: str
    description: str


@dataclass(frozen=True, slots=True)
class PersonaTable:
    """One table of a persona file (``""`` for the top level)."""

    path: str
    doc: str
    fields: tuple[PersonaField, ...]


BAD_TEXT = "?"
"""What every field is probed with: the validator's answer documents the field's format."""
LONG_TEXT = "x" * 5000
"""A text longer than any field allows: the answer gives the field's length limit."""


def _get(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ...
        value = value[part]
    return value


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    *tables, last = path.split(".")
    where = out
    for part in tables:
        where = where.setdefault(part, {})
    if value is ...:
        where.pop(last, None)
    else:
        where[last] = value
    return out


def _validate(data: Mapping[str, Any]) -> Persona | str:
    """The persona, or the validator's message with the source prefix cut off."""
    try:
        return persona_module.from_mapping(data, "persona")
    except PersonaError as exc:
        return str(exc).removeprefix("persona: ")


def _attribute(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


def _toml_text(value: Any) -> str:
    """A value as it would be written in a persona file."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, enum.Enum):
        return f'`"{value.value}"`'
    if isinstance(value, bytes):
        names = [name for name, atr in KNOWN_ATRS.items() if atr == value]
        return f'`"{names[0] if names else value.hex().upper()}"`'
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dt.datetime | dt.date):
        return f"`{value.isoformat()}`"
    if isinstance(value, Mapping):
        return "`{" + ", ".join(f'"{k}" = "{v}"' for k, v in value.items()) + "}`"
    return f"`{value}`"


def _toml_kind(hint: Any, owner: type) -> str:
    """The TOML type of a field from its Python type (``X | None`` is X)."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    if owner is CardPolicy:
        if hint is bool:
            return "boolean"
        if hint is int:
            return "status word (hex text or integer)"
        return "table"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "string"
    names: dict[Any, str] = {
        str: "string",
        bool: "boolean",
        int: "integer",
        bytes: "string",
        dt.datetime: "date, or date-time with offset",
        dt.date: "date",
    }
    if hint in names:
        return names[hint]
    raise DocsError(f"{owner.__name__}: no TOML name for the type {hint!r}")


def _demo_comments() -> dict[str, str]:
    """The comment after each field of the demo persona, by dotted path."""
    comments: dict[str, str] = {}
    section = ""
    for line in DEMO_PERSONA.read_text(encoding="utf-8").splitlines():
        header = re.match(r"\[([\w.]+)\]", line)
        if header:
            section = header.group(1)
            continue
        entry = re.match(r"(\w+)\s*=.*#\s*(.*)$", line)
        if entry:
            key = f"{section}.{entry.group(1)}" if section else entry.group(1)
            comments[key] = entry.group(2).strip()
    return comments


class _Prober:
    """Asks the persona validator about one field at a time, starting from the demo persona."""

    def __init__(self) -> None:
        self.demo: dict[str, Any] = tomllib.loads(DEMO_PERSONA.read_text(encoding="utf-8"))
        answer = _validate(self.demo)
        if isinstance(answer, str):
            raise DocsError(f"the demo persona does not validate: {answer}")

    def accepted(self, path: str) -> bool:
        """False when the validator refuses ``path`` as an unknown field."""
        answer = _validate(_set(self.demo, path, BAD_TEXT))
        return not (isinstance(answer, str) and answer.startswith("unknown field"))

    def required(self, path: str) -> bool:
        """True when the validator refuses a persona without ``path``."""
        answer = _validate(_set(self.demo, path, ...))
        return isinstance(answer, str) and answer.endswith("required field is missing")

    def default(self, path: str) -> str:
        """What the validator fills in when ``path`` is left out."""
        data = _set(self.demo, path, ...)
        answer = _validate(data)
        if isinstance(answer, str):
            return "—"
        value = _attribute(answer, path)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            follows = self._followed_date(data, path, value)
            if follows:
                return f"the same as `{follows}`"
        return _toml_text(value)

    def _followed_date(self, data: dict[str, Any], path: str, value: dt.date) -> str | None:
        """The date field whose value a missing date defaults to (moved by a day to be sure)."""
        for other, given in _leaves(self.demo):
            if other == path or given != value:
                continue
            moved = _validate(_set(data, other, value + dt.timedelta(days=1)))
            if not isinstance(moved, str) and _attribute(moved, path) == value + dt.timedelta(
                days=1
            ):
                return other
        return None

    def check(self, path: str, kind: str) -> str:
        """The validator's answer to a bad value, and the field's own length limit."""
        answer = self._refusal(path, self.demo, BAD_TEXT)
        parts = []
        if answer:
            parts.append(answer)
        if kind == "string":
            limit = self._refusal(path, self.demo, LONG_TEXT)
            found = re.search(r"at most (\d+)", limit or "")
            if found and (int(found.group(1)) != MAX_TEXT_CHARS or not answer):
                parts.append(f"at most {found.group(1)} characters")
        return "; ".join(parts)

    def _refusal(self, path: str, data: dict[str, Any], value: Any, depth: int = 0) -> str:
        answer = _validate(_set(data, path, value))
        if not isinstance(answer, str):
            return ""
        answer = answer.removeprefix(f"{path}: ")
        needs = re.fullmatch(r'only with (\w+) = "(\w+)"', answer)
        if needs and depth == 0:  # e.g. a revocation reason, only with a revoked state
            sibling = path.rsplit(".", 1)[0] + "." + needs.group(1)
            answer = self._refusal(path, _set(data, sibling, needs.group(2)), value, 1) or answer
        return answer


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def persona_tables() -> list[PersonaTable]:
    """Every table and field a persona file may have, from the dataclasses the validator fills
    (recursively), the vocabularies it checks mapping keys against, and what it answers."""
    prober = _Prober()
    comments = _demo_comments()
    tables: list[PersonaTable] = []

    def walk(cls: type, path: str) -> None:
        hints = get_type_hints(cls)
        documented = attribute_docstrings(cls)
        scalars: list[PersonaField] = []
        nested: list[tuple[type | None, str]] = []  # dataclass tables, or mapping tables
        for field in dataclasses.fields(cls):
            if not path and field.name not in TOP_LEVEL_FIELDS:
                continue  # computed, not read from the file (the digest)
            here = f"{path}.{field.name}" if path else field.name
            hint = hints[field.name]
            if isinstance(hint, type) and dataclasses.is_dataclass(hint):
                nested.append((hint, here))
                continue
            if here in _MAPPING_TABLES:
                nested.append((None, here))
                continue
            if not prober.accepted(here):
                raise DocsError(f"{here}: a field of {cls.__name__} the validator refuses")
            kind = _toml_kind(hint, cls)
            required = prober.required(here)
            example = _get(prober.demo, here)
            if cls is CardPolicy:
                default = _policy_default(field.name)
            else:
                default = "required" if required else prober.default(here)
            scalars.append(
                PersonaField(
                    here,
                    kind,
                    required,
                    default,
                    "" if example is ... else _toml_text(example),
                    prober.check(here, kind),
                    comments.get(here) or documented.get(field.name, ""),
                )
            )
        tables.append(PersonaTable(path, class_docstring(cls) if path else "", tuple(scalars)))
        for child, where in nested:
            if child is None:
                tables.extend(_MAPPING_TABLES[where](prober))
            else:
                walk(child, where)

    walk(Persona, "")
    return tables


def _policy_default(name: str) -> str:
    value = CardPolicy().to_data()[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return _toml_text(value)
    return f'`"{value:04X}"`'


def _counters(prober: _Prober) -> list[PersonaTable]:
    fields = []
    for name, where in CREDENTIALS.items():
        path = f"counters.{name}"
        if not prober.accepted(path):
            raise DocsError(f"{path}: a credential the validator refuses")
        label = APPLICATIONS[where.application].label
        fields.append(
            PersonaField(
                path,
                f"integer 0–{where.max_tries}",
                False,
                f"`{where.max_tries}` (a fresh card)",
                "",
                prober.check(path, "integer"),
                f"{where.label}: {label} IEF `{fid(where.fid)}`",
            )
        )
    doc = (
        "Tries left on each credential when the card is made (`0` = blocked); a credential "
        "left out starts with all its tries. Names: `apdu.vocabulary.CREDENTIALS`."
    )
    return [PersonaTable("counters", doc, tuple(fields))]


def _images(prober: _Prober) -> list[PersonaTable]:
    fields = []
    for kind in IMAGE_KINDS:
        path = f"images.{kind}"
        if not prober.accepted(path):
            raise DocsError(f"{path}: an image kind the validator refuses")
        fields.append(
            PersonaField(
                path,
                "string (a file path)",
                False,
                "drawn by the emulator",
                "",
                "the file must exist and pass the checks above",
                f"the card face's {kind.replace('_', ' ')} image",
            )
        )
    doc = (
        "Image files for the card face, instead of the ones the emulator draws; a relative "
        "path is relative to the persona file.\n\n"
        + rst_to_markdown(inspect.cleandoc(load_image_file.__doc__ or "").split("\n\n", 1)[-1])
    )
    return [PersonaTable("images", doc, tuple(fields))]


def _access(prober: _Prober) -> list[PersonaTable]:
    documented = attribute_docstrings(AccessRules)
    fields = []
    for application, rules in load_rules().items():
        credentials = ", ".join(
            f"`{fid(c)}`" for c in sorted(CARD_CREDENTIALS.get(application, frozenset()))
        )
        for field in dataclasses.fields(AccessRules):
            path = f"access.{application}.{field.name}"
            if not prober.accepted(path):
                raise DocsError(f"{path}: an access rule the validator refuses")
            current: Mapping[int, Condition] | Condition | None = getattr(rules, field.name)
            if isinstance(current, Mapping):
                kind = 'table: FID → list of credential FIDs, or `"never"`'
                subjects = ", ".join(f"`{fid(f)}`" for f in sorted(current))
                default = f"[the card's rules](access-rules.md#{application})"
                what = f"FIDs: {subjects or 'none'}; credentials: {credentials}"
            else:
                kind = 'list of credential FIDs, or `"never"`'
                default = (
                    "no key delivery"
                    if current is None
                    else f"[the card's rule](access-rules.md#{application})"
                )
                what = f"credentials: {credentials}"
            description = {
                "read": "who may read each EF (READ BINARY / READ RECORD)",
                "use": "who may use each key (COMPUTE DIGITAL SIGNATURE / INTERNAL AUTHENTICATE)",
            }.get(field.name, documented.get(field.name, ""))
            fields.append(
                PersonaField(
                    path,
                    kind,
                    False,
                    default,
                    "",
                    f"{what}; {prober.check(path, 'table')}",
                    description,
                )
            )
    doc = (
        "Overrides of single access-rule entries, per application, in the form of "
        "`card_emulator/access_rules.toml` (for negative tests: a card that opens what a real "
        "one keeps shut). Every credential named must be one of the application's own."
    )
    return [PersonaTable("access", doc, tuple(fields))]


_MAPPING_TABLES: dict[str, Callable[[_Prober], list[PersonaTable]]] = {
    "counters": _counters,
    "images": _images,
    "access": _access,
}
"""Persona fields that are tables keyed by the validator's vocabularies, not dataclasses."""


def personas_page(_: str = "") -> str:
    """Every table and field of a persona file."""
    out = []
    for persona_table in persona_tables():
        name = persona_table.path or "top level"
        heading = f"`[{name}]`" if persona_table.path else "Top level"
        anchor = persona_table.path.replace(".", "-") or "top-level"
        out.append(f"## {heading} {{: #{anchor} }}")
        if persona_table.doc:
            out.append(persona_table.doc)
        out.append(
            table(
                [
                    "field",
                    "type",
                    "default",
                    "demo",
                    "description",
                    f'the validator\'s answer to `"{BAD_TEXT}"`',
                ],
                [
                    [
                        f"`{f.path}`",
                        cell(f.kind),
                        "**required**" if f.required else cell(f.default),
                        cell(f.example),
                        cell(f.description),
                        cell(f.check),
                    ]
                    for f in persona_table.fields
                ],
            )
        )
    return "\n\n".join(out)


# -- the command line ------------------------------------------------------------------------


def subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every subcommand, depth first: its words, its parser and its one-line help."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue  # an alias
            seen.add(id(sub))
            words = (*prefix, name)
            yield words, sub, helps.get(name, "")
            yield from subcommands(sub, words)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _arguments(parser: argparse.ArgumentParser) -> list[list[str]]:
    formatter = argparse.HelpFormatter(parser.prog)
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                metavar = " " + formatter._format_args(action, action.dest.upper())
            name = ", ".join(f"`{option}{metavar}`" for option in action.option_strings)
        else:
            name = f"`{formatter._format_args(action, action.dest)}`"
        help_text = formatter._expand_help(action) if action.help else ""
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        if isinstance(action, argparse._AppendAction):
            notes.append("repeatable")
        if action.choices is not None and action.metavar is not None:  # else the usage shows them
            notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
        default = action.default
        if (
            default not in (None, False, [], argparse.SUPPRESS)
            and action.nargs != 0
            and "default" not in help_text
        ):
            shown = str(default).replace(f"{PROJECT}/", "")
            notes.append(f"default `{shown}`")
        rows.append([name, cell(help_text), cell("; ".join(notes))])
    return rows


def cli_page(_: str = "") -> str:
    """Every ``mynacard`` subcommand: usage, arguments and help, from the real parser."""
    parser = build_parser()
    out = [f"```text\n{_usage(parser)}\n```", parser.description or ""]
    listed = list(subcommands(parser))
    out.append(
        table(
            ["command", "what it does"],
            [
                [f"[`mynacard {' '.join(words)}`](#{'-'.join(words)})", cell(help_text)]
                for words, _, help_text in listed
                if len(words) == 1
            ],
        )
    )
    for words, sub, help_text in listed:
        level = "#" * min(len(words) + 1, 4)
        out.append(f"{level} `mynacard {' '.join(words)}` {{: #{'-'.join(words)} }}")
        if help_text:
            out.append(cell(help_text[0].upper() + help_text[1:]) + ".")
        if sub.description and sub.description != help_text:
            out.append(sub.description)
        out.append(f"```text\n{_usage(sub)}\n```")
        rows = _arguments(sub)
        if rows:
            out.append(table(["argument", "meaning", "notes"], rows))
        if sub.epilog:
            out.append(sub.epilog)
    return "\n\n".join(out)


# -- the pytest plugin -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixture:
    """One fixture of the plugin, as its source declares it."""

    name: str
    scope: str
    requests: tuple[str, ...]
    returns: str
    doc: str


def _is_fixture(decorator: ast.expr) -> tuple[bool, str]:
    """Whether ``decorator`` is ``pytest.fixture`` (or a call of it), and its scope."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call is not None else decorator
    if not (isinstance(target, ast.Attribute) and target.attr == "fixture"):
        return False, ""
    scope = "function"
    for keyword in call.keywords if call is not None else []:
        if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant):
            scope = str(keyword.value.value)
    return True, scope


def plugin_fixtures(module: str = "harness.plugin") -> list[Fixture]:
    """The fixtures of the plugin module, read from its source (pytest is not imported)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DocsError(f"no module {module}")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            is_fixture, scope = _is_fixture(decorator)
            if is_fixture:
                found.append(
                    Fixture(
                        node.name,
                        scope,
                        tuple(arg.arg for arg in node.args.args),
                        ast.unparse(node.returns) if node.returns else "",
                        inspect.cleandoc(ast.get_docstring(node) or ""),
                    )
                )
    return found


def plugin_markers(module: str = "harness.plugin") -> list[tuple[str, str]]:
    """The markers the plugin registers (``addinivalue_line("markers", "name: help")``)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DocsError(f"no module {module}")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    markers = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "addinivalue_line"
            and len(node.args) == 2
            and all(isinstance(arg, ast.Constant) for arg in node.args)
        ):
            kind, line = (str(arg.value) for arg in node.args if isinstance(arg, ast.Constant))
            if kind == "markers":
                name, _, text = line.partition(":")
                markers.append((name.strip(), text.strip()))
    return markers


def plugin_page(_: str = "") -> str:
    """The plugin's fixtures and markers, from ``harness/plugin.py``."""
    rows = [
        [
            f"`{f.name}`",
            f.scope,
            ", ".join(f"`{r}`" for r in f.requests if r not in ("request",)) or "—",
            f"`{cell(f.returns)}`" if f.returns else "",
            cell(rst_to_markdown(f.doc)),
        ]
        for f in plugin_fixtures()
    ]
    markers = [[f"`{name}`", cell(text)] for name, text in plugin_markers()]
    return "\n\n".join(
        [
            "## Fixtures",
            table(["fixture", "scope", "uses", "gives", "what it is"], rows),
            "## Markers",
            table(["marker", "meaning"], markers),
            "## How the plugin works",
            module_docstring("harness.plugin"),
        ]
    )


# -- kiosk conformance -----------------------------------------------------------------------


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """A TOML table as ``key.sub = value`` lines (arrays of tables numbered)."""
    lines = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines += _flat(value, f"{path}.")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for number, item in enumerate(value, 1):
                inner = ", ".join(f"{k} = {_inline(v)}" for k, v in item.items())
                lines.append(f"{path}[{number}]: {inner}")
        else:
            lines.append(f"{path} = {_inline(value)}")
    return lines


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def conformance_catalogue(_: str = "") -> str:
    """The kiosk scenarios, from ``kiosk_scenarios.toml`` as the runner loads it."""
    raw = tomllib.loads(
        resources.files("harness.conformance").joinpath("kiosk_scenarios.toml").read_text("utf-8")
    )
    entries = {entry["name"]: entry for entry in raw["scenario"]}
    rows = []
    for scenario in load_catalogue():
        entry = entries[scenario.name]
        setup = [f"persona: `{line}`" for line in _flat(entry.get("persona", {}))]
        setup += [f"card: `{line}`" for line in _flat(entry.get("card", {}))]
        for generation, overrides in scenario.on.items():
            setup += [f"on {generation}: `{line}`" for line in _flat(overrides)]
        setup += [
            f"n/a on {generation}: {reason}" for generation, reason in scenario.not_for.items()
        ]
        rows.append(
            [
                f"`{scenario.name}`",
                f"**{cell(scenario.title)}** — {cell(scenario.story)}",
                " then ".join(f"`{pin}`" for pin in scenario.pins) or "nothing",
                "<br>".join(cell(line) for line in setup) or "—",
                f"`{scenario.expect}`",
                f"[`{scenario.outcome_rule}`](#{scenario.outcome_rule})",
            ]
        )
    return table(["scenario", "what happens", "PINs typed", "set-up", "expected", "rule"], rows)


def conformance_generations(_: str = "") -> str:
    """The card generations of the migration matrix (``[[generation]]``)."""
    rows = []
    for generation in load_full_catalogue().generations:
        setup = [f"persona: `{line}`" for line in _flat(generation.persona)]
        if generation.atr is not None:
            setup.append(f"ATR: `{generation.atr.hex(' ').upper()}`")
        rows.append(
            [
                f"`{generation.name}`",
                f"**{cell(generation.title)}** — {cell(generation.story)}",
                "<br>".join(cell(line) for line in setup) or "— (the base persona)",
            ]
        )
    return table(["generation", "what it is", "set-up"], rows)


def conformance_rules(_: str = "") -> str:
    """The general and outcome rules with their ids, and the reasons a kiosk may report."""

    def rows(rules: tuple[Any, ...]) -> list[list[str]]:
        return [[f'<span id="{rule.id}"></span>`{rule.id}`', cell(rule.title)] for rule in rules]

    return "\n\n".join(
        [
            "### General rules (every scenario)",
            table(["rule", "the kiosk must"], rows(GENERAL_RULES)),
            "### Outcome rules (the scenarios that name them)",
            table(["rule", "the kiosk must"], rows(OUTCOME_RULES)),
            "### Outcomes and reasons",
            "The kiosk's last line of standard output is a JSON object with `outcome` one of "
            + ", ".join(f'`"{o}"`' for o in OUTCOMES)
            + "; a refusal also names a `reason`, one of "
            + ", ".join(f'`"{r}"`' for r in REASONS)
            + ".",
        ]
    )


def console_api(_: str = "") -> str:
    """Every route of the console's HTTP API, from the OpenAPI document the real app serves."""
    from harness.console import CardController  # noqa: PLC0415 - the web stack, for this page
    from harness.console.web.app import create_app  # noqa: PLC0415

    document = create_app(CardController([]), "docs", port=1).openapi()
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            fields = ""
            if body is not None:
                schema = _schema(document, body["schema"])
                fields = ", ".join(f"`{name}`" for name in schema.get("properties", {}))
            rows.append(
                [f"`{method.upper()}`", f"`{path}`", cell(operation.get("summary", "")), fields]
            )
    return table(["method", "path", "what it does", "JSON body keys"], rows)


def _schema(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema``, following one ``$ref`` into the document's components (or the first of an
    ``anyOf``: an optional body)."""
    for choice in schema.get("anyOf", ()):
        if "$ref" in choice:
            return _schema(document, choice)
    reference = schema.get("$ref")
    if not isinstance(reference, str):
        return schema
    found: Any = document
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    return cast(Mapping[str, Any], found)


GENERATORS: dict[str, Callable[[str], str]] = {
    "readme": readme_section,
    "file": repository_file,
    "apt-packages": apt_packages,
    "docstring": module_docstring,
    "access-rules": access_rules_page,
    "personas": personas_page,
    "cli": cli_page,
    "pytest-plugin": plugin_page,
    "conformance-catalogue": conformance_catalogue,
    "conformance-generations": conformance_generations,
    "conformance-rules": conformance_rules,
    "console-api": console_api,
}
"""What ``<!-- generate: NAME ARGUMENT -->`` can ask for."""
