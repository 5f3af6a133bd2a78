"""SELECT FILE (``00 A4``): application by AID, EF by FID, and the MF quirk."""

from __future__ import annotations

from apdu import CommandApdu, tlv
from apdu.vocabulary import ISSUER_SECURITY_DOMAIN_AID
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r
from card_emulator.objects import Application

# GlobalPlatform Issuer Security Domain: current at power-on; selecting it restores that state.


def select(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Dispatch on P1: ``04`` DF name, ``02`` EF under the current DF, ``00`` MF."""
    if cmd.p1 == 0x04:
        return _select_by_name(ctx, cmd)
    if cmd.p1 == 0x02:
        return _select_ef(ctx, cmd)
    if cmd.p1 == 0x00:
        return _select_mf(ctx, cmd)
    return r.INCORRECT_P1P2  # e.g. P1=09 (path): does not work on the card (card-facts §3.1)


def _find_application(ctx: CommandContext, name: bytes) -> Application | None:
    app = ctx.applications.get(name)
    if app is None and ctx.policy.aid_prefix_selection:
        app = next((a for a in ctx.applications.values() if a.aid.startswith(name)), None)
    return app


def _select_by_name(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    if cmd.p2 not in (0x00, 0x0C):
        return r.INCORRECT_P1P2
    if not cmd.data:
        return r.WRONG_LENGTH
    if cmd.data == ISSUER_SECURITY_DOMAIN_AID:
        ctx.state.reset()
        return r.OK
    app = _find_application(ctx, cmd.data)
    if app is None:
        return r.status(ctx.policy.unknown_aid_sw)
    ctx.state.select_application(app)
    if cmd.p2 == 0x00 and ctx.policy.select_returns_fci:
        # FCI content is not published (card-facts §15.5): answer a minimal template with the
        # DF name, which is what ISO clients look for.
        return tlv.encode(0x6F, tlv.encode(0x84, app.aid)) + r.OK
    return r.OK


def _select_ef(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    if cmd.p2 not in (0x00, 0x0C):
        return r.INCORRECT_P1P2
    if len(cmd.data) != 2:
        return r.WRONG_LENGTH
    app = ctx.state.app
    fid = int.from_bytes(cmd.data, "big")
    if app is None:
        # Under the MF only internal EFs exist (001E; card-facts §1.3): selectable, unreadable.
        if fid not in ctx.content.mf_files:
            return r.FILE_NOT_FOUND
    elif not app.has(fid):
        return r.FILE_NOT_FOUND
    ctx.state.select_file(fid)  # protected EFs, keys and IEFs are selectable without a credential
    return r.OK


def _select_mf(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    # card-facts §1.3: 00 A4 00 00 answers 6A86 right after reset and 9000 without changing
    # the current DF once an AP has been selected; 3F00 by FID answers 6A82.
    if cmd.data:
        return r.FILE_NOT_FOUND
    return r.OK if ctx.state.ap_was_selected else r.INCORRECT_P1P2
