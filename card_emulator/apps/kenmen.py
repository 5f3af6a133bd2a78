"""券面事項確認AP (券面AP), ``D3 92 10 00 31 00 01 01 04 02`` — card-facts §7.

Byte layouts are those of §7.1-§7.2. Our choices where the sources stop: the birth-date key
allows 10 tries (unknown; same as 照合番号B whose first six digits it is); EF ``0003``'s version
byte is ``01``; EF ``0005``'s signature covers the ``DF41`` and ``DF42`` TLVs, like EF ``0001``'s.
As observed on a test card (myna-card): EF ``0003`` DF32 names the ``x000024`` key, not the subject
of EF ``0004``, and ``DF35`` is a key-shaped reference (``x900025``) and 256 opaque bytes (ours are
derived from the serial). IEFs ``0014`` and ``0015`` exist (a real-card probe selects them); what
they guard is unknown.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography.hazmat.primitives.asymmetric import rsa

from apdu import tlv
from apdu.vocabulary import FACE_DIGEST_INFO_HEADER
from card_emulator.apps.offset_table import with_offset_table
from card_emulator.rsa_raw import sign_pkcs1_v15_raw
from jpki.card_data_signer import CardDataSigner
from jpki.cv_certificate import (
    EMULATOR_VISUAL_AP_KEY_ID,
    EMULATOR_VISUAL_AP_REFERENCE_KEY_ID,
    KeyId,
    encode_rsa_public_key,
)

AP_INFO_VERSION = bytes.fromhex("06030E01")
FACE_TAGS = (0xDF22, 0xDF23, 0xDF24, 0xDF25, 0xDF26, 0xDF27, 0xDF28, 0xDF29, 0xDF2A)


def _date(day: dt.date) -> bytes:
    return day.strftime("%Y%m%d").encode("ascii")


def age_file(birth_date: dt.date, card_key: rsa.RSAPublicKey, signer: CardDataSigner) -> bytes:
    """EF ``0001``: ``FF10 { DF11 生年月日, DF12 card key, DF13 signature over DF11‖DF12 }``."""
    signed = tlv.encode(0xDF11, _date(birth_date)) + tlv.encode(
        0xDF12, encode_rsa_public_key(card_key)
    )
    return tlv.encode(0xFF10, signed + tlv.encode(0xDF13, signer.sign(signed)))


def face_digest_info(fields: dict[int, bytes]) -> bytes:
    """The signed DigestInfo: SHA-256 of G1 = DF22‖DF23‖DF24, G2 = DF25‖DF26, G3 = DF27 TLVs."""
    groups = ((0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,))
    digests = b"".join(
        hashlib.sha256(b"".join(tlv.encode(tag, fields[tag]) for tag in group)).digest()
        for group in groups
    )
    return FACE_DIGEST_INFO_HEADER + digests


def face_file(
    *,
    birth_date: dt.date,
    sex: int,
    card_key: rsa.RSAPublicKey,
    name_png: bytes,
    address_png: bytes,
    photo_jp2: bytes,
    expiry: dt.date,
    security_code_png: bytes,
    signer: CardDataSigner,
) -> bytes:
    """EF ``0002``: the card face, with the ``DF21`` table of file-relative offsets."""
    fields = {
        0xDF22: _date(birth_date),
        0xDF23: str(sex).encode("ascii"),
        0xDF24: encode_rsa_public_key(card_key),
        0xDF25: name_png,
        0xDF26: address_png,
        0xDF27: photo_jp2,
    }
    fields[0xDF28] = sign_pkcs1_v15_raw(signer.private_key, face_digest_info(fields))
    fields[0xDF29] = _date(expiry)  # after the signature: not covered by it
    fields[0xDF2A] = security_code_png
    return with_offset_table(0xFF20, [tlv.encode(tag, fields[tag]) for tag in FACE_TAGS])


def ap_info_file(
    municipality_code: str,
    serial: str,
    key_id: KeyId = EMULATOR_VISUAL_AP_KEY_ID,
    reference_id: KeyId = EMULATOR_VISUAL_AP_REFERENCE_KEY_ID,
) -> bytes:
    """EF ``0003``: ``FF30 { DF31 version, DF32 key id, DF33 version, DF34 city, DF35 … }``."""
    opaque = b"".join(
        hashlib.sha256(f"mynacard DF35 {i} {serial}".encode()).digest() for i in range(8)
    )
    return tlv.encode(
        0xFF30,
        tlv.encode(0xDF31, AP_INFO_VERSION)
        + tlv.encode(0xDF32, bytes(key_id))
        + tlv.encode(0xDF33, b"\x01")
        + tlv.encode(0xDF34, municipality_code.encode("ascii"))
        + tlv.encode(0xDF35, bytes(reference_id) + opaque),
    )


def my_number_image_file(
    number_png: bytes, card_key: rsa.RSAPublicKey, signer: CardDataSigner
) -> bytes:
    """EF ``0005``: ``FF40 { DF41 PNG, DF42 card key, DF43 signature over DF41‖DF42 }``."""
    signed = tlv.encode(0xDF41, number_png) + tlv.encode(0xDF42, encode_rsa_public_key(card_key))
    return tlv.encode(0xFF40, signed + tlv.encode(0xDF43, signer.sign(signed)))
