"""Host-side sessions with the 共通AP and the 住基AP (card-facts §8).

共通AP: record EF ``0001`` holds one simple-TLV record ``01 1C`` + serial[15] ‖ municipality
code[5] ‖ expiry ``YYYYMMDD``, and record EF ``0002`` one 16-byte key reference; both are
readable with no credential. Key ``0019`` answers INTERNAL AUTHENTICATE with no credential:
PKCS#1 v1.5 over DigestInfo(SHA-256(challenge)); its public half is not on the card, so the
signature can be checked only against a key known from elsewhere.

住基AP: the same key reference in EF ``0002``; EF ``0001`` (the 住民票コード) opens after
VERIFY of PIN ``001C``. Its layout is not published: the emulator's default is one record
``01 0B`` + 11 digits, a persona may make it a transparent EF of the 11 digits; both are read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import CodecError, builders, simple_tlv
from apdu.vocabulary import Common, Juki
from readers.host_side.jpki import digest_info
from readers.host_side.protocol import CardError, CardProtocol, VerificationError

__all__ = [
    "CardRecord",
    "CommonSession",
    "JukiSession",
    "parse_card_record",
    "parse_key_reference",
    "verify_internal_authentication",
]

CARD_RECORD_TAG = 0x01
CARD_RECORD_LENGTH = 28  # serial[15] ‖ municipality code[5] ‖ YYYYMMDD
KEY_REFERENCE_LENGTH = 16
RESIDENT_CODE_LENGTH = 11
_INCOMPATIBLE_FILE = 0x6981  # READ RECORD on a transparent EF


@dataclass(frozen=True, slots=True)
class CardRecord:
    """The common AP's card record (EF ``0001``, record 1)."""

    serial: str  # 製造番号
    municipality_code: str  # 全国地方公共団体コード of the issuing municipality
    expiry: dt.date


def parse_card_record(raw: bytes) -> CardRecord:
    """Record 1 of EF ``0001`` → :class:`CardRecord` (exactly one ``01 1C`` object)."""
    record, end = simple_tlv.decode_one(raw)
    if record.tag != CARD_RECORD_TAG or end != len(raw):
        raise CodecError(f"card record is not one simple-TLV object 01: {raw.hex().upper()}")
    if len(record.value) != CARD_RECORD_LENGTH:
        raise CodecError(f"card record holds {len(record.value)} bytes, not {CARD_RECORD_LENGTH}")
    text = record.value.decode("ascii")
    if not text.isdigit():
        raise CodecError(f"card record is not all digits: {text!r}")
    expiry = dt.date(int(text[20:24]), int(text[24:26]), int(text[26:28]))
    return CardRecord(serial=text[:15], municipality_code=text[15:20], expiry=expiry)


def parse_key_reference(raw: bytes) -> bytes:
    """Record 1 of EF ``0002``: the 16-byte key reference, as stored."""
    if len(raw) != KEY_REFERENCE_LENGTH:
        raise CodecError(f"key reference has {len(raw)} bytes, not {KEY_REFERENCE_LENGTH}")
    return raw


def verify_internal_authentication(
    signature: bytes, challenge: bytes, public_key: rsa.RSAPublicKey
) -> None:
    """Check that ``signature`` is PKCS#1 v1.5 over DigestInfo(SHA-256(challenge)) under
    ``public_key``; raises :class:`VerificationError`."""
    try:
        recovered = public_key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except InvalidSignature:
        raise VerificationError(
            "INTERNAL AUTHENTICATE answer is not a PKCS#1 v1.5 signature under the key"
        ) from None
    if recovered != digest_info(challenge, "sha256"):
        raise VerificationError(
            "INTERNAL AUTHENTICATE answer does not sign DigestInfo(SHA-256(challenge))"
        )


class CommonSession:
    """The 共通AP of the card behind ``protocol``; every method SELECTs it first."""

    def __init__(self, protocol: CardProtocol) -> None:
        self.protocol = protocol

    def select(self) -> None:
        """SELECT the common AP."""
        self.protocol.select_application(Common.AID)

    def card_record(self) -> CardRecord:
        """製造番号, municipality code and expiry (no credential needed)."""
        self.select()
        return parse_card_record(self.protocol.read_record(Common.EF_CARD_RECORD))

    def key_reference(self) -> bytes:
        """The 16-byte key reference in EF ``0002`` (no credential needed)."""
        self.select()
        return parse_key_reference(self.protocol.read_record(Common.EF_KEY_REFERENCE))

    def internal_authenticate(
        self, challenge: bytes, public_key: rsa.RSAPublicKey | None = None
    ) -> bytes:
        """The card's signature of ``challenge`` (1-255 bytes) with key ``0019``; checked with
        :func:`verify_internal_authentication` when ``public_key`` is given."""
        self.select()
        command = builders.internal_authenticate(challenge, Common.KEY_INTERNAL_AUTH)
        signature = self.protocol.expect_ok(
            command, f"INTERNAL AUTHENTICATE with {Common.KEY_INTERNAL_AUTH:04X}"
        )
        if public_key is not None:
            verify_internal_authentication(signature, challenge, public_key)
        return signature


class JukiSession:
    """The 住基AP of the card behind ``protocol``."""

    def __init__(self, protocol: CardProtocol) -> None:
        self.protocol = protocol

    def select(self) -> None:
        """SELECT the 住基AP (this forgets a verified PIN)."""
        self.protocol.select_application(Juki.AID)

    def key_reference(self) -> bytes:
        """The 16-byte key reference in EF ``0002`` (the common AP's; no credential needed)."""
        self.select()
        return parse_key_reference(self.protocol.read_record(Juki.EF_KEY_REFERENCE))

    def unlock(self, pin: str) -> None:
        """SELECT the AP and VERIFY the 住民基本台帳用暗証番号 (``001C``)."""
        self.protocol.unlock(Juki.AID, Juki.PIN, pin)

    def resident_code(self) -> str:
        """The 住民票コード from EF ``0001`` (after :meth:`unlock`), record or transparent."""
        try:
            stored = self.protocol.read_record(Juki.EF_RESIDENT_CODE)
        except CardError as exc:
            if exc.sw != _INCOMPATIBLE_FILE:
                raise
            raw = self.protocol.read_ef(Juki.EF_RESIDENT_CODE, RESIDENT_CODE_LENGTH)
        else:
            record, end = simple_tlv.decode_one(stored)
            if end != len(stored):
                raise CodecError("住民票コード record has trailing bytes")
            raw = record.value
        code = raw.decode("ascii")
        if len(code) != RESIDENT_CODE_LENGTH or not code.isdigit():
            raise CodecError(f"住民票コード is not {RESIDENT_CODE_LENGTH} digits: {code!r}")
        return code
