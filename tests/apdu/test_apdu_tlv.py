"""BER-TLV and simple-TLV codecs: known vectors and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import CodecError, simple_tlv, tlv


@pytest.mark.parametrize(
    ("tag", "raw"),
    [
        (0xDF21, b"\xdf\x21"),
        (0xFF20, b"\xff\x20"),
        (0x7F21, b"\x7f\x21"),
        (0x5F4E, b"\x5f\x4e"),
        (0x30, b"\x30"),
        (0x9F8101, b"\x9f\x81\x01"),
    ],
)
def test_high_tag_numbers(tag: int, raw: bytes) -> None:
    assert tlv.tag_bytes(tag) == raw
    item = tlv.decode_one(raw + b"\x01\xaa")
    assert (item.tag, item.value) == (tag, b"\xaa")


@pytest.mark.parametrize(
    ("length", "raw"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"), (0x233, "820233")],
)
def test_length_forms(length: int, raw: str) -> None:
    assert tlv.encode_length(length).hex().upper() == raw


def test_non_minimal_length_is_accepted() -> None:
    item = tlv.decode_one(bytes.fromhex("FF4082000301020399"))  # trailing 99 = filler
    assert item.tag == 0xFF40
    assert item.value == b"\x01\x02\x03"
    assert item.end == 8
    assert item.to_bytes(length_octets=2) == bytes.fromhex("FF408200030102 03".replace(" ", ""))


def test_constructed_children_and_offsets() -> None:
    inner = tlv.encode(0xDF22, "番号　花子".encode()) + tlv.encode(0xDF25, b"2")
    outer = tlv.decode_one(tlv.encode(0xFF20, inner) + b"\xff\xff")
    assert outer.constructed
    children = outer.children()
    assert [c.tag for c in children] == [0xDF22, 0xDF25]
    assert outer.child(0xDF25).value == b"2"
    assert children[1].offset == 3 + len("番号　花子".encode())
    with pytest.raises(CodecError):
        outer.child(0xDF99)


@pytest.mark.parametrize(
    "hex_", ["", "DF", "DF21", "DF2105AA", "3080", "3085FFFFFFFFFF", "9F818181818101"]
)
def test_malformed_tlv(hex_: str) -> None:
    with pytest.raises(CodecError):
        tlv.decode_one(bytes.fromhex(hex_))


tags = st.sampled_from([0x01, 0x30, 0x5F4E, 0x5F37, 0x7F21, 0xDF21, 0xFF20, 0x9F8101])


@given(tags, st.binary(max_size=70000))
def test_tlv_round_trip(tag: int, value: bytes) -> None:
    raw = tlv.encode(tag, value)
    item = tlv.decode_one(raw)
    assert (item.tag, item.value, item.end) == (tag, value, len(raw))
    assert item.to_bytes() == raw


@given(st.binary(max_size=300))
def test_tlv_decode_never_raises_anything_but_codec_error(raw: bytes) -> None:
    try:
        items = tlv.decode_all(raw)
    except CodecError:
        return
    assert sum(i.end - i.offset for i in items) == len(raw)


@given(st.integers(1, 0xFE), st.binary(max_size=70000))
def test_simple_tlv_round_trip(tag: int, value: bytes) -> None:
    if len(value) > 0xFFFF:
        with pytest.raises(CodecError):
            simple_tlv.SimpleTlv(tag, value)
        return
    raw = simple_tlv.SimpleTlv(tag, value).to_bytes()
    assert simple_tlv.decode_all(raw) == [simple_tlv.SimpleTlv(tag, value)]


@given(st.binary(max_size=300))
def test_simple_tlv_never_raises_anything_but_codec_error(raw: bytes) -> None:
    try:
        items = simple_tlv.decode_all(raw)
    except CodecError:
        return
    assert simple_tlv.decode_all(b"".join(i.to_bytes() for i in items)) == items


def test_simple_tlv_card_record() -> None:
    record = bytes.fromhex("011C") + b"400000012719843" + b"13221" + b"20350217"
    (item,) = simple_tlv.decode_all(record)
    assert item.tag == 1
    assert item.value.decode() == "4000000127198431322120350217"
    assert simple_tlv.SimpleTlv(1, b"x" * 300).to_bytes()[:4] == b"\x01\xff\x01\x2c"
