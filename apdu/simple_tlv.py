"""Simple-TLV (ISO/IEC 7816-4 / JICSAP 4.4.1), used in the card's record EFs.

Tag: one byte ``01``-``FE``. Length: one byte ``00``-``FE``, or ``FF`` followed by two bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu.errors import CodecError


@dataclass(frozen=True, slots=True)
class SimpleTlv:
    """One simple-TLV object."""

    tag: int
    value: bytes

    def __post_init__(self) -> None:
        if not 0x01 <= self.tag <= 0xFE:
            raise CodecError(f"simple-TLV tag must be 01-FE, not {self.tag:#04x}")
        if len(self.value) > 0xFFFF:
            raise CodecError(f"simple-TLV value of {len(self.value)} bytes is too long")

    def to_bytes(self) -> bytes:
        """Tag, length (1 or 3 bytes), value."""
        n = len(self.value)
        length = bytes((n,)) if n < 0xFF else b"\xff" + n.to_bytes(2, "big")
        return bytes((self.tag,)) + length + self.value


def decode_one(data: bytes, pos: int = 0) -> tuple[SimpleTlv, int]:
    """Decode the object at ``pos``; returns it and the offset just past it."""
    if pos + 2 > len(data):
        raise CodecError("truncated simple-TLV header")
    tag, first = data[pos], data[pos + 1]
    if tag in (0x00, 0xFF):
        raise CodecError(f"simple-TLV tag {tag:02X} is not allowed")
    pos += 2
    if first == 0xFF:
        if pos + 2 > len(data):
            raise CodecError("truncated simple-TLV 3-byte length")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
    else:
        length = first
    if pos + length > len(data):
        raise CodecError(f"simple-TLV tag {tag:02X} needs {length} bytes, {len(data) - pos} left")
    return SimpleTlv(tag, bytes(data[pos : pos + length])), pos + length


def decode_all(data: bytes) -> list[SimpleTlv]:
    """All consecutive objects filling ``data`` exactly."""
    items: list[SimpleTlv] = []
    pos = 0
    while pos < len(data):
        item, pos = decode_one(data, pos)
        items.append(item)
    return items
