"""Builders for the commands this card family understands (host side and tests).

Each returns a :class:`CommandApdu`; its ``repr`` masks PINs, so these are safe to log.
"""

from __future__ import annotations

from apdu.command import SHORT_MAX_LE, CommandApdu


def select_aid(aid: bytes, *, fci: bool = False) -> CommandApdu:
    """SELECT by DF name: ``00 A4 04 0C`` (no FCI) or ``00 A4 04 00 .. 00`` (FCI)."""
    if fci:
        return CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=SHORT_MAX_LE)
    return CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid)


def select_ef(fid: int) -> CommandApdu:
    """SELECT EF under the current DF by file identifier: ``00 A4 02 0C 02 FID``."""
    return CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))


def read_binary(offset: int = 0, le: int = SHORT_MAX_LE) -> CommandApdu:
    """READ BINARY of the current EF at a 15-bit offset."""
    if not 0 <= offset <= 0x7FFF:
        raise ValueError(f"READ BINARY offset must be 0-32767, not {offset}")
    return CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le)


def read_binary_sfi(sfi: int, offset: int = 0, le: int = SHORT_MAX_LE) -> CommandApdu:
    """READ BINARY naming the EF by short file identifier (P1 = ``80|SFI``, P2 = offset)."""
    if not 1 <= sfi <= 30 or not 0 <= offset <= 0xFF:
        raise ValueError(f"SFI must be 1-30 and offset 0-255, not {sfi}/{offset}")
    return CommandApdu(0x00, 0xB0, 0x80 | sfi, offset, le=le)


def read_record(record: int = 1, sfi: int | None = None, le: int = SHORT_MAX_LE) -> CommandApdu:
    """READ RECORD ``record`` of the current EF (P2 ``04``) or of EF ``sfi`` (P2 ``SFI<<3|4``)."""
    p2 = 0x04 if sfi is None else (sfi << 3) | 0x04
    return CommandApdu(0x00, 0xB2, record, p2, le=le)


def verify(pin: bytes | None = None, *, sfi: int | None = None) -> CommandApdu:
    """VERIFY against the current IEF (P2 ``80``) or IEF ``sfi`` (P2 ``80|SFI``).

    ``pin=None`` builds the empty VERIFY that asks for the retry counter.
    """
    p2 = 0x80 if sfi is None else 0x80 | sfi
    return CommandApdu(0x00, 0x20, 0x00, p2, pin or b"")


def change_reference_data(new_pin: bytes) -> CommandApdu:
    """CHANGE REFERENCE DATA ``00 24 01 80`` for the current (verified) IEF."""
    return CommandApdu(0x00, 0x24, 0x01, 0x80, new_pin)


def change_key(new_pin: bytes) -> CommandApdu:
    """JICSAP CHANGE KEY ``80 32 00 80`` for the current (verified) IEF."""
    return CommandApdu(0x80, 0x32, 0x00, 0x80, new_pin)


def compute_signature(data: bytes, *, scheme: int = 0, key_sfi: int | None = None) -> CommandApdu:
    """COMPUTE DIGITAL SIGNATURE ``80 2A P1 P2 Lc data 00`` with the selected key or ``key_sfi``.

    ``key_sfi=0`` names the AP's default key (P2 ``00``, the 券面 APs).
    """
    if key_sfi == 0:
        p2 = 0x00
    else:
        p2 = 0x80 if key_sfi is None else 0x80 | key_sfi
    return CommandApdu(0x80, 0x2A, scheme, p2, data, le=SHORT_MAX_LE)


def internal_authenticate(challenge: bytes, key_sfi: int) -> CommandApdu:
    """INTERNAL AUTHENTICATE ``00 88 00 80|SFI`` with a challenge."""
    return CommandApdu(0x00, 0x88, 0x00, 0x80 | key_sfi, challenge, le=SHORT_MAX_LE)


def get_challenge(length: int = 8) -> CommandApdu:
    """GET CHALLENGE for ``length`` random bytes (1-256)."""
    return CommandApdu(0x00, 0x84, 0x00, 0x00, le=length)


def get_data(tag: int, le: int = SHORT_MAX_LE) -> CommandApdu:
    """GET DATA ``00 CA tag-hi tag-lo``."""
    return CommandApdu(0x00, 0xCA, tag >> 8, tag & 0xFF, le=le)
