"""No secret reaches a trace or a log, whatever the class byte or instruction form."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import CodecError, CommandApdu, TraceRecord, carries_secret, mask_hex

SECRET_INS = (0x20, 0x21, 0x24, 0x25, 0x2C, 0x2D, 0x32, 0xAE)
PIN = b"1234"
PASSWORD = b"ABC123"


def shown(raw: bytes) -> str:
    record = TraceRecord(0.0, raw, b"\x63\xc2")
    return record.text() + "\n" + json.dumps(record.to_json())


def test_verify_and_friends_are_masked_under_every_class_byte() -> None:
    for cla in range(256):
        for ins in SECRET_INS:
            for secret in (PIN, PASSWORD, b"\x01" * 256):
                command = CommandApdu(cla, ins, 0x00, 0x80, secret)
                for raw in (
                    command.to_bytes(),
                    CommandApdu(cla, ins, 0, 0x80, secret, le=256).to_bytes(),
                ):
                    text = shown(raw)
                    assert secret.hex(" ").upper() not in text, (cla, ins)
                    assert "XX" in text


def test_only_known_public_commands_show_their_data() -> None:
    assert not carries_secret(0x00, 0xA4)
    assert not carries_secret(0x80, 0x2A)
    assert carries_secret(0x80, 0x20)  # VERIFY under a proprietary class
    assert carries_secret(0x90, 0x20)
    assert carries_secret(0x00, 0x21)  # VERIFY, odd INS
    assert carries_secret(0x0C, 0x20)
    assert carries_secret(0x80, 0xAE)  # SET SESSION KEY: the delivered key
    assert carries_secret(0x00, 0x42)  # unknown: when unsure, mask
    assert mask_hex(bytes.fromhex("8020008004") + PIN) == "80 20 00 80 04 XX XX XX XX"


@settings(max_examples=3000, deadline=None)
@given(
    cla=st.integers(0, 255),
    ins=st.sampled_from(SECRET_INS),
    tail=st.binary(min_size=0, max_size=300),
)
def test_malformed_secret_commands_never_show_their_bytes(cla: int, ins: int, tail: bytes) -> None:
    raw = bytes((cla, ins, 0x00, 0x80)) + tail
    text = mask_hex(raw)
    assert text.startswith(raw[:4].hex(" ").upper())
    try:
        data = CommandApdu.parse(raw).data
    except CodecError:  # not a valid APDU: everything after the header is hidden
        assert text.split()[4:] == ["XX"] * len(tail)
    else:  # only the length fields stay visible
        assert text.split().count("XX") == len(data)
