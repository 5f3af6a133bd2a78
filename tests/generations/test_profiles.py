"""Card profiles as data, in process: persona ``profile``, the next-generation chip's ECDSA
answers, a durable image of an EC card, and the audit CLI against a profile's own rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from card_emulator import Card, PersonaError
from card_emulator import persona as persona_module
from card_emulator.profiles import ProfileError, load_profile
from harness.audit import cli as audit_cli
from readers.host_side.jpki import ecdsa_der
from tests.conftest import DEMO_PERSONA, ROOT

NEXT_GENERATION = ROOT / "vectors" / "personas" / "next-generation.toml"
SELECT_AUTH_AP = bytes.fromhex("00A4040C0AD392F000260100000001")
VERIFY_0018 = bytes.fromhex("002000980431323334")
DIGEST = hashlib.sha384(b"profiles").digest()


def _certificate(card: Card) -> x509.Certificate:
    data = b""
    card.transmit(bytes.fromhex("00A4020C02000A"))
    while True:
        answer = card.transmit(bytes.fromhex(f"00B0{len(data):04X}00"))
        data += answer[:-2]
        if len(answer) < 258:
            break
    return x509.load_der_x509_certificate(data)


def _sign(card: Card, p1: int, data: bytes) -> bytes:
    return card.transmit(bytes([0x80, 0x2A, p1, 0x97, len(data)]) + data + b"\x00")


def test_profiles_load_and_the_default_is_current() -> None:
    current = load_profile("current")
    assert current.rules_file == "access_rules.toml"
    assert list(current.aids()) == ["jpki", "text", "kenmen", "common", "juki"]
    next_generation = load_profile("next-generation")
    assert next_generation.rules_file is None
    assert [app["name"] for app in next_generation.applications] == ["auth", "face"]
    assert persona_module.load(DEMO_PERSONA).profile == "current"
    assert persona_module.load(NEXT_GENERATION).profile == "next-generation"
    with pytest.raises(ProfileError, match="neither a built-in profile"):
        load_profile("future")


def test_persona_errors_name_the_field(tmp_path: Path) -> None:
    text = NEXT_GENERATION.read_text("utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('profile = "next-generation"', 'profile = "future"'), "utf-8")
    with pytest.raises(PersonaError, match="profile: 'future' is neither"):
        persona_module.load(bad)
    unnamed = tmp_path / "unnamed.toml"
    unnamed.write_text(text.replace('romanized_name = "BANGO HANAKO"', ""), "utf-8")
    with pytest.raises(PersonaError, match=r"holder\.romanized_name"):
        Card.from_persona(unnamed)


def test_ecdsa_schemes_and_lengths() -> None:
    card = Card.from_persona(NEXT_GENERATION)
    assert card.transmit(SELECT_AUTH_AP) == b"\x90\x00"
    key = _certificate(card).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert _sign(card, 0x00, DIGEST)[-2:] == b"\x69\x82"  # PIN not verified
    assert card.transmit(VERIFY_0018) == b"\x90\x00"
    given = _sign(card, 0x00, DIGEST)
    assert given[-2:] == b"\x90\x00" and len(given) == 98
    key.verify(ecdsa_der(given[:-2]), b"profiles", ec.ECDSA(hashes.SHA384()))
    hashed = _sign(card, 0x01, b"profiles")
    key.verify(ecdsa_der(hashed[:-2]), b"profiles", ec.ECDSA(hashes.SHA384()))
    assert _sign(card, 0x00, DIGEST[:40])[-2:] == b"\x67\x00"
    assert _sign(card, 0x02, DIGEST)[-2:] == b"\x6a\x86"


def test_a_durable_image_keeps_the_ec_keys(tmp_path: Path) -> None:
    image = tmp_path / "ng.sqlite"
    with Card.from_persona(NEXT_GENERATION, image=image) as card:
        assert card.transmit(SELECT_AUTH_AP) == b"\x90\x00"
        key = _certificate(card).public_key()
    with Card.from_persona(NEXT_GENERATION, image=image) as reopened:
        assert reopened.transmit(SELECT_AUTH_AP) == b"\x90\x00"
        assert reopened.transmit(VERIFY_0018) == b"\x90\x00"
        answer = _sign(reopened, 0x00, DIGEST)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(ecdsa_der(answer[:-2]), b"profiles", ec.ECDSA(hashes.SHA384()))


def test_audit_cli_compares_with_the_profile_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert audit_cli.main(["audit", "--persona", str(NEXT_GENERATION)]) == 0
    out = capsys.readouterr().out
    assert "[auth] AID D392F000260100000001" in out
    assert "[face] AID D3921000310001010408" in out
    assert "the card matches the declared rules" in out
