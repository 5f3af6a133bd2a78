"""公的個人認証AP (JPKI-AP), ``D3 92 F0 00 26 01 00 00 00 01`` — card-facts §5.

The AP itself is declared in ``card_emulator/profiles/current.toml``; this module makes the
content of its token-information EF.
"""

from __future__ import annotations

import struct

TOKEN_INFO_SIZE = 160
# card-facts §5.1: 8F 8F 00 on a card holding both certificates (byte 0 sign, byte 1 auth).
CERT_FLAGS_BOTH = bytes.fromhex("8F8F00")
# EF 0009 is protected and its purpose unknown; no credential opens it, so its bytes are never
# observable. We hold 16 filler bytes so that SELECT succeeds as on a real card.
UNKNOWN_PROTECTED_CONTENT = b"\xff" * 16


def _pad(text: str, size: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{text!r} does not fit {size} bytes")
    return raw.ljust(size, b" ")


def token_info(token: str, serial: str) -> bytes:
    """EF ``0006``: PKCS#11 ``CK_TOKEN_INFO`` with 32-bit big-endian integers, 160 bytes.

    Layout and sample values per card-facts §5.2 (SINGLE source, said to reflect real cards).
    """
    flags = 0x0000040D  # RNG | LOGIN_REQUIRED | USER_PIN_INITIALIZED | TOKEN_INITIALIZED
    counts = struct.pack(">6I", 1, 0, 1, 0, 16, 6)  # sessions, RW sessions, max/min PIN length
    memory = b"\xff" * 16  # four memory fields, "unavailable"
    info = (
        _pad(token, 32)
        + _pad("0" * 31 + "1", 32)  # manufacturerID
        + _pad("E16R01NJ", 16)  # model
        + _pad(serial[-16:].rjust(16, "0"), 16)  # serialNumber
        + struct.pack(">I", flags)
        + counts
        + memory
        + b"03"  # hardwareVersion (ASCII on the card, not CK_VERSION)
        + b"01"  # firmwareVersion
        + b" " * 16  # utcTime: no clock
    )
    assert len(info) == TOKEN_INFO_SIZE
    return info
