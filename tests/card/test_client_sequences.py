"""Published clients' APDU sequences replayed byte for byte, with the outcome the evidence supports.

* pyjpki (github meowkawaiijp/pyjpki, ``pyjpki/card.py``): every operation starts with a SELECT
  of the AP, so its VERIFY and the signature after it are separated by a re-SELECT of the
  JPKI-AP.
* OpenSC >= 0.24 logs out (``jpki_logout``) by re-sending the JPKI-AP SELECT.

Both hinge on one question: does re-selecting the current AP clear its security state? The
evidence (``docs/fidelity.md``, "re-selecting the current application") says it does, so by
default pyjpki's signatures are refused with ``6982`` and OpenSC's logout works; a persona with
``[policy] reselect_clears_state = false`` gives the other behaviour, and pyjpki then works.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from card_emulator import Card
from tests.conftest import DEMO_PERSONA

JPKI = bytes.fromhex("D392F000260100000001")
MESSAGE = "これはテストメッセージです。".encode()
SHA256_DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420")


class ApduError(Exception):
    """pyjpki's APDUError: any status word but 9000 and 63xx."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


class PyjpkiReplay:
    """pyjpki's CardManager, reduced to the bytes it sends and the checks it makes."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def _transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        response = self.card.transmit(apdu)
        data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        if sw != 0x9000 and sw >> 8 != 0x63:
            raise ApduError(sw)
        return data, sw

    def _select(self, ef: int) -> None:
        self._transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(JPKI)]) + JPKI)
        self._transmit(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + ef.to_bytes(2, "big"))

    def verify_pin(self, pin: str, ef: int) -> None:
        self._select(ef)
        _, sw = self._transmit(bytes([0x00, 0x20, 0x00, 0x80, len(pin)]) + pin.encode())
        assert sw == 0x9000

    def read_certificate(self, ef: int) -> x509.Certificate:
        self._select(ef)
        data = b""
        while True:  # 255-byte chunks until a short one or 6B00
            try:
                chunk, _ = self._transmit(
                    bytes([0x00, 0xB0, len(data) >> 8, len(data) & 0xFF, 0xFF])
                )
            except ApduError as exc:
                if exc.sw == 0x6B00:
                    break
                raise
            if not chunk:
                break
            data += chunk
            if len(chunk) < 0xFF:
                break
        return x509.load_der_x509_certificate(data)

    def sign_data(self, data: bytes, key_ef: int) -> bytes:
        self._select(key_ef)
        digest_info = SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
        apdu = bytes([0x80, 0x2A, 0x00, 0x80, len(digest_info)]) + digest_info + b"\x00"
        signature, _ = self._transmit(apdu)
        return signature


def run(replay: PyjpkiReplay) -> dict[str, int | bytes | x509.Certificate]:
    """pyjpki's documented flow: certificates, VERIFY, a signature with each key."""
    outcome: dict[str, int | bytes | x509.Certificate] = {}
    steps: list[tuple[str, Callable[[], bytes | x509.Certificate | None]]] = [
        ("auth certificate", lambda: replay.read_certificate(0x000A)),
        ("verify auth PIN", lambda: replay.verify_pin("1234", 0x0018)),
        ("sign with auth key", lambda: replay.sign_data(MESSAGE, 0x0017)),
        ("verify sign password", lambda: replay.verify_pin("ABC123", 0x001B)),
        ("sign certificate", lambda: replay.read_certificate(0x0001)),
        ("sign with sign key", lambda: replay.sign_data(MESSAGE, 0x001A)),
    ]
    for name, step in steps:
        try:
            result = step()
        except ApduError as exc:
            outcome[name] = exc.sw
        else:
            outcome[name] = 0x9000 if result is None else result
    return outcome


def test_pyjpki_sequence_is_sent_byte_for_byte(card: Card) -> None:
    replay = PyjpkiReplay(card)
    run(replay)
    select_ap = bytes.fromhex("00A4040C0AD392F000260100000001")
    assert replay.sent[:3] == [
        select_ap,
        bytes.fromhex("00A4020C02000A"),
        bytes.fromhex("00B00000FF"),
    ]
    sign = [apdu for apdu in replay.sent if apdu[:2] == b"\x80\x2a"]
    assert [apdu[:5].hex().upper() for apdu in sign] == ["802A008033", "802A008033"]
    assert all(len(apdu) == 5 + 51 + 1 for apdu in sign)
    verify = [apdu for apdu in replay.sent if apdu[1] == 0x20]
    assert verify == [
        bytes.fromhex("0020008004") + b"1234",
        bytes.fromhex("0020008006") + b"ABC123",
    ]
    # every operation starts with a SELECT of the JPKI-AP
    assert replay.sent.count(select_ap) == 6


def test_pyjpki_with_the_evidence_based_default(card: Card) -> None:
    outcome = run(PyjpkiReplay(card))
    assert isinstance(outcome["auth certificate"], x509.Certificate)
    assert outcome["verify auth PIN"] == 0x9000
    assert outcome["verify sign password"] == 0x9000
    # the re-SELECT before each use cleared the verified state
    assert outcome["sign with auth key"] == 0x6982
    assert outcome["sign certificate"] == 0x6982
    assert outcome["sign with sign key"] == 0x6982


def test_pyjpki_works_when_a_persona_keeps_state_on_reselect(tmp_path: Path) -> None:
    persona = tmp_path / "keeps-state.toml"
    text = DEMO_PERSONA.read_text(encoding="utf-8")
    persona.write_text(text + "\n[policy]\nreselect_clears_state = false\n", encoding="utf-8")
    outcome = run(PyjpkiReplay(Card.from_persona(persona, strict=True)))
    auth = outcome["auth certificate"]
    sign = outcome["sign certificate"]
    assert isinstance(auth, x509.Certificate) and isinstance(sign, x509.Certificate)
    for certificate, name in ((auth, "sign with auth key"), (sign, "sign with sign key")):
        signature = outcome[name]
        assert isinstance(signature, bytes) and len(signature) == 256
        key = certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("keeps_state", [False, True])
def test_opensc_logout_reselects_the_ap(tmp_path: Path, keeps_state: bool) -> None:
    persona = tmp_path / "p.toml"
    policy = "\n[policy]\nreselect_clears_state = false\n" if keeps_state else ""
    persona.write_text(DEMO_PERSONA.read_text(encoding="utf-8") + policy, encoding="utf-8")
    card = Card.from_persona(persona, strict=True)

    def sw(hex_apdu: str) -> int:
        return int.from_bytes(card.transmit(bytes.fromhex(hex_apdu))[-2:], "big")

    sign = "802A0097" + "33" + (SHA256_DIGEST_INFO + bytes(32)).hex() + "00"
    assert sw("00A4040C0AD392F000260100000001") == 0x9000
    assert sw("00A4020C020018") == 0x9000
    assert sw("002000800431323334") == 0x9000
    assert sw(sign) == 0x9000
    assert sw("00A4040C0AD392F000260100000001") == 0x9000  # C_Logout in OpenSC >= 0.24
    assert sw(sign) == (0x9000 if keeps_state else 0x6982)
    assert sw("00A4020C020018") == 0x9000
    assert sw("00200080") == 0x63C3  # the counter is untouched either way
