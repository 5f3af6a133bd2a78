"""Command/response APDU codec: known vectors and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import (
    Case,
    CodecError,
    CommandApdu,
    ResponseApdu,
    blank_secret,
    builders,
    carries_secret,
    mask_hex,
)
from apdu.status import describe, is_valid, retries_in, retries_left


@pytest.mark.parametrize(
    ("hex_", "case", "data_len", "le", "extended"),
    [
        ("00A4040C0AD392F000260100000001", Case.DATA_ONLY, 10, None, False),
        ("00200080", Case.NO_DATA_NO_LE, 0, None, False),
        ("00B0000004", Case.LE_ONLY, 0, 4, False),
        ("00B0000000", Case.LE_ONLY, 0, 256, False),
        ("00B08500000000", Case.LE_ONLY, 0, 65536, True),
        ("00B0000000012C", Case.LE_ONLY, 0, 300, True),
        ("802A00800330313000", Case.DATA_AND_LE, 3, 256, False),
        ("802A0080000003303130" + "0000", Case.DATA_AND_LE, 3, 65536, True),
    ],
)
def test_known_encodings(
    hex_: str, case: Case, data_len: int, le: int | None, extended: bool
) -> None:
    raw = bytes.fromhex(hex_)
    cmd = CommandApdu.parse(raw)
    assert cmd.case is case
    assert len(cmd.data) == data_len
    assert cmd.le == le
    assert cmd.is_extended is extended
    assert cmd.to_bytes() == raw


@pytest.mark.parametrize(
    "hex_",
    ["", "00", "00A404", "00A4040C05D392", "00A4040C02001800FF", "00B0000000", "00B00000000100AA"],
)
def test_malformed_is_rejected(hex_: str) -> None:
    raw = bytes.fromhex(hex_)
    if hex_ == "00B0000000":  # valid: short Le 00
        assert CommandApdu.parse(raw).le == 256
        return
    with pytest.raises(CodecError):
        CommandApdu.parse(raw)


def test_extended_lc_zero_is_rejected() -> None:
    assert CommandApdu.parse(bytes.fromhex("00B00000000000")).le == 65536  # case 2E, Le 0000
    with pytest.raises(CodecError):
        CommandApdu.parse(bytes.fromhex("00B0000000000001"))


header = st.tuples(*(st.integers(0, 255) for _ in range(4)))


@st.composite
def commands(draw: st.DrawFn) -> CommandApdu:
    cla, ins, p1, p2 = draw(header)
    big = draw(st.booleans())
    data = draw(st.binary(max_size=600 if big else 255))
    le = draw(st.none() | st.integers(1, 65536 if big else 256))
    return CommandApdu(cla, ins, p1, p2, data, le, extended=draw(st.booleans()))


@given(commands())
def test_round_trip(cmd: CommandApdu) -> None:
    back = CommandApdu.parse(cmd.to_bytes())
    assert (back.header, back.data, back.le) == (cmd.header, cmd.data, cmd.le)
    if cmd.case is not Case.NO_DATA_NO_LE:  # a 4-byte APDU has no length form to keep
        assert back.is_extended == cmd.is_extended


@given(st.binary(max_size=700))
def test_parse_never_raises_anything_but_codec_error(raw: bytes) -> None:
    try:
        cmd = CommandApdu.parse(raw)
    except CodecError:
        return
    assert cmd.to_bytes() == raw  # every valid encoding is canonical


@given(st.binary(min_size=1, max_size=20), st.booleans())
def test_pin_is_masked_in_every_text_form(pin: bytes, by_sfi: bool) -> None:
    cmd = builders.verify(pin, sfi=0x18 if by_sfi else None)
    text = cmd.masked_hex()
    assert text.endswith(" ".join(["XX"] * len(pin)))
    assert text.count("XX") == len(pin)
    assert repr(cmd) == f"CommandApdu({text})"
    assert mask_hex(cmd.to_bytes()) == text
    change = builders.change_reference_data(pin)
    assert change.masked_hex().count("XX") == len(pin)
    assert builders.change_key(pin).masked_hex().count("XX") == len(pin)


@given(commands())
def test_blank_secret_keeps_the_shape_and_drops_the_data(cmd: CommandApdu) -> None:
    raw = cmd.to_bytes()
    blank = blank_secret(raw)
    assert len(blank) == len(raw) and mask_hex(blank) == mask_hex(raw)
    if not carries_secret(cmd.cla, cmd.ins):
        assert blank == raw
        return
    back = CommandApdu.parse(blank)
    assert back.header == cmd.header and back.le == cmd.le
    assert back.data == bytes(len(cmd.data))


@given(st.binary(max_size=300))
def test_blank_secret_of_any_bytes_keeps_no_data_of_a_secret_command(raw: bytes) -> None:
    blank = blank_secret(raw)
    assert len(blank) == len(raw) and mask_hex(blank) == mask_hex(raw)
    if len(raw) > 4 and carries_secret(raw[0], raw[1]):
        assert blank[:4] == raw[:4]
        assert mask_hex(blank).count("XX") == mask_hex(raw).count("XX")


def test_malformed_secret_command_is_masked_whole() -> None:
    raw = bytes.fromhex("0020008009313233")  # Lc says 9, only 3 bytes follow
    assert mask_hex(raw) == "00 20 00 80 XX XX XX XX"


def test_response_and_status_words() -> None:
    resp = ResponseApdu.parse(bytes.fromhex("63C2"))
    assert resp.retries == 2
    assert not resp.ok
    assert "2 tries left" in resp.meaning
    assert ResponseApdu.parse(b"\x01\x02\x90\x00") == ResponseApdu(b"\x01\x02", 0x9000)
    assert retries_left(3) == 0x63C3
    assert retries_in(0x6984) is None
    assert describe(0x6984).startswith("6984 reference data blocked")
    assert is_valid(0x6A82)
    assert not is_valid(0x6000)
    with pytest.raises(CodecError):
        ResponseApdu.parse(b"\x90")
