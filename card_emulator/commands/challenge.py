"""GET CHALLENGE (``00 84``)."""

from __future__ import annotations

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r


def get_challenge(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Le random bytes (1-256); an extended Le is refused with ``6985`` (card-facts §1.1)."""
    if cmd.p1 or cmd.p2:
        return r.INCORRECT_P1P2
    if cmd.data or cmd.le is None:
        return r.WRONG_LENGTH
    if cmd.is_extended:
        return r.CONDITIONS_NOT_SATISFIED
    return ctx.random_bytes(cmd.le) + r.OK
