"""GET DATA (``00 CA``): card-level data objects, answered only at the issuer security domain.

card-facts §1.3 and myna-card ``mf.rs``: ``0042`` issuer key reference, ``0045`` card
identification number, ``0066`` card recognition data, ``00F0`` municipality code, ``00F2`` expiry,
``00F7`` key ID of the intermediate, ``00F8`` and ``7F21`` the CV certificate chain (template
contents, no ``7F21`` header), ``5F51`` the contact ATR without TS. A short Le too small for an
object answers ``6700`` (the card does not report the length: ask again with an extended Le).
Absent objects answer ``6A88``, and so does any GET DATA while an AP is selected, except ``5F51``
(:attr:`CardPolicy.atr_object_in_applications`).
"""

from __future__ import annotations

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r

ATR_TAG = 0x5F51


def get_data(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """The object named by P1-P2, if the card holds it."""
    if cmd.data or cmd.le is None:
        return r.WRONG_LENGTH
    tag = (cmd.p1 << 8) | cmd.p2
    if ctx.state.app is not None and not (tag == ATR_TAG and ctx.policy.atr_object_in_applications):
        return r.REFERENCED_DATA_NOT_FOUND
    value = ctx.content.data_objects.get(tag)
    if value is None:
        return r.REFERENCED_DATA_NOT_FOUND
    if len(value) > cmd.le:
        return r.WRONG_LENGTH
    return value + r.OK
