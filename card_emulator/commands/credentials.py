"""VERIFY (``00 20``), CHANGE REFERENCE DATA (``00 24``) and JICSAP CHANGE KEY (``80 32``).

PIN semantics (card-facts §3.4, DESIGN.md): an empty VERIFY always answers ``63Cx`` (also when
verified; ``63C0`` when blocked); a wrong value answers ``63C(x-1)``; the exhausting try answers
``63C0``; afterwards ``6984``; success resets the counter. Values are compared byte for byte (no
case folding), in constant time.

Fail-safe, as a card operating system does it: the counter is lowered **durably before** the
comparison and restored only after a success, so neither a kill at any instant nor a storage
failure ever gives back a try. When the store cannot write, the answer is ``6581`` (memory
failure) whether the value was right or wrong, memory keeps what the store holds, and every
credential command answers ``6581`` until the card is reopened. A CHANGE is live only once
stored.
"""

from __future__ import annotations

import hmac
from dataclasses import replace

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r
from card_emulator.objects import ChangeCommand, Credential


def resolve_credential(ctx: CommandContext, p2: int) -> Credential | bytes:
    """The IEF named by P2: ``80`` = the current EF, ``80|SFI`` = that IEF; else an error reply."""
    state = ctx.state
    app = state.app
    if p2 == 0x80:
        if app is None or state.ef is None:
            return r.NO_CURRENT_EF
        credential = app.credentials.get(state.ef)
        return r.INCOMPATIBLE_FILE if credential is None else credential
    if p2 & 0x80 and p2 & 0x1F and not p2 & 0x60:
        credential = app.credentials.get(p2 & 0x1F) if app is not None else None
        return r.REFERENCED_DATA_NOT_FOUND if credential is None else credential
    return r.INCORRECT_P1P2


def verify(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Check a PIN, or report the retry counter when the data field is empty."""
    if cmd.p1 != 0x00:
        return r.INCORRECT_P1P2
    credential = resolve_credential(ctx, cmd.p2)
    if isinstance(credential, bytes):
        return credential
    if ctx.storage_failed:
        return r.MEMORY_FAILURE
    if not cmd.data:
        return r.retries(credential.remaining)
    if credential.blocked:
        return r.BLOCKED
    if len(cmd.data) != len(credential.value) and not ctx.policy.wrong_length_pin_counts:
        return r.WRONG_LENGTH
    before = credential.remaining
    credential.remaining = before - 1
    if not ctx.persist(credential):  # the try is spent on disk before anything is compared
        credential.remaining = before
        return r.MEMORY_FAILURE
    if hmac.compare_digest(cmd.data, credential.value):
        credential.remaining = credential.max_tries
        if not ctx.persist(credential):
            credential.remaining = before - 1  # what the store holds
            return r.MEMORY_FAILURE
        ctx.state.mark_verified(credential.fid)
        return r.OK
    if ctx.policy.failed_verify_clears_state:
        ctx.state.forget(credential.fid)
    return r.retries(credential.remaining)


def _change(ctx: CommandContext, cmd: CommandApdu, p1: int, command: ChangeCommand) -> bytes:
    if cmd.p1 != p1:
        return r.INCORRECT_P1P2
    credential = resolve_credential(ctx, cmd.p2)
    if isinstance(credential, bytes):
        return credential
    if ctx.storage_failed:
        return r.MEMORY_FAILURE
    if credential.change is not command:
        return r.CONDITIONS_NOT_SATISFIED
    if credential.blocked:
        return r.BLOCKED
    if credential.fid not in ctx.state.verified:
        return r.SECURITY_NOT_SATISFIED
    if not credential.format.accepts(cmd.data):
        return r.WRONG_DATA
    if not ctx.persist(replace(credential, value=bytes(cmd.data))):
        return r.MEMORY_FAILURE  # not stored, so not live
    credential.value = bytes(cmd.data)
    return r.OK


def change_reference_data(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """``00 24 01 80 Lc <new>`` after a successful VERIFY of the same IEF."""
    return _change(ctx, cmd, 0x01, ChangeCommand.CHANGE_REFERENCE_DATA)


def change_key(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """``80 32 00 80 Lc <new>`` after a successful VERIFY (the ``001C`` PINs)."""
    return _change(ctx, cmd, 0x00, ChangeCommand.CHANGE_KEY)
