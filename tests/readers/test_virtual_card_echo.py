"""EchoCard: the tiny VirtualCard used by transport tests and benchmarks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from readers.card_side.virtual_card import ECHO_ATR, EchoCard, VirtualCard


def test_echo_card_satisfies_the_protocol() -> None:
    assert isinstance(EchoCard(), VirtualCard)


def test_atr_is_t1_with_valid_tck() -> None:
    assert ECHO_ATR[0] == 0x3B
    check = 0
    for byte in ECHO_ATR[1:]:
        check ^= byte
    assert check == 0
    assert EchoCard().atr == ECHO_ATR
    assert EchoCard(atr=b"\x3b\x00").atr == b"\x3b\x00"


def test_select_answers_9000() -> None:
    card = EchoCard()
    assert card.transmit(bytes.fromhex("00A4040C0AD392F000260100000001")) == b"\x90\x00"
    assert card.transmit(bytes.fromhex("00A4020C020018")) == b"\x90\x00"


def test_read_binary_short_and_extended() -> None:
    card = EchoCard()
    short = card.transmit(bytes.fromhex("00B0000000"))
    assert len(short) == 258 and short[-2:] == b"\x90\x00"
    assert short[:-2] == bytes(range(256))
    assert card.transmit(bytes.fromhex("00B0000004")) == b"\x00\x01\x02\x03\x90\x00"
    # offset P1P2 = 0x0102: bytes continue the ramp at 0x02
    assert card.transmit(bytes.fromhex("00B0010203")) == b"\x02\x03\x04\x90\x00"
    extended = card.transmit(bytes.fromhex("00B00000001000"))
    assert len(extended) == 0x1000 + 2
    assert extended[:-2] == bytes(range(256)) * 16
    biggest = card.transmit(bytes.fromhex("00B00000000000"))  # Le 65536, capped to fit vpcd
    assert len(biggest) == 0xFFFF


def test_other_commands_echo_their_data() -> None:
    card = EchoCard()
    assert card.transmit(bytes.fromhex("00D6000003AABBCC")) == b"\xaa\xbb\xcc\x90\x00"
    assert card.transmit(bytes.fromhex("00D6000003AABBCC00")) == b"\xaa\xbb\xcc\x90\x00"
    data = bytes(i & 0xFF for i in range(1000))
    extended = bytes.fromhex("00D60000") + b"\x00" + len(data).to_bytes(2, "big") + data
    assert card.transmit(extended) == data + b"\x90\x00"
    assert card.transmit(extended + b"\x00\x00") == data + b"\x90\x00"
    assert card.transmit(bytes.fromhex("00840000")) == b"\x90\x00"  # case 1


def test_malformed_commands_get_6700() -> None:
    card = EchoCard()
    assert card.transmit(b"") == b"\x67\x00"
    assert card.transmit(b"\x00\xa4\x04") == b"\x67\x00"
    assert card.transmit(bytes.fromhex("00D6000005AABB")) == b"\x67\x00"  # Lc too long
    assert card.transmit(bytes.fromhex("00D600000000")) == b"\x67\x00"  # ext Lc 0 / truncated


def test_power_events_are_counted() -> None:
    card = EchoCard()
    card.power_on()
    card.reset()
    card.power_off()
    assert (card.power_ons, card.resets, card.powered) == (1, 1, False)


@given(st.binary(max_size=70000))
def test_transmit_never_raises_and_always_ends_with_a_status_word(command: bytes) -> None:
    response = EchoCard().transmit(command)
    assert len(response) >= 2
    assert len(response) <= 0xFFFF
    assert response[-2:] in (b"\x90\x00", b"\x67\x00")
