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
from apdu.vocabulary import Juki
from card_emulator.apps.common import key_reference_records, pin_credential
from card_emulator.objects import Application

LAYOUTS = ("record", "binary")


def build(*, resident_code: str, pin: str, layout: str = "record") -> Application:
    """The 住基AP of one card."""
    if layout not in LAYOUTS:
        raise ValueError(f"juki layout must be one of {LAYOUTS}, not {layout!r}")
    app = Application(
        name="juki",
        aid=Juki.AID,
        label="住基AP",
        records={Juki.EF_KEY_REFERENCE: key_reference_records()},
        credentials={Juki.PIN: pin_credential(pin)},
    )
    code = resident_code.encode("ascii")
    if layout == "record":
        app.records[Juki.EF_RESIDENT_CODE] = [SimpleTlv(0x01, code).to_bytes()]
    else:
        app.files[Juki.EF_RESIDENT_CODE] = code
    return app
