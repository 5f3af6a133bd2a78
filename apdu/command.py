"""Command APDUs (ISO/IEC 7816-4 cases 1-4, short and extended length).

Le is held as the number of bytes the host accepts: a short ``00`` means 256 and an extended
``00 00`` means 65536. ``le=None`` means no Le field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from apdu.errors import CodecError

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_LE = 65536


class Case(IntEnum):
    """ISO 7816-4 command cases."""

    NO_DATA_NO_LE = 1
    LE_ONLY = 2
    DATA_ONLY = 3
    DATA_AND_LE = 4


# Instructions whose data field is known to carry no secret, under any class byte: SELECT,
# READ BINARY / RECORD (both INS forms), COMPUTE DIGITAL SIGNATURE (a digest), INTERNAL
# AUTHENTICATE (a challenge), GET CHALLENGE, GET DATA, GET RESPONSE, SET PUBLIC IC KEY (a public
# certificate), the last-command indicator. Every other command's data is masked, whatever the
# class byte: VERIFY (20/21), CHANGE REFERENCE DATA (24/25), RESET RETRY COUNTER (2C/2D), CHANGE
# KEY (32), SET SESSION KEY (AE) above all, and anything unknown (when unsure, mask).
_PUBLIC_INS = frozenset(
    {0xA4, 0xB0, 0xB1, 0xB2, 0xB3, 0x2A, 0x88, 0x84, 0xCA, 0xCB, 0xC0, 0xA2, 0xFC}
)


def carries_secret(cla: int, ins: int) -> bool:
    """True when the data field of this command may be a secret and must never be shown.

    Decided by the instruction alone, for every class byte (interindustry, proprietary, secure
    messaging, or malformed): a VERIFY under ``CLA 80`` or ``90`` is still a VERIFY.
    """
    return ins not in _PUBLIC_INS


def mask_hex(raw: bytes) -> str:
    """Spaced hex of a command with any credential bytes shown as ``XX``.

    Works on malformed input too: if the header names a secret-bearing instruction, everything
    after the 4-byte header is masked, whatever its structure.
    """
    if len(raw) >= 4 and carries_secret(raw[0], raw[1]):
        try:
            cmd = CommandApdu.parse(raw)
        except CodecError:
            return " ".join([raw[:4].hex(" ").upper(), *(["XX"] * (len(raw) - 4))]).strip()
        return cmd.masked_hex()
    return raw.hex(" ").upper()


def blank_secret(raw: bytes) -> bytes:
    """``raw`` with the data of a secret-bearing instruction (:func:`carries_secret`) turned to
    zero bytes, every other byte kept: same header, lengths and structure, so
    :func:`mask_hex` and a trace decoder read it as they read ``raw``, but no PIN is left in
    it. A malformed command of such an instruction keeps its header and length bytes, zeros
    after (so it is just as malformed)."""
    if len(raw) <= 4 or not carries_secret(raw[0], raw[1]):
        return raw
    try:
        cmd = CommandApdu.parse(raw)
    except CodecError:  # lengths kept: whether a command parses never depends on its data
        keep = 7 if raw[4] == 0 and len(raw) >= 7 else 5
        return raw[:keep] + bytes(len(raw) - keep)
    if not cmd.data:
        return raw
    encoded = cmd.to_bytes()  # what mask_hex shows, in its canonical encoding
    start = 7 if cmd.is_extended else 5
    return encoded[:start] + bytes(len(cmd.data)) + encoded[start + len(cmd.data) :]


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """One command APDU. ``extended`` forces the extended length form when encoding."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise CodecError(f"{name.upper()} must be one byte, not {value}")
        if len(self.data) > EXTENDED_MAX_LC:
            raise CodecError(f"data field of {len(self.data)} bytes exceeds {EXTENDED_MAX_LC}")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX_LE:
            raise CodecError(f"Le must be 1-{EXTENDED_MAX_LE}, not {self.le}")

    @property
    def case(self) -> Case:
        """The ISO case of this command."""
        if self.data:
            return Case.DATA_AND_LE if self.le is not None else Case.DATA_ONLY
        return Case.LE_ONLY if self.le is not None else Case.NO_DATA_NO_LE

    @property
    def is_extended(self) -> bool:
        """True when this command needs (or asked for) the extended length form."""
        return (
            self.extended
            or len(self.data) > SHORT_MAX_LC
            or (self.le is not None and self.le > SHORT_MAX_LE)
        )

    @property
    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def to_bytes(self) -> bytes:
        """Encode in the short form when possible, else the extended form."""
        out = bytearray(self.header)
        if self.is_extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
                if self.le is not None:
                    out += (self.le % EXTENDED_MAX_LE).to_bytes(2, "big")
            elif self.le is not None:
                out += b"\x00" + (self.le % EXTENDED_MAX_LE).to_bytes(2, "big")
        else:
            if self.data:
                out += bytes((len(self.data),)) + self.data
            if self.le is not None:
                out.append(self.le % SHORT_MAX_LE)
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU; raises :class:`CodecError` on any malformed input."""
        n = len(raw)
        if n < 4:
            raise CodecError(f"a command APDU has at least 4 bytes, got {n}")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if n == 4:
            return cls(cla, ins, p1, p2)
        b4 = raw[4]
        if n == 5:
            return cls(cla, ins, p1, p2, le=b4 or SHORT_MAX_LE)
        if b4:
            if n == 5 + b4:
                return cls(cla, ins, p1, p2, raw[5:])
            if n == 6 + b4:
                return cls(cla, ins, p1, p2, raw[5 : 5 + b4], le=raw[-1] or SHORT_MAX_LE)
            raise CodecError(f"short Lc={b4} does not match a {n}-byte APDU")
        # b4 == 0 and more than 5 bytes: extended length.
        if n == 7:
            le = int.from_bytes(raw[5:7], "big") or EXTENDED_MAX_LE
            return cls(cla, ins, p1, p2, le=le, extended=True)
        if n < 7:
            raise CodecError(f"a {n}-byte APDU with a 00 length byte is not a valid encoding")
        lc = int.from_bytes(raw[5:7], "big")
        if lc == 0:
            raise CodecError("extended Lc of 0 is not allowed")
        if n == 7 + lc:
            return cls(cla, ins, p1, p2, raw[7:], extended=True)
        if n == 9 + lc:
            le = int.from_bytes(raw[-2:], "big") or EXTENDED_MAX_LE
            return cls(cla, ins, p1, p2, raw[7 : 7 + lc], le=le, extended=True)
        raise CodecError(f"extended Lc={lc} does not match a {n}-byte APDU")

    @property
    def carries_secret(self) -> bool:
        """True when the data field is a PIN or password."""
        return carries_secret(self.cla, self.ins)

    def masked_hex(self) -> str:
        """Spaced hex of the encoding with credential bytes shown as ``XX``."""
        raw = self.to_bytes()
        if not (self.carries_secret and self.data):
            return raw.hex(" ").upper()
        start = 7 if self.is_extended else 5
        end = start + len(self.data)
        parts = [f"{b:02X}" for b in raw[:start]] + ["XX"] * len(self.data)
        parts += [f"{b:02X}" for b in raw[end:]]
        return " ".join(parts)

    def __repr__(self) -> str:
        # Never print a PIN, even by accident in a debugger or a log line.
        return f"CommandApdu({self.masked_hex()})"

    __str__ = __repr__
