"""READ RECORD (``00 B2``) for record-structured EFs (common AP EF ``0001``, card-facts §3.3)."""

from __future__ import annotations

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r

RECORD_NUMBER_IN_P1 = 0x04
RECORDS_FROM_P1 = 0x05


def read_record(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Record P1 of the current EF (P2 ``04``) or of EF ``SFI`` (P2 ``SFI<<3 | 04``)."""
    if cmd.data or cmd.le is None:
        return r.WRONG_LENGTH
    state = ctx.state
    app = state.app
    sfi, mode = cmd.p2 >> 3, cmd.p2 & 0x07
    if app is None and (sfi or state.ef) in ctx.content.mf_files:
        return r.INCOMPATIBLE_FILE  # MF 001E: an internal EF (card-facts §1.3)
    if mode == RECORDS_FROM_P1:
        return r.FUNCTION_NOT_SUPPORTED  # "records P1 to last" (card-facts §3.3)
    if mode != RECORD_NUMBER_IN_P1 or sfi == 0x1F or cmd.p1 == 0:
        return r.INCORRECT_P1P2
    if sfi:
        if app is None or not app.has(sfi):
            return r.FILE_NOT_FOUND
        state.select_file(sfi)
        fid = sfi
    elif app is None or state.ef is None:
        return r.NO_CURRENT_EF
    else:
        fid = state.ef
    records = app.records.get(fid)
    if records is None:  # a transparent EF, key or IEF
        return r.INCOMPATIBLE_FILE
    if not state.rules.read_condition(fid).opens(state.verified):
        return r.SECURITY_NOT_SATISFIED
    if cmd.p1 > len(records):
        return r.RECORD_NOT_FOUND
    return records[cmd.p1 - 1][: cmd.le] + r.OK
