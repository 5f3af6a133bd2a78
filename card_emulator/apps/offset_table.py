"""Constructed objects that open with a ``DF21`` table of file-relative offsets (§6.2, §7.2)."""

from __future__ import annotations

from apdu import tlv

OFFSET_TABLE_TAG = 0xDF21


def with_offset_table(tag: int, fields: list[bytes]) -> bytes:
    """``tag { DF21 <u16 offset of each field>, fields… }`` with offsets from the file start.

    The offsets move by one byte whenever the outer length needs one more octet (``81 LL`` once
    the body exceeds 127 bytes), which is what naive readers get wrong.
    """
    table_size = 3 + 2 * len(fields)
    body_size = table_size + sum(len(f) for f in fields)
    header = tlv.tag_bytes(tag) + tlv.encode_length(body_size)
    offsets = []
    position = len(header) + table_size
    for item in fields:
        offsets.append(position)
        position += len(item)
    table = tlv.encode(OFFSET_TABLE_TAG, b"".join(o.to_bytes(2, "big") for o in offsets))
    return header + table + b"".join(fields)


def read_offsets(data: bytes) -> list[int]:
    """The offsets in the ``DF21`` table of the object at the start of ``data``."""
    table = tlv.decode_one(data).child(OFFSET_TABLE_TAG).value
    return [int.from_bytes(table[i : i + 2], "big") for i in range(0, len(table), 2)]
