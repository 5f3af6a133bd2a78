"""Personas as data: ``from_mapping`` validates like ``parse`` and has a stable digest."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from card_emulator.persona import Persona, PersonaError, from_mapping, parse
from harness.personas import DEMO, merge, to_toml
from tests.conftest import DEMO_PERSONA

DEMO_TEXT = DEMO_PERSONA.read_text(encoding="utf-8")

RICH = (
    DEMO_TEXT
    + """
[counters]
jpki_auth = 1
text_pin = 0

[policy]
unknown_aid_sw = "6A86"
reselect_clears_state = false
set_session_key_sw = { jpki = "6A88" }

[policy.remap]
"B0 6986" = "6A82"
"* 6D00" = "6E00"

[access.jpki.read]
"000A" = ["0018"]
"""
).replace('style = "test"', 'style = "test"\nauth_state = "revoked"\nauth_reason = "keyCompromise"')


def _fields(persona: Persona) -> Persona:
    return replace(persona, digest="")


def _error(build: Any) -> str:
    with pytest.raises(PersonaError) as info:
        build()
    return str(info.value)


@pytest.mark.parametrize("text", [DEMO_TEXT, RICH], ids=["demo", "rich"])
def test_from_mapping_gives_the_persona_parse_gives(text: str) -> None:
    from_text = parse(text.encode(), "p.toml", Path.cwd())
    from_data = from_mapping(tomllib.loads(text), "p.toml", Path.cwd())
    assert _fields(from_data) == _fields(from_text)


def test_python_tables_give_the_persona_their_toml_gives() -> None:
    tables = merge(DEMO, {"policy": {"remap": {"B0 6986": "6A82"}}, "counters": {"juki_pin": 2}})
    assert _fields(from_mapping(tables)) == _fields(parse(to_toml(tables).encode()))


BAD_TOML = [
    (r'^my_number = "314159265352"', 'my_number = "314159265353"'),
    (r'^jpki_auth = "1234"', 'jpki_auth = "12345"'),
    (r"^sex = 2", "sex = 5"),
    (r"^sex = 2", "sex = 2\nsexx = 2"),
    (r'^token = "JPKIAPICCTOKEN2"', 'token = "OTHER"'),
    (r"^birth_date = 1980-02-17", 'birth_date = "1980-02-30"'),
    (r'^style = "test"', 'style = "test"\nsign_reason = "keyCompromise"'),
    (r'^label = "demo"', 'label = " "'),
    (r'^label = "demo"', 'label = "demo"\n[policy]\nunknown_aid_sw = "9000"'),
    (r'^label = "demo"', 'label = "demo"\n[access.jpki.read]\n"000A" = ["0011"]'),
    (r'^label = "demo"', 'label = "demo"\n[counters]\njpki_auth = 4'),
]


@pytest.mark.parametrize(("pattern", "replacement"), BAD_TOML)
def test_from_mapping_refuses_with_the_message_parse_gives(pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, DEMO_TEXT, count=1, flags=re.MULTILINE)
    assert count == 1
    by_parse = _error(lambda: parse(text.encode(), "bad.toml"))
    by_mapping = _error(lambda: from_mapping(tomllib.loads(text), "bad.toml"))
    assert by_mapping == by_parse
    assert by_mapping.startswith("bad.toml: ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"holder": {"sex": None}}, "p: holder.sex: None is not a TOML value"),
        ({"holder": {"sex": b"\x02"}}, "p: holder.sex: b'\\x02' is not a TOML value"),
        ({"pins": {1: "1234"}}, "p: pins: key 1 is not a string"),
        ({"access": {"jpki": {"read": {"000A": ("0018", None)}}}}, "access.jpki.read.000A[1]"),
    ],
)
def test_values_toml_cannot_hold_are_refused_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    assert message in _error(lambda: from_mapping(merge(DEMO, overrides), "p"))


def test_a_mapping_that_contains_itself_is_refused() -> None:
    tables: dict[str, Any] = merge(DEMO, {})
    tables["policy"] = {"remap": tables}
    assert _error(lambda: from_mapping(tables, "p")) == "p: arrays or tables nested too deeply"


def test_tuples_count_as_lists() -> None:
    overrides = {"access": {"jpki": {"read": {"000A": ("0018",)}}}}
    as_tuple = from_mapping(merge(DEMO, overrides))
    as_list = from_mapping(merge(DEMO, {"access": {"jpki": {"read": {"000A": ["0018"]}}}}))
    assert as_tuple == as_list


def test_digest_is_stable_and_tells_mappings_apart() -> None:
    first, again = from_mapping(merge(DEMO, {})), from_mapping(merge(DEMO, {}))
    assert first.digest == again.digest
    reordered = dict(reversed(list(merge(DEMO, {}).items())))
    reordered["holder"] = dict(reversed(list(DEMO["holder"].items())))
    assert from_mapping(reordered).digest == first.digest
    other = from_mapping(merge(DEMO, {"pins": {"text": "4321"}}))
    assert other.digest != first.digest
    as_text = from_mapping(merge(DEMO, {"card": {"issued": "2025-03-03"}}))  # same date, as text
    assert as_text.card.issued == first.card.issued == dt.date(2025, 3, 3)
    assert as_text.digest != first.digest
    assert first.digest != parse(to_toml(DEMO).encode()).digest  # never a file's digest


def test_digest_covers_the_image_files_a_persona_names(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("1", (40, 10)).save(tmp_path / folder / "name.png", "PNG")
    tables = merge(DEMO, {"images": {"name": "name.png"}})
    in_a = from_mapping(tables, base=tmp_path / "a")
    assert in_a.images["name"] == (tmp_path / "a" / "name.png").resolve()
    assert from_mapping(tables, base=tmp_path / "a").digest == in_a.digest
    assert from_mapping(tables, base=tmp_path / "b").digest != in_a.digest
