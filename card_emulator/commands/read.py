"""READ BINARY (``00 B0``), offset and short-EF-identifier forms."""

from __future__ import annotations

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r


def read_binary(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Return up to Le bytes from the offset (to the end of the file at most)."""
    if cmd.data or cmd.le is None:
        return r.WRONG_LENGTH
    state = ctx.state
    app = state.app
    if cmd.p1 & 0x80:
        if cmd.p1 & 0x60 or not cmd.p1 & 0x1F:
            return r.INCORRECT_P1P2
        fid, offset = cmd.p1 & 0x1F, cmd.p2
        if app is None:
            return r.INCOMPATIBLE_FILE if fid in ctx.content.mf_files else r.FILE_NOT_FOUND
        if not app.has(fid):
            return r.FILE_NOT_FOUND
        state.select_file(fid)  # READ BINARY by SFI makes the EF current (ISO 7816-4)
    else:
        if state.ef is None:
            return r.NO_CURRENT_EF
        if app is None:  # an internal EF of the MF
            return r.INCOMPATIBLE_FILE
        fid, offset = state.ef, (cmd.p1 << 8) | cmd.p2
    content = app.files.get(fid)
    if content is None:  # a record EF, key or IEF
        return r.INCOMPATIBLE_FILE
    if not state.rules.read_condition(fid).opens(state.verified):
        return r.SECURITY_NOT_SATISFIED
    if offset >= len(content):
        return r.WRONG_OFFSET
    return content[offset : offset + cmd.le] + r.OK
