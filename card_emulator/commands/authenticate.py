"""INTERNAL AUTHENTICATE (``00 88 00 80|SFI``), card-facts §3.7.

Only the common AP's key ``0019`` answers: PKCS#1 v1.5 over DigestInfo(SHA-256(challenge)),
deterministic. JPKI keys answer ``6982`` (they sit behind a PIN) and the 券面 signing keys
``6985``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r
from card_emulator.commands.sign import MAX_HASHED_INPUT, resolve_key, sign_ec
from card_emulator.objects import KeyUse


def internal_authenticate(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Sign the challenge with an internal-authentication key."""
    if cmd.p1 != 0x00 or cmd.p2 == 0x00:
        return r.INCORRECT_P1P2
    key = resolve_key(ctx, cmd.p2)
    if isinstance(key, bytes):
        return key
    if key.use is KeyUse.SIGN:
        return r.SECURITY_NOT_SATISFIED
    if key.use is not KeyUse.INTERNAL_AUTHENTICATE:
        return r.CONDITIONS_NOT_SATISFIED
    state = ctx.state
    if not state.rules.use_condition(key.fid).opens(state.verified):
        return r.SECURITY_NOT_SATISFIED
    if not 1 <= len(cmd.data) <= MAX_HASHED_INPUT:
        return r.WRONG_LENGTH
    private_key = key.private_key
    if isinstance(private_key, ec.EllipticCurvePrivateKey):  # next-generation card: a GUESS
        return sign_ec(ctx, private_key, 0x01, cmd.data)
    return private_key.sign(cmd.data, padding.PKCS1v15(), hashes.SHA256()) + r.OK
