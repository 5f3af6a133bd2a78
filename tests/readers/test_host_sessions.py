"""The host-side protocol layer and application sessions against the in-process demo card:
the 共通AP and 住基AP session (values checked against the persona file), and MynaClient's
accessors and JPKI shortcuts."""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import CodecError
from apdu.vocabulary import DIGEST_INFO_PREFIXES, Common
from card_emulator import Card
from card_emulator.apps.common import KEY_REFERENCE
from readers.host_side.client import MynaClient
from readers.host_side.common import (
    CardRecord,
    CommonSession,
    JukiSession,
    parse_card_record,
    verify_internal_authentication,
)
from readers.host_side.jpki import JpkiCredential, JpkiSession
from readers.host_side.protocol import CardError, CardProtocol, VerificationError, WrongPinError
from readers.host_side.text_ap import TextApReader
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA

PERSONA = tomllib.loads(DEMO_PERSONA.read_text("utf-8"))
CHALLENGE = bytes(range(32))


@pytest.fixture
def protocol(card: Card) -> CardProtocol:
    return CardProtocol(InProcessTransport(card))


def internal_auth_key(card: Card) -> rsa.RSAPublicKey:
    return card.content.application("common").keys[Common.KEY_INTERNAL_AUTH].public_key


# --- 共通AP -------------------------------------------------------------------------------------


def test_card_record_matches_the_persona(protocol: CardProtocol) -> None:
    record = CommonSession(protocol).card_record()
    assert record == CardRecord(
        serial=PERSONA["card"]["serial"],
        municipality_code=PERSONA["card"]["municipality"]["code"],
        expiry=PERSONA["card"]["expiry"],
    )
    assert record.expiry == dt.date(2035, 2, 17)


def test_key_reference_is_the_same_16_bytes_in_both_aps(protocol: CardProtocol) -> None:
    common = CommonSession(protocol).key_reference()
    assert common == bytes(KEY_REFERENCE) and len(common) == 16
    assert JukiSession(protocol).key_reference() == common


def test_internal_authenticate_signs_digest_info_of_sha256(card: Card) -> None:
    session = CommonSession(CardProtocol(InProcessTransport(card)))
    key = internal_auth_key(card)
    signature = session.internal_authenticate(CHALLENGE, key)
    assert session.internal_authenticate(CHALLENGE) == signature  # deterministic, unchecked
    key.verify(signature, CHALLENGE, padding.PKCS1v15(), hashes.SHA256())
    recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    assert recovered == DIGEST_INFO_PREFIXES["sha256"] + hashlib.sha256(CHALLENGE).digest()


def test_internal_authenticate_rejects_a_wrong_key_or_challenge(card: Card) -> None:
    session = CommonSession(CardProtocol(InProcessTransport(card)))
    signature = session.internal_authenticate(CHALLENGE)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(VerificationError, match="not a PKCS#1"):
        session.internal_authenticate(CHALLENGE, other)
    with pytest.raises(VerificationError, match="does not sign"):
        verify_internal_authentication(signature, b"another challenge", internal_auth_key(card))


def test_internal_authenticate_needs_a_challenge(protocol: CardProtocol) -> None:
    with pytest.raises(CardError) as empty:
        CommonSession(protocol).internal_authenticate(b"")
    assert empty.value.sw == 0x6700


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x02\x1c" + b"0" * 28, "not one simple-TLV object 01"),
        (b"\x01\x1c" + b"0" * 28 + b"\x00", "not one simple-TLV object 01"),
        (b"\x01\x05" + b"00000", "holds 5 bytes"),
        (b"\x01\x1c" + b"A" * 28, "not all digits"),
    ],
)
def test_malformed_card_records(raw: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_card_record(raw)


# --- 住基AP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["record", "binary"])
def test_resident_code_after_the_pin(tmp_path: Path, layout: str) -> None:
    persona = tmp_path / "p.toml"
    persona.write_text(
        DEMO_PERSONA.read_text("utf-8").replace(
            'atr = "classic"', f'atr = "classic"\njuki_layout = "{layout}"'
        ),
        "utf-8",
    )
    juki = JukiSession(CardProtocol(InProcessTransport(Card.from_persona(persona))))
    juki.select()
    with pytest.raises(CardError) as locked:
        juki.resident_code()
    assert locked.value.sw == 0x6982
    with pytest.raises(WrongPinError) as wrong:
        juki.unlock("0000")
    assert wrong.value.tries_left == 2
    juki.unlock(PERSONA["pins"]["juki"])
    assert juki.resident_code() == PERSONA["holder"]["resident_code"]


# --- MynaClient: one protocol, a session per application ---------------------------------------


def test_client_is_a_protocol_with_sessions(card: Card) -> None:
    client = MynaClient(InProcessTransport(card))
    assert isinstance(client, CardProtocol)
    assert isinstance(client.jpki, JpkiSession) and client.jpki is client.jpki
    assert isinstance(client.common, CommonSession) and isinstance(client.juki, JukiSession)
    assert client.common.card_record().serial == PERSONA["card"]["serial"]
    assert client.jpki.token_info().label == PERSONA["card"]["token"]
    assert client.token_info() == client.jpki.token_info()
    client.text.unlock_with_pin(PERSONA["pins"]["text"])
    assert client.text.my_number() == PERSONA["holder"]["my_number"]
    client.kenmen.unlock_with_check_code_a(PERSONA["holder"]["my_number"])
    assert client.kenmen.face().sex == PERSONA["holder"]["sex"]


def test_jpki_shortcuts_delegate_to_the_session(card: Card) -> None:
    client = MynaClient(InProcessTransport(card))
    client.select_jpki()
    assert client.retries(JpkiCredential.AUTH_PIN) == client.jpki.retries(JpkiCredential.AUTH_PIN)
    client.verify(JpkiCredential.AUTH_PIN, PERSONA["pins"]["jpki_auth"])
    certificate = client.certificate(JpkiCredential.AUTH_PIN.certificate)
    signature = client.sign(JpkiCredential.AUTH_PIN, b"challenge")
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())


def test_application_readers_take_any_card_protocol(protocol: CardProtocol) -> None:
    reader = TextApReader(protocol)
    reader.unlock_with_pin(PERSONA["pins"]["text"])
    assert reader.attributes().birth_date == PERSONA["holder"]["birth_date"]
