"""Persona validation: bad personas are refused with a message naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from card_emulator import Card, PersonaError
from card_emulator.persona import load, parse
from tests.conftest import DEMO_PERSONA

DEMO = DEMO_PERSONA.read_text(encoding="utf-8")


def variant(pattern: str, replacement: str) -> bytes:
    text, count = re.subn(pattern, replacement, DEMO, count=1, flags=re.MULTILINE)
    assert count == 1, pattern
    return text.encode()


def test_demo_persona_values() -> None:
    persona = load(DEMO_PERSONA)
    assert persona.holder.name == "番号\u3000花子"
    assert persona.holder.my_number == "314159265352"
    assert persona.holder.birth_date.isoformat() == "1980-02-17"
    assert persona.card.expiry.isoformat() == "2035-02-17"
    assert persona.card.security_code == "2285"
    assert persona.card.atr.hex().upper() == "3BE000FF8131FE4514"
    assert (persona.pins.jpki_auth, persona.pins.jpki_sign) == ("1234", "ABC123")
    assert "1234" not in repr(persona.pins)


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (
            r'^my_number = "314159265352"',
            'my_number = "314159265353"',
            "holder.my_number: check digit should be 2, not 3",
        ),
        (r'^my_number = "314159265352"', 'my_number = "31415926535"', "holder.my_number"),
        (r'^jpki_auth = "1234"', 'jpki_auth = "12345"', "pins.jpki_auth"),
        (r'^text = "1234"', 'text = "12a4"', "pins.text"),
        (r'^jpki_sign = "ABC123"', 'jpki_sign = "abc123"', "pins.jpki_sign"),
        (r'^jpki_sign = "ABC123"', 'jpki_sign = "ABCDEF"', "pins.jpki_sign"),
        (r'^jpki_sign = "ABC123"', 'jpki_sign = "A1"', "pins.jpki_sign"),
        (r"^birth_date = 1980-02-17", "birth_date = 1980-02-30", "holder.birth_date"),
        (r"^birth_date = 1980-02-17", 'birth_date = "1980-02-30"', "holder.birth_date"),
        (r"^birth_date = 1980-02-17", "birth_date = 1850-01-01", "holder.birth_date"),
        (r"^expiry = 2035-02-17", "expiry = 2020-01-01", "card.expiry"),
        (r"^sex = 2", "sex = 5", "holder.sex"),
        (r'^security_code = "2285"', 'security_code = "228"', "card.security_code"),
        (r'^token = "JPKIAPICCTOKEN2"', 'token = "OTHER"', "card.token"),
        (r'^atr = "classic"', 'atr = "zz"', "card.atr"),
        (r'^resident_code = "12345678901"', 'resident_code = "1234"', "holder.resident_code"),
        (r"^sex = 2", "sex = 2\nsexx = 2", "unknown field(s): holder.sexx"),
        (r'^style = "test"', 'style = "prod"', "certificates.style"),
    ],
)
def test_bad_persona_is_refused_naming_the_field(
    pattern: str, replacement: str, message: str
) -> None:
    with pytest.raises(PersonaError) as info:
        parse(variant(pattern, replacement), "bad.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.toml: ")


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(PersonaError) as info:
        parse(variant(r'^jpki_sign = "ABC123"', 'jpki_sign = "secretlower1"'), "bad.toml")
    assert "secretlower1" not in str(info.value)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="cannot read persona"):
        Card.from_persona(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[holder\nname=", encoding="utf-8")
    with pytest.raises(PersonaError, match="not valid TOML"):
        load(broken)


def test_counters_and_policy_overrides() -> None:
    raw = DEMO.encode() + b'\n[counters]\njpki_auth = 1\n\n[policy]\nunknown_aid_sw = "6A86"\n'
    persona = parse(raw)
    assert persona.counters == {"jpki_auth": 1}
    assert persona.policy.unknown_aid_sw == 0x6A86
    with pytest.raises(PersonaError, match=r"counters\.jpki_auth"):
        parse(DEMO.encode() + b"\n[counters]\njpki_auth = 4\n")
    with pytest.raises(PersonaError, match=r"policy\.nope"):
        parse(DEMO.encode() + b"\n[policy]\nnope = true\n")
