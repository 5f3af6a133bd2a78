"""Secure messaging on the card side: SET SESSION KEY (``80 AE``) and ``CLA 08`` commands.

The 券面事項入力補助AP is the only AP with key delivery (myna-card ``src/sm.rs`` and
``src/ap/text.rs``, measured on real cards):

* SET SESSION KEY needs the AP's PIN verified (the ``session_key`` access rule; 照合番号A is not
  enough) → ``6982``; a cryptogram at or above the modulus → ``6F00``; one that does not decrypt
  to ``A0 22 80 20 <seed>`` → ``6A80``. Other APs answer a fixed status word
  (:attr:`CardPolicy.set_session_key_sw`: JPKI-AP and 住基AP ``6982``, 券面AP and common AP
  ``66F1``).
* In a session, ``CLA 08`` SELECT FILE and VERIFY carry ``86 L 01 ‖ ciphertext`` and READ BINARY
  ``96 03 00 ‖ length``; the answer's data comes back as ``86 L 01 ‖ ciphertext``. Every command
  the SM layer accepts advances the message counter, also when the AP then refuses it.
* A bad object or counter (padding that does not check) → ``6988`` and the session is
  destroyed: every later SM command answers ``69FC`` until an AP is selected again.
  ``CLA 0C`` (authenticated header) → ``6987``.
* Outside a session: SELECT FILE with an SM class → ``6882``, anything else → ``69FC``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import CodecError, CommandApdu
from apdu import secure_messaging as sm
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r
from card_emulator.security_state import SmSession

SM_SELECT = 0xA4
SM_VERIFY = 0x20
SM_READ_BINARY = 0xB0
_CARRIES_CRYPTOGRAM = frozenset({SM_SELECT, SM_VERIFY})
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_READ_TO_END = 65536


def set_session_key(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Deliver a session key under the AP's key-delivery key (text AP), or refuse."""
    state = ctx.state
    app = state.app
    key = app.session_key if app is not None else None
    if key is None:
        return r.status(ctx.policy.session_key_refusal(app.name if app is not None else "mf"))
    if cmd.p1 or cmd.p2:
        return r.INCORRECT_P1P2
    condition = state.rules.session_key
    if condition is None or not condition.opens(state.verified):
        return r.SECURITY_NOT_SATISFIED
    private_key = key.private_key
    if not isinstance(private_key, rsa.RSAPrivateKey):  # key delivery is RSA-OAEP only
        return r.CONDITIONS_NOT_SATISFIED
    size = (private_key.key_size + 7) // 8
    if len(cmd.data) != size:
        return r.WRONG_LENGTH
    if int.from_bytes(cmd.data, "big") >= private_key.public_key().public_numbers().n:
        return r.NO_DIAGNOSIS
    try:
        message = private_key.decrypt(cmd.data, _OAEP)
    except ValueError:
        return r.WRONG_DATA
    session_key = sm.session_key_from_delivery(message)
    if session_key is None:
        return r.WRONG_DATA
    state.open_session(session_key)
    return r.OK


def process(ctx: CommandContext, raw: bytes) -> bytes:
    """A command with a secure-messaging class byte (``raw`` has at least 4 bytes)."""
    cla, ins = raw[0], raw[1]
    session = ctx.state.sm
    if session is None:
        policy = ctx.policy
        return r.status(policy.sm_select_refused_sw if ins == SM_SELECT else policy.sm_refused_sw)
    if session.broken:
        return r.status(ctx.policy.sm_refused_sw)
    if cla & 0x0C == 0x0C:
        session.destroy()
        return r.SM_DATA_OBJECT_MISSING
    try:
        if cla != sm.CLA_SM:
            raise sm.SecureMessagingError(f"class {cla:02X} is not secure messaging for this AP")
        plain = _unwrap(session, CommandApdu.parse(raw))
    except CodecError:  # SecureMessagingError included
        session.destroy()
        return r.SM_DATA_OBJECT_INCORRECT
    counter = session.advance()
    response = ctx.run(plain)
    data, status = response[:-2], response[-2:]
    if not data:
        return status
    return sm.cryptogram_object(sm.encrypt(session.key, counter, data)) + status


def _unwrap(session: SmSession, cmd: CommandApdu) -> CommandApdu:
    """The plain command inside an SM command, or :class:`~apdu.secure_messaging` errors."""
    if cmd.ins in _CARRIES_CRYPTOGRAM:
        ciphertext = sm.parse_cryptogram(cmd.data)
        data = sm.decrypt(session.key, session.counter, ciphertext)
        return CommandApdu(0x00, cmd.ins, cmd.p1, cmd.p2, data)
    if cmd.ins == SM_READ_BINARY:
        length = sm.parse_expected_length(cmd.data)
        return CommandApdu(0x00, cmd.ins, cmd.p1, cmd.p2, le=length or _READ_TO_END)
    raise sm.SecureMessagingError(f"INS {cmd.ins:02X} is not available under secure messaging")
