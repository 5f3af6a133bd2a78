"""The card as the transports see it, plus a tiny echo card for tests and benchmarks.

Every transport in :mod:`readers` (the vpcd client, in-process use, later the vicc adapter)
drives one object shaped like :class:`VirtualCard`. ``card_emulator.Card`` satisfies it
structurally; nothing here imports the chip.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ECHO_ATR", "DelayingCard", "EchoCard", "VirtualCard"]


@runtime_checkable
class VirtualCard(Protocol):
    """What a transport needs from a card.

    ``transmit`` takes one complete C-APDU and returns the complete R-APDU (data ‖ SW1 SW2).
    It must never raise for a malformed or unsupported APDU: it answers with a status word
    instead. Power and reset calls come from the reader (pcscd powers cards off and on by
    itself); they must reset volatile state only, never the persistent card.
    """

    @property
    def atr(self) -> bytes: ...

    def transmit(self, command: bytes) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...


@runtime_checkable
class DelayingCard(Protocol):
    """A card that may answer late (a latency fault) without blocking its transport.

    The vpcd client calls ``answer_delay(command)`` right before ``transmit(command)``: a
    positive result is how many seconds to wait first — a timer on the card loop, so the other
    cards are served meanwhile. The card may keep what it decided for the ``transmit`` that
    follows (it then must not wait again there).
    """

    def answer_delay(self, command: bytes) -> float: ...


def _tck(body: bytes) -> int:
    check = 0
    for byte in body:
        check ^= byte
    return check


_ECHO_BODY = bytes([0x88, 0x01]) + b"MYNAECHO"  # T0: TD1 + 8 historical bytes; TD1: T=1
#: ATR of :class:`EchoCard`: 3B 88 01 "MYNAECHO" TCK — T=1 only, so TCK is present.
ECHO_ATR = bytes([0x3B]) + _ECHO_BODY + bytes([_tck(_ECHO_BODY)])

_SW_OK = b"\x90\x00"
_SW_WRONG_LENGTH = b"\x67\x00"
_MAX_RESPONSE_DATA = 0xFFFF - 2  # vpcd frames are at most 65535 bytes including SW1 SW2
_RAMP = bytes(range(256)) * (_MAX_RESPONSE_DATA // 256 + 2)


def _split(command: bytes) -> tuple[bytes, int] | None:
    """Data field and Ne of a C-APDU (ISO 7816-4 cases 1-4, short and extended).

    Returns None when the length bytes do not add up. Ne is 0 when no Le is present.
    """
    body = command[4:]
    size = len(body)
    if size == 0:  # case 1
        return b"", 0
    if size == 1:  # case 2 short
        return b"", body[0] or 256
    if body[0] != 0:  # short Lc
        lc = body[0]
        if size == 1 + lc:  # case 3 short
            return body[1:], 0
        if size == 2 + lc:  # case 4 short
            return body[1 : 1 + lc], body[-1] or 256
        return None
    if size == 3:  # case 2 extended: 00 Le1 Le2
        return b"", ((body[1] << 8) | body[2]) or 65536
    if size < 3:
        return None
    lc = (body[1] << 8) | body[2]
    if lc == 0:
        return None
    if size == 3 + lc:  # case 3 extended
        return body[3:], 0
    if size == 5 + lc:  # case 4 extended
        le = (body[-2] << 8) | body[-1]
        return body[3 : 3 + lc], le or 65536
    return None


class EchoCard:
    """A card with no file system, for transport tests and benchmarks.

    * SELECT (INS A4) → ``9000``
    * READ BINARY (INS B0) → Ne bytes + ``9000``; byte i is ``(P1P2 + i) & 0xFF``, so chunked
      reads at increasing offsets join into one continuous ramp
    * anything else (4 bytes or more) → the command's data field echoed + ``9000``
    * shorter than 4 bytes, or inconsistent Lc / Le → ``6700``

    It counts power events so tests can see the reader's control messages arrive.
    """

    def __init__(self, atr: bytes = ECHO_ATR) -> None:
        self._atr = bytes(atr)
        self.powered = False
        self.power_ons = 0
        self.resets = 0
        self.apdus = 0

    @property
    def atr(self) -> bytes:
        return self._atr

    def power_on(self) -> None:
        self.powered = True
        self.power_ons += 1

    def power_off(self) -> None:
        self.powered = False

    def reset(self) -> None:
        self.powered = True
        self.resets += 1

    def transmit(self, command: bytes) -> bytes:
        self.apdus += 1
        if len(command) < 4:
            return _SW_WRONG_LENGTH
        parts = _split(command)
        if parts is None:
            return _SW_WRONG_LENGTH
        data, ne = parts
        ins = command[1]
        if ins == 0xA4:
            return _SW_OK
        if ins == 0xB0:
            start = command[3]  # (P1P2 + i) & 0xFF only depends on P2
            return _RAMP[start : start + min(ne, _MAX_RESPONSE_DATA)] + _SW_OK
        return data + _SW_OK
