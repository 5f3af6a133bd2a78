"""Host-side reader of the 券面事項入力補助AP: 個人番号, 基本4情報, and their integrity check.

Verification (card-facts §6.3-§6.4): the CV certificate in EF ``0004`` must verify under the
root the PKI publishes; the integrity record's ``DF33`` signature over ``DF31‖DF32`` must verify
under the certified key; ``DF31`` must be SHA-256 of EF ``0001`` as stored (17 bytes with its
filler) and ``DF32`` SHA-256 of EF ``0002`` from ``DF22`` to the end of the ``FF20`` value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import CodecError, tlv
from apdu.vocabulary import Text
from jpki.cv_certificate import CERTIFICATE_LENGTH, CvCertificate
from readers.host_side.protocol import CardProtocol, VerificationError

__all__ = [
    "Attributes",
    "TextApReader",
    "VerificationError",
    "parse_attributes",
    "parse_my_number",
    "read_and_verify",
    "signed_part_of_attributes",
    "verify_text_ap",
]

MY_NUMBER_SIZE = 17  # EF 0001 as stored: FF10 0C + 12 digits + filler
INTEGRITY_SIZE = 336  # EF 0003: FF30 { DF31, DF32, DF33 }


@dataclass(frozen=True, slots=True)
class Attributes:
    """基本4情報 as stored on the card."""

    name: str
    address: str
    birth_date: dt.date
    sex: int


def parse_my_number(raw: bytes) -> str:
    """EF ``0001`` → the 12 digits."""
    value = tlv.decode_one(raw)
    if value.tag != 0xFF10:
        raise CodecError(f"EF 0001 starts with tag {value.tag:X}, expected FF10")
    return value.value.decode("ascii")


def parse_attributes(raw: bytes) -> Attributes:
    """EF ``0002`` → 基本4情報 (any BER length form; the ``DF21`` table is not trusted)."""
    outer = tlv.decode_one(raw)
    if outer.tag != 0xFF20:
        raise CodecError(f"EF 0002 starts with tag {outer.tag:X}, expected FF20")
    birth = outer.child(0xDF24).value.decode("ascii")
    return Attributes(
        name=outer.child(0xDF22).value.decode("utf-8"),
        address=outer.child(0xDF23).value.decode("utf-8"),
        birth_date=dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])),
        sex=int(outer.child(0xDF25).value.decode("ascii")),
    )


def signed_part_of_attributes(raw: bytes) -> bytes:
    """From the first offset in ``DF21`` (the ``DF22`` object) to the end of the FF20 value."""
    outer = tlv.decode_one(raw)
    first = int.from_bytes(outer.child(0xDF21).value[:2], "big")
    return raw[first : outer.end]


def verify_text_ap(
    my_number_ef: bytes,
    attributes_ef: bytes,
    integrity_ef: bytes,
    cv_certificate_ef: bytes,
    root_public_key: rsa.RSAPublicKey,
) -> None:
    """Check the whole chain; raises :class:`VerificationError` naming what failed."""
    certificate = CvCertificate.parse(cv_certificate_ef)
    try:
        certificate.verify(root_public_key)
    except InvalidSignature:
        raise VerificationError("CV certificate (EF 0004) does not verify under the root") from None
    record = tlv.decode_one(integrity_ef)
    df31, df32, df33 = (record.child(t).value for t in (0xDF31, 0xDF32, 0xDF33))
    signed = tlv.encode(0xDF31, df31) + tlv.encode(0xDF32, df32)
    try:
        certificate.public_key.verify(df33, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationError("integrity record signature (DF33) does not verify") from None
    if hashlib.sha256(my_number_ef).digest() != df31:
        raise VerificationError("個人番号 (EF 0001) does not match its digest DF31")
    if hashlib.sha256(signed_part_of_attributes(attributes_ef)).digest() != df32:
        raise VerificationError("基本4情報 (EF 0002) do not match their digest DF32")


def read_and_verify(
    read_ef: Callable[[int], bytes], root_public_key: rsa.RSAPublicKey
) -> tuple[str, Attributes]:
    """個人番号 and 基本4情報, read with ``read_ef(fid)`` and checked up to the CV root."""
    number_ef, attributes_ef = read_ef(Text.EF_MY_NUMBER), read_ef(Text.EF_ATTRIBUTES)
    integrity_ef, certificate_ef = read_ef(Text.EF_INTEGRITY), read_ef(Text.EF_CV_CERTIFICATE)
    verify_text_ap(number_ef, attributes_ef, integrity_ef, certificate_ef, root_public_key)
    return parse_my_number(number_ef), parse_attributes(attributes_ef)


class TextApReader:
    """Reads the text AP through a :class:`CardProtocol` (any transport), in the clear."""

    def __init__(self, client: CardProtocol) -> None:
        self.client = client

    def _open(self, credential_fid: int, secret: str) -> None:
        self.client.unlock(Text.AID, credential_fid, secret)

    def unlock_with_pin(self, pin: str) -> None:
        """VERIFY the 4-digit PIN (``0011``): opens everything."""
        self._open(Text.PIN, pin)

    def unlock_with_check_code_a(self, my_number: str) -> None:
        """VERIFY 照合番号A (``0014``): opens 個人番号, not 基本4情報."""
        self._open(Text.CHECK_CODE_A, my_number)

    def unlock_with_check_code_b(self, code: str) -> None:
        """VERIFY 照合番号B (``0015``): opens 基本4情報, not 個人番号."""
        self._open(Text.CHECK_CODE_B, code)

    def raw(self, fid: int, size: int | None = None) -> bytes:
        """A whole EF of the (already selected and unlocked) AP."""
        return self.client.read_ef(fid, size)

    def my_number(self) -> str:
        """個人番号 (needs the PIN or 照合番号A)."""
        return parse_my_number(self.raw(Text.EF_MY_NUMBER, MY_NUMBER_SIZE))

    def attributes(self) -> Attributes:
        """基本4情報 (needs the PIN or 照合番号B)."""
        return parse_attributes(self.raw(Text.EF_ATTRIBUTES))

    def verify(self, root_public_key: rsa.RSAPublicKey) -> tuple[str, Attributes]:
        """Read 個人番号 and 基本4情報 and check them (needs the PIN)."""
        sizes = {
            Text.EF_MY_NUMBER: MY_NUMBER_SIZE,
            Text.EF_INTEGRITY: INTEGRITY_SIZE,
            Text.EF_CV_CERTIFICATE: CERTIFICATE_LENGTH,
        }
        return read_and_verify(lambda fid: self.raw(fid, sizes.get(fid)), root_public_key)
