"""GET DATA (``00 CA``): card-level data objects, answered only at the issuer security domain.

card-facts §1.3: ``00F0`` municipality code, ``00F2`` expiry, ``5F51`` the contact ATR without TS;
absent objects (and any GET DATA while an AP is selected) answer ``6A88``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apdu import CommandApdu
from card_emulator.commands import replies as r

if TYPE_CHECKING:
    from card_emulator.chip import Chip


def get_data(chip: Chip, cmd: CommandApdu) -> bytes:
    """The object named by P1-P2, if the card holds it."""
    if cmd.data or cmd.le is None:
        return r.WRONG_LENGTH
    if chip.app is not None:
        return r.REFERENCED_DATA_NOT_FOUND
    value = chip.content.data_objects.get((cmd.p1 << 8) | cmd.p2)
    if value is None:
        return r.REFERENCED_DATA_NOT_FOUND
    if len(value) > cmd.le:
        return r.WRONG_LENGTH
    return value + r.OK
