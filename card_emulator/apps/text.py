"""券面事項入力補助AP (text AP), ``D3 92 10 00 31 00 01 01 04 08`` — card-facts §6.

Byte layouts are those of §6.1-§6.5. Where the sources stop, our choices (documented here):
EF ``0002`` has no filler after the ``FF20`` object (its physical size is unknown); EF ``0005``
is padded with ``FF`` to 256 bytes; EF ``0007``'s signature (``DF52``) covers the ``DF51`` TLV and
is made by the same issuer key as the integrity record; the 照合番号 tries default to 10.
The key-delivery key (SET SESSION KEY, secure messaging) is generated at personalization like the
AP's other key; EF ``0006`` publishes its public half and the private half never leaves the image.
EF ``0005`` DF42 names the ``x000034`` key, not the subject of EF ``0004`` (myna-card).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography.hazmat.primitives.asymmetric import rsa

from apdu import tlv
from card_emulator.apps.offset_table import read_offsets, with_offset_table
from jpki.card_data_signer import CardDataSigner
from jpki.cv_certificate import KeyId, encode_rsa_public_key

AP_INFO_SIZE = 256
AP_INFO_VERSION = bytes.fromhex("01030E01")
ATTRIBUTE_TAGS = (0xDF22, 0xDF23, 0xDF24, 0xDF25)


def my_number_file(my_number: str) -> bytes:
    """EF ``0001``: ``FF 10 0C`` + 12 ASCII digits + filler ``FF FF`` (17 bytes)."""
    return tlv.encode(0xFF10, my_number.encode("ascii")) + b"\xff\xff"


def attributes_file(name: str, address: str, birth_date: dt.date, sex: int) -> bytes:
    """EF ``0002``: ``FF20 { DF21 offsets, DF22 氏名, DF23 住所, DF24 生年月日, DF25 性別 }``.

    The ``DF21`` offsets are measured from the first byte of the file, so they move by one when
    the body needs the ``81 LL`` long-form length (card-facts §6.2).
    """
    fields = [
        tlv.encode(0xDF22, name.encode("utf-8")),
        tlv.encode(0xDF23, address.encode("utf-8")),
        tlv.encode(0xDF24, birth_date.strftime("%Y%m%d").encode("ascii")),
        tlv.encode(0xDF25, str(sex).encode("ascii")),
    ]
    return with_offset_table(0xFF20, fields)


def attributes_signed_part(attributes: bytes) -> bytes:
    """Bytes of EF ``0002`` that ``DF32`` hashes: from ``DF22`` to the end of the FF20 value."""
    return attributes[read_offsets(attributes)[0] : tlv.decode_one(attributes).end]


def integrity_file(my_number: bytes, attributes: bytes, signer: CardDataSigner) -> bytes:
    """EF ``0003`` (336 bytes): ``FF30 { DF31 H(0001), DF32 H(0002 part), DF33 signature }``."""
    digests = tlv.encode(0xDF31, hashlib.sha256(my_number).digest()) + tlv.encode(
        0xDF32, hashlib.sha256(attributes_signed_part(attributes)).digest()
    )
    return tlv.encode(0xFF30, digests + tlv.encode(0xDF33, signer.sign(digests)))


def ap_info_file(key_id: KeyId, serial: str) -> bytes:
    """EF ``0005``: ``FF40 { DF41 version, DF42 key id, DF43 128 bytes }`` padded to 256.

    ``DF43``'s meaning is unknown: 32 bytes derived from the card serial, then 96 × ``FF`` (the
    shape seen on a card). The non-minimal ``82 00 LL`` length matches a real reader's vector.
    """
    df43 = hashlib.sha256(b"mynacard DF43 " + serial.encode()).digest() + b"\xff" * 96
    body = (
        tlv.encode(0xDF41, AP_INFO_VERSION)
        + tlv.encode(0xDF42, bytes(key_id))
        + tlv.encode(0xDF43, df43)
    )
    return tlv.encode(0xFF40, body, length_octets=2).ljust(AP_INFO_SIZE, b"\xff")


def signed_key_file(card_key: rsa.RSAPublicKey, signer: CardDataSigner) -> bytes:
    """EF ``0007``: ``FF50 { DF51 <AP key 0013, 90/91>, DF52 <signature over the DF51 TLV> }``."""
    key_tlv = tlv.encode(0xDF51, encode_rsa_public_key(card_key))
    return tlv.encode(0xFF50, key_tlv + tlv.encode(0xDF52, signer.sign(key_tlv)))
