"""BER-TLV (ISO/IEC 8825-1 tag and length rules, as used by ISO 7816 and this card).

Tags are held as the integer of their raw bytes, so ``DF21``, ``FF20``, ``7F21`` and ``5F4E``
read as written. Lengths: short form (``00``-``7F``) and long forms ``81 xx`` ... ``84 xx xx xx
xx``; indefinite length (``80``) is refused. Decoding accepts non-minimal long forms (real
cards use ``FF 40 82 00 9F``); encoding is minimal unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from apdu.errors import CodecError

MAX_TAG_BYTES = 4
MAX_LENGTH_OCTETS = 4


def tag_bytes(tag: int) -> bytes:
    """Raw bytes of a tag number; raises :class:`CodecError` if they are not a valid tag."""
    if tag <= 0:
        raise CodecError(f"invalid tag {tag:#x}")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    if len(raw) > MAX_TAG_BYTES:
        raise CodecError(f"tag {tag:#x} is longer than {MAX_TAG_BYTES} bytes")
    parsed, end = _read_tag(raw, 0)
    if end != len(raw) or parsed != tag:
        raise CodecError(f"{raw.hex().upper()} is not a well-formed BER tag")
    return raw


def is_constructed(tag: int) -> bool:
    """True if the tag's first byte has the constructed bit (b6) set."""
    first = tag >> (8 * ((tag.bit_length() - 1) // 8))
    return bool(first & 0x20)


def encode_length(length: int, octets: int | None = None) -> bytes:
    """BER length field, minimal unless ``octets`` (1-4 long-form bytes) is given."""
    if length < 0:
        raise CodecError(f"negative length {length}")
    if octets is None:
        if length < 0x80:
            return bytes((length,))
        octets = (length.bit_length() + 7) // 8
    if not 1 <= octets <= MAX_LENGTH_OCTETS or length >= 1 << (8 * octets):
        raise CodecError(f"length {length} does not fit {octets} long-form octets")
    return bytes((0x80 | octets,)) + length.to_bytes(octets, "big")


def encode(tag: int, value: bytes, length_octets: int | None = None) -> bytes:
    """One TLV: tag, length, value."""
    return tag_bytes(tag) + encode_length(len(value), length_octets) + value


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise CodecError("truncated TLV: no tag")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        count = 1
        while True:
            if pos >= len(data):
                raise CodecError("truncated TLV: multi-byte tag not finished")
            byte = data[pos]
            tag = (tag << 8) | byte
            pos += 1
            count += 1
            if count > MAX_TAG_BYTES:
                raise CodecError(f"tag longer than {MAX_TAG_BYTES} bytes")
            if not byte & 0x80:
                break
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise CodecError("truncated TLV: no length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    octets = first & 0x7F
    if octets == 0:
        raise CodecError("indefinite length (80) is not allowed")
    if octets > MAX_LENGTH_OCTETS:
        raise CodecError(f"length field of {octets} octets is not supported")
    if pos + octets > len(data):
        raise CodecError("truncated TLV: length field cut short")
    return int.from_bytes(data[pos : pos + octets], "big"), pos + octets


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object. ``offset`` is where its tag started in the parsed buffer."""

    tag: int
    value: bytes
    offset: int = 0
    header_length: int = 0

    @property
    def constructed(self) -> bool:
        """True for a constructed (template) object."""
        return is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        """The objects inside a constructed value (offsets relative to the value)."""
        return decode_all(self.value)

    def child(self, tag: int) -> Tlv:
        """The first direct child with ``tag``; raises :class:`CodecError` if absent."""
        for item in self.children():
            if item.tag == tag:
                return item
        raise CodecError(f"tag {tag:X} not found in {self.tag:X}")

    def to_bytes(self, length_octets: int | None = None) -> bytes:
        """Re-encode with a minimal (or the given long-form) length."""
        return encode(self.tag, self.value, length_octets)

    @property
    def end(self) -> int:
        """Offset just past this object in the parsed buffer."""
        return self.offset + self.header_length + len(self.value)


def read_header(data: bytes, pos: int = 0) -> tuple[int, int, int]:
    """(tag, header length, value length) of the object at ``pos``; the value need not be there.

    Lets a reader learn an object's total size from its first few bytes.
    """
    tag, after_tag = _read_tag(data, pos)
    length, value_start = _read_length(data, after_tag)
    return tag, value_start - pos, length


def decode_one(data: bytes, pos: int = 0) -> Tlv:
    """Decode the object starting at ``pos``; bytes after it (filler) are ignored."""
    tag, after_tag = _read_tag(data, pos)
    length, value_start = _read_length(data, after_tag)
    end = value_start + length
    if end > len(data):
        left = len(data) - value_start
        raise CodecError(f"truncated TLV: tag {tag:X} needs {length} bytes, {left} left")
    return Tlv(tag, bytes(data[value_start:end]), pos, value_start - pos)


def iter_decode(data: bytes) -> Iterator[Tlv]:
    """Decode consecutive objects filling ``data`` exactly."""
    pos = 0
    while pos < len(data):
        item = decode_one(data, pos)
        yield item
        pos = item.end


def decode_all(data: bytes) -> list[Tlv]:
    """All consecutive objects in ``data``; raises :class:`CodecError` on any trailing junk."""
    return list(iter_decode(data))
