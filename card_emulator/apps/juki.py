"""住基AP, ``D3 92 10 00 31 00 01 01 04 01`` — card-facts §8.2.

What is public: the official purpose of the 住民基本台帳用 PIN is "to use the 住民票コード as text
data"; one source saw a record-structured EF ``0002`` holding a 16-byte key reference (the same as
the common AP's, readable with no credential), PIN IEF ``001C`` (4 digits, 3 tries) and CHANGE KEY
``80 32 00 80``. No public reader reads the 住民票コード.

OUR CHOICE (not from any source), overridable per persona with ``card.juki_layout``:

* ``"record"`` (default): EF ``0001`` is record-structured; record 1 is the simple-TLV
  ``01 0B`` + the 11 ASCII digits of the 住民票コード, read with READ RECORD.
* ``"binary"``: EF ``0001`` is transparent and holds the 11 ASCII digits, read with READ BINARY.

Either way EF ``0001`` opens only after VERIFY of ``001C`` (see ``access_rules.toml``, also
overridable per persona).
"""

from __future__ import annotations

from apdu.simple_tlv import SimpleTlv

LAYOUTS = ("record", "binary")


def resident_code_content(resident_code: str, layout: str = "record") -> bytes | list[bytes]:
    """EF ``0001``: one record ``01 0B`` + the 11 digits, or the bare digits (``binary``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"juki layout must be one of {LAYOUTS}, not {layout!r}")
    code = resident_code.encode("ascii")
    return [SimpleTlv(0x01, code).to_bytes()] if layout == "record" else code
