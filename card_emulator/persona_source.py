"""Where a persona's tables come from: TOML bytes or an already-parsed mapping, with a digest.

Either way the result is plain TOML data (dicts, lists, strings, numbers, booleans, dates and
times) for :mod:`card_emulator.persona` to validate, and a digest that identifies the persona:
SHA-256 of the file's bytes, or of a canonical form of the mapping (key order does not matter,
value types do). Errors in the source itself (not UTF-8, not TOML, a value TOML cannot hold)
name the source and, where it can be found, the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from typing import Any

from card_emulator.persona_fields import FORBIDDEN_CATEGORIES
from card_emulator.persona_model import PersonaError
from jpki.toml_fields import key_text, shown

MAX_PERSONA_BYTES = 4 * 1024 * 1024
"""A persona file is a few KB; anything over this is refused before it is parsed."""
MAX_NESTING = 32
"""Deepest array / inline-table nesting reported as the place of a too-deep document."""
MAX_MESSAGE_CHARS = 500
"""Longest error message (values in messages are cut far shorter; this is a backstop)."""
MAPPING_DIGEST_DOMAIN = b"mynacard persona mapping v1\n"
"""Prefix of the canonical form hashed for a mapping (never the start of a persona file's hash
input in practice, and it versions the form)."""


def toml_data(raw: bytes, source: str) -> tuple[dict[str, Any], str]:
    """The tables of persona TOML ``raw`` and its digest (SHA-256 of the bytes)."""
    if len(raw) > MAX_PERSONA_BYTES:
        raise PersonaError(
            f"{source}: more than {MAX_PERSONA_BYTES // 1024 // 1024} MiB, not a persona"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise PersonaError(f"{source}: not UTF-8 text (line {bad_line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        field = _field_at_error(text, str(exc))
        raise PersonaError(clean_message(f"{source}: {field}not valid TOML ({exc})")) from None
    except RecursionError:
        line = _too_deep_line(text)
        field = _field_at_line(text, line) if line else ""
        where = f" (line {line})" if line else ""
        raise PersonaError(f"{source}: {field}arrays or tables nested too deeply{where}") from None
    return data, hashlib.sha256(raw).hexdigest()


def mapping_data(data: Mapping[str, Any], source: str) -> tuple[dict[str, Any], str]:
    """``data`` as plain TOML data and its digest (SHA-256 of a canonical form).

    Mappings become dicts and tuples lists, so validation sees what ``tomllib`` would give for
    the same tables; a value TOML cannot hold (``None``, bytes, a non-string key...) is refused.
    """
    if not isinstance(data, Mapping):
        raise PersonaError(f"{source}: expected a table of persona fields, got {shown(data)}")
    canonical: list[str] = []
    try:
        plain = _plain(data, "", canonical)
    except PersonaError as exc:
        raise PersonaError(clean_message(f"{source}: {exc}")) from None
    except RecursionError:  # also a mapping that contains itself
        raise PersonaError(f"{source}: arrays or tables nested too deeply") from None
    digest = hashlib.sha256(MAPPING_DIGEST_DOMAIN + "".join(canonical).encode("utf-8"))
    return plain, digest.hexdigest()


def _plain(value: Any, where: str, canonical: list[str]) -> Any:
    """``value`` as TOML data; its canonical form is appended to ``canonical``."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        parts: dict[str, list[str]] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PersonaError(f"{where or 'top level'}: key {shown(key)} is not a string")
            path = f"{where}.{key_text(key)}" if where else key_text(key)
            parts[key] = [json.dumps(key), ":"]
            out[key] = _plain(item, path, parts[key])
        canonical.append("{")
        for key in sorted(parts):
            canonical.extend(parts[key])
            canonical.append(",")
        canonical.append("}")
        return out
    if isinstance(value, list | tuple):
        canonical.append("[")
        items = []
        for index, item in enumerate(value):
            items.append(_plain(item, f"{where}[{index}]", canonical))
            canonical.append(",")
        canonical.append("]")
        return items
    canonical.append(_scalar(value, where))
    return value


def _scalar(value: Any, where: str) -> str:
    """The canonical form of a TOML scalar: a type letter and an unambiguous text."""
    if isinstance(value, str):
        return "s" + json.dumps(value)
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value!r}"
    if isinstance(value, dt.datetime):
        return "T" + value.isoformat()
    if isinstance(value, dt.date):
        return "D" + value.isoformat()
    if isinstance(value, dt.time):
        return "t" + value.isoformat()
    raise PersonaError(
        f"{where or 'top level'}: {shown(value)} is not a TOML value "
        "(a string, number, boolean, date, time, list or table)"
    )


def clean_message(message: str) -> str:
    """``message`` with control characters escaped, cut to :data:`MAX_MESSAGE_CHARS`."""
    message = "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in FORBIDDEN_CATEGORIES else char
        for char in message
    )
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _too_deep_line(text: str) -> int | None:
    """The line where arrays / inline tables first nest deeper than :data:`MAX_NESTING`."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        quote = ""
        for char in line:
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    return number
            elif char in "]}":
                depth -= 1
    return None


def _field_at_error(text: str, message: str) -> str:
    """``'holder.birth_date: '`` for a TOML error on that field's line (e.g. 1980-02-30)."""
    found = re.search(r"line (\d+)", message)
    if found is None:
        return ""
    return _field_at_line(text, int(found.group(1)))


def _field_at_line(text: str, number: int) -> str:
    """``'holder.birth_date: '`` when line ``number`` sets that field, else ``''``."""
    lines = text.splitlines()
    if not 1 <= number <= len(lines):
        return ""
    key = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", lines[number - 1])
    if key is None:
        return ""
    section = ""
    for line in reversed(lines[: number - 1]):
        header = re.match(r"\s*\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            section = header.group(1) + "."
            break
    return f"{section}{key.group(1)}: "
