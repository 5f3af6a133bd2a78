"""Proprietary commands a physical card knows but refuses: ``80 FC`` and ``80 A2``.

* ``80 FC 00 00`` (last-command indicator of the iPhone JPKI token): a physical card answers
  ``6700`` (myna-card ``card.rs``), :attr:`CardPolicy.last_command_indicator_sw`.
* ``80 A2`` SET PUBLIC IC KEY takes a terminal's CV certificate and checks it against JPKI key
  reference ``0016``: P1-P2 ``00 00`` / ``00 AE`` / ``80 00`` / ``00 B6`` answer ``6A86``
  (myna-card); ``00 C1`` with 256 bytes that are no certificate answers ``6700`` (jsapdu's
  test expectation). This card holds no terminal CA, so a well-formed certificate cannot verify:
  ``6A80`` (our choice).
"""

from __future__ import annotations

from apdu import CodecError, CommandApdu, tlv
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r

SET_PUBLIC_IC_KEY_P1P2 = 0x00C1
TERMINAL_CERTIFICATE_BODY = 307
"""Body (``5F4E``) length of a terminal CV certificate (myna-card ``card.rs``)."""


def last_command_indicator(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """``80 FC``: not part of the physical card's profile."""
    return r.status(ctx.policy.last_command_indicator_sw)


def set_public_ic_key(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """``80 A2 00 C1 <terminal CV certificate>``: nothing here can verify one."""
    if (cmd.p1 << 8) | cmd.p2 != SET_PUBLIC_IC_KEY_P1P2:
        return r.INCORRECT_P1P2
    if not _is_terminal_certificate(cmd.data):
        return r.WRONG_LENGTH
    return r.WRONG_DATA


def _is_terminal_certificate(data: bytes) -> bool:
    try:
        outer = tlv.decode_one(data)
        if outer.tag != 0x7F21 or outer.end != len(data):
            return False
        children = outer.children()
    except CodecError:
        return False
    tags = [child.tag for child in children]
    return tags == [0x5F4E, 0x5F37] and len(children[0].value) == TERMINAL_CERTIFICATE_BODY
