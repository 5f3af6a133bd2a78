"""Answers a real (test) card gave to the myna-card crate, checked byte for byte.

Sources: myna-card ``src/mf.rs`` (MF level), ``src/card.rs`` (GET DATA, 80 FC, 80 A2),
``src/ap/*.rs`` and ``tests/*.rs`` (key IDs and EFs), ``examples/fuzz_card.rs`` (the baseline
probe's SELECTs). ``docs/fidelity.md`` grades each one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from apdu import tlv
from card_emulator import Card
from card_emulator.card import throwaway_pki
from jpki.cv_certificate import decode_rsa_public_key
from tests.conftest import Transmit

TEXT = "D3921000310001010408"
KENMEN = "D3921000310001010402"
COMMON = "D3921000310001010100"
JUKI = "D3921000310001010401"
JPKI = "D392F000260100000001"
ISD = "A0000001510000"


def key_id(number: str, group: str = "001", pad: str = "00000000") -> bytes:
    return number.encode() + b"\x08\x05" + group.encode() + bytes.fromhex(pad)


# --- MF level --------------------------------------------------------------------------------


def test_get_data_f8_returns_the_bare_cv_certificate(tx: Transmit) -> None:
    assert tx("00CA00F800") == (b"", 0x6700)  # too large for a short Le: no length hint
    body, sw = tx("00CA00F8000000")
    assert sw == 0x9000
    assert body[:5] == bytes.fromhex("5F4E820129")  # no 7F21 header
    assert body[302:307] == bytes.fromhex("5F37820100")
    assert len(body) == 5 + 297 + 5 + 256
    assert body[5:21] == key_id("6900020", pad="000000A8")  # the MF root, A8 padding
    intermediate = body[21:37]
    assert tx("00CA00F700") == (intermediate, 0x9000)
    lower, sw = tx("00CA7F21000000")
    assert sw == 0x9000
    assert lower[5:21] == intermediate
    # the chain verifies: root → intermediate (F8) → card key (7F21)
    root = throwaway_pki().cv_root_public_key("mf")
    root.verify(body[307:], body[5:302], padding.PKCS1v15(), hashes.SHA256())
    intermediate_key = decode_rsa_public_key(body[37:302])
    intermediate_key.verify(lower[307:], lower[5:302], padding.PKCS1v15(), hashes.SHA256())


def test_mf_objects_answer_only_with_no_application_selected(tx: Transmit) -> None:
    for tag in ("0042", "0045", "0066", "00F0", "00F2", "00F7"):
        data, sw = tx(f"00CA{tag}00")
        assert sw == 0x9000 and data, tag
    assert tx("00CA004500") == (b"400000012719843", 0x9000)
    assert tx("00CA00F100") == (b"", 0x6A88)
    assert tx("00A4040C0A" + JPKI)[1] == 0x9000
    assert tx("00CA00F8000000") == (b"", 0x6A88)
    assert tx("00CA00F000") == (b"", 0x6A88)
    # the contact ATR answers with an AP selected too (on some cards only then)
    assert tx("00CA5F5100") == (bytes.fromhex("E000FF8131FE4514"), 0x9000)
    assert tx("00A4040C07" + ISD)[1] == 0x9000  # back to the power-on state
    assert tx("00CA00F8000000")[1] == 0x9000


def test_mf_ef_001e_is_selectable_and_unreadable(tx: Transmit) -> None:
    assert tx("00A4020C02001E") == (b"", 0x9000)
    assert tx("00B0000001") == (b"", 0x6981)
    assert tx("00B2010400") == (b"", 0x6981)
    assert tx("00B2010500") == (b"", 0x6981)
    assert tx("00B09E0001") == (b"", 0x6981)
    for fid in ("2F10", "2F11", "3F00", *(f"{n:04X}" for n in range(1, 0x1E))):
        assert tx("00A4020C02" + fid) == (b"", 0x6A82), fid
    assert tx("00A40000") == (b"", 0x6A86)  # ISO SELECT MF right after reset


# --- key IDs and EFs -----------------------------------------------------------------------------


def test_basic_info_names_keys_other_than_the_certificate_subject(tx: Transmit) -> None:
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    info, _ = tx("00B0850000")
    certificate, _ = tx("00B08400000000")
    df42 = tlv.decode_one(info).child(0xDF42).value
    subject = tlv.decode_one(certificate).child(0x5F4E).value[16:32]
    assert df42 == key_id("6900034")
    assert subject != df42
    assert subject == key_id("9999931", "000")

    assert tx("00A4040C0A" + KENMEN)[1] == 0x9000
    info, _ = tx("00B08300000000")
    certificate, _ = tx("00B08400000000")
    fields = tlv.decode_one(info)
    subject = tlv.decode_one(certificate).child(0x5F4E).value[16:32]
    assert fields.child(0xDF32).value == key_id("6900024")
    assert subject != fields.child(0xDF32).value
    df35 = fields.child(0xDF35).value
    assert df35[:16] == key_id("6900025")
    assert len(df35) == 16 + 256
    assert fields.child(0xDF34).value == b"13101"


def test_text_ef_0008_opens_with_the_pin(tx: Transmit) -> None:
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    assert tx("00B0880000") == (b"", 0x6982)
    assert tx("00A4020C020011")[1] == 0x9000
    assert tx("002000800431323334")[1] == 0x9000
    assert tx("00B0880000") == (b"\xff" * 16, 0x9000)


def test_ef_0002_of_the_common_and_juki_aps_is_one_shared_record(tx: Transmit) -> None:
    records = []
    for aid in (COMMON, JUKI):
        assert tx("00A4040C0A" + aid)[1] == 0x9000
        assert tx("00A4020C020002")[1] == 0x9000
        assert tx("00B0000001") == (b"", 0x6981)  # record-structured
        record, sw = tx("00B2010400")
        assert sw == 0x9000 and len(record) == 16
        assert tx("00B2020400")[1] == 0x6A83
        records.append(record)
    assert records[0] == records[1]


def test_the_baseline_probe_selects_every_key_it_names(card: Card, tx: Transmit) -> None:
    """myna-card ``fuzz_card baseline``: SELECT then an empty VERIFY of each key reference."""
    baseline = {
        COMMON: ("001C", "001E"),
        JUKI: ("001C",),
        KENMEN: ("0011", "0012", "0013", "0014", "0015"),
        TEXT: ("0011", "0012", "0014", "0015"),
        JPKI: ("0010", "0018", "001B"),
    }
    for aid, keys in baseline.items():
        assert tx("00A4040C0A" + aid)[1] == 0x9000
        for fid in keys:
            assert tx("00A4020C02" + fid) == (b"", 0x9000), (aid, fid)
            _, sw = tx("00200080")
            assert sw & 0xFFF0 == 0x63C0, (aid, fid, hex(sw))
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    assert tx("00A4020C020012")[1] == 0x9000
    assert tx("00200080") == (b"", 0x63C0)  # blocked at issue
    assert card.credential("jpki", 0x0010).remaining == 3
