"""``D3 92 10 00 31 00 01 01 01 00`` (共通カードAP per one source) — card-facts §8.1.

Record EF ``0001`` (SFI 1) holds one simple-TLV record ``01 1C`` + serial[15] ‖ municipality
code[5] ‖ expiry ``YYYYMMDD``, readable with no credential; key ``0019`` answers INTERNAL
AUTHENTICATE with no credential (its public half is not on the card); PIN ``001C`` is changed with
CHANGE KEY ``80 32 00 80``. EF ``0002`` is record-structured and its record 1 is one 16-byte key
reference, the same in the 住基AP, readable with no credential (myna-card ``ap/common.rs``); its
value is not published, so ours has the key-ID form with an emulator number. IEF ``001E`` exists
(a real-card probe selects it); what it guards is unknown.
"""

from __future__ import annotations

import datetime as dt

from apdu.simple_tlv import SimpleTlv
from jpki.cv_certificate import KeyId

KEY_REFERENCE = KeyId.from_parts("6900010")
"""Record 1 of EF ``0002`` in the common AP and the 住基AP (the real value is not published)."""


def card_record(serial: str, municipality_code: str, expiry: dt.date) -> bytes:
    """Record 1 of EF ``0001``: ``01 1C`` + 28 ASCII characters."""
    text = serial + municipality_code + expiry.strftime("%Y%m%d")
    return SimpleTlv(0x01, text.encode("ascii")).to_bytes()


def key_reference_records() -> list[bytes]:
    """EF ``0002``: one record, the 16-byte key reference shared with the 住基AP."""
    return [bytes(KEY_REFERENCE)]
