"""A next-generation card (profile ``next-generation``) through pcscd + vpcd, read by the host
client: P-384 certificates, ECDSA-SHA-384 signatures verified by ``cryptography`` and by
``openssl dgst -sha384 -verify``, the access-rule audit against the profile's own rules; and a
toy third profile, written in data only, served the same way."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apdu import builders
from card_emulator import Card
from harness.audit.engine import run_audit
from harness.personas import card_from_persona
from harness.plugin import ServedReader
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential, ecdsa_der
from readers.host_side.pcsc import PcscTransport
from tests.conftest import ROOT

pytestmark = pytest.mark.pcsc

NEXT_GENERATION = ROOT / "vectors" / "personas" / "next-generation.toml"
CHECK_CODE = b"55021720362285"  # 照合番号: 550217 (S55-02-17) ‖ 2036 ‖ 2285
DATA = b"next-generation My Number card, signed through PC/SC"


def _openssl_verify(directory: Path, public_key: ec.EllipticCurvePublicKey, der: bytes) -> str:
    pub = directory / "pub.pem"
    pub.write_bytes(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (directory / "sig.der").write_bytes(der)
    (directory / "data").write_bytes(DATA)
    result = subprocess.run(
        ["openssl", "dgst", "-sha384", "-verify", "pub.pem", "-signature", "sig.der", "data"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("encoding", ["raw", "der"])
def test_p384_signature_through_pcsc_verifies(
    myna_serve: Callable[..., ServedReader], tmp_path: Path, encoding: str
) -> None:
    card = (
        card_from_persona(NEXT_GENERATION)
        if encoding == "raw"
        else card_from_persona(NEXT_GENERATION, policy={"ecdsa_signature_encoding": "der"})
    )
    served = myna_serve(card)
    with PcscTransport(served.name) as transport:
        client = MynaClient(transport)
        client.select_jpki()
        auth = client.certificate(0x000A)
        key = auth.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
        assert auth.signature_hash_algorithm is not None
        assert auth.signature_hash_algorithm.name == "sha384"
        client.verify(JpkiCredential.AUTH_PIN, "1234")
        answer = client.jpki.sign_digest(JpkiCredential.AUTH_PIN, hashlib.sha384(DATA).digest())
    if encoding == "raw":
        assert len(answer) == 96  # r ‖ s, 48 bytes each
        der = ecdsa_der(answer)
    else:
        der = answer
    key.verify(der, DATA, ec.ECDSA(hashes.SHA384()))  # raises if wrong
    assert "Verified OK" in _openssl_verify(tmp_path, key, der)


def test_face_ap_opens_with_the_printed_check_code(myna_serve: Callable[..., ServedReader]) -> None:
    served = myna_serve(card_from_persona(NEXT_GENERATION))
    with PcscTransport(served.name) as transport:
        client = MynaClient(transport)
        client.select_application(bytes.fromhex("D3921000310001010408"))
        read = builders.read_binary_sfi(0x02).to_bytes()
        assert transport.transmit(read)[-2:] == b"\x69\x82"
        client.expect_ok(builders.verify(CHECK_CODE, sfi=0x15), "VERIFY 照合番号")
        face = client.read_ef(0x0002)
    assert b"BANGO HANAKO" in face
    assert "番号　花子".encode() in face
    assert b"\xdf\x25" not in face  # no 性別 on the next-generation card face


def test_audit_agrees_with_the_profile_rules(myna_serve: Callable[..., ServedReader]) -> None:
    card = card_from_persona(NEXT_GENERATION)
    rules = card.content.rules
    served = myna_serve(card)
    credentials = {
        ("auth", 0x18): b"1234",
        ("auth", 0x1B): b"ABC123",
        ("face", 0x15): CHECK_CODE,
    }
    with PcscTransport(served.name) as transport:
        report = run_audit(
            transport,
            credentials=credentials,
            reference=lambda _overlays: rules,
            card_rules=rules,
            aids={app.name: app.aid for app in card.content.applications},
            source="next-generation",
        )
    assert report.ok, [d.text() for d in report.differences] + report.problems
    assert {m.name for m in report.applications} == {"auth", "face"}


TOY_PROFILE = """
[profile]
name = "toy"
label = "a third card generation, declared in data only"
atr = "3B 88 80 01 00 00 00 00 00 00 00 00 09"
key_algorithm = "ecdsa-p384"
certificate_birthdays = 3

[profile.policy]
ecdsa_signature_encoding = "der"

[[applications]]
name = "toy"
aid = "F0 54 4F 59 41 50"
label = "toy AP"

[applications.files]
"0001" = { source = "hex", value = "C0FFEE" }
"0002" = { source = "certificate", tree = "auth" }
"0003" = { source = "filler", size = 8, byte = 0 }

[applications.keys."0004"]
label = "toy key"
algorithm = "ecdsa-p384"
use = "sign"
tree = "auth"

[applications.credentials."0005"]
label = "toy PIN"
format = "PIN4"
tries = 7
value = "pins.jpki_auth"

[applications.rules.read]
"0001" = []
"0002" = []
"0003" = ["0005"]

[applications.rules.use]
"0004" = ["0005"]
"""


def test_a_toy_profile_in_data_only_is_served(
    myna_serve: Callable[..., ServedReader], tmp_path: Path
) -> None:
    (tmp_path / "toy.toml").write_text(TOY_PROFILE, "utf-8")
    persona = NEXT_GENERATION.read_text("utf-8")
    persona = persona.replace('profile = "next-generation"', 'profile = "toy.toml"')
    persona = persona.replace('label = "demo-next-generation"', 'label = "toy"')
    (tmp_path / "toy-persona.toml").write_text(persona, "utf-8")
    card = Card.from_persona(tmp_path / "toy-persona.toml")
    assert [app.name for app in card.content.applications] == ["toy"]
    served = myna_serve(card)
    with PcscTransport(served.name) as transport:
        client = MynaClient(transport)
        assert transport.atr == bytes.fromhex("3B888001000000000000000009")
        client.select_application(bytes.fromhex("F0544F594150"))
        assert client.read_ef(0x0001, 3) == bytes.fromhex("C0FFEE")
        certificate = client.read_ef(0x0002)
        sign = builders.compute_signature(hashlib.sha384(DATA).digest(), key_sfi=0x04)
        assert transport.transmit(sign.to_bytes())[-2:] == b"\x69\x82"
        assert client.send(builders.verify(None, sfi=0x05)).retries == 7
        client.expect_ok(builders.verify(b"1234", sfi=0x05), "VERIFY toy PIN")
        assert client.read_ef(0x0003, 8) == bytes(8)
        der = client.expect_ok(sign, "COMPUTE DIGITAL SIGNATURE")
    key = x509.load_der_x509_certificate(certificate).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, DATA, ec.ECDSA(hashes.SHA384()))
