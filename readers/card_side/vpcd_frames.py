"""vpcd's wire format, card side: length-prefixed frames and what a card answers to each.

Every message, both ways, is a 2-byte big-endian length and a payload. A 1-byte payload from
vpcd is a control message (``00`` power off, ``01`` power on, ``02`` reset: no reply; ``04``
"send your ATR": reply the ATR); any longer payload is a C-APDU, answered with the R-APDU.

Speed: Debian's vpcd 0.8 writes the length and the payload with two ``send()`` calls on a
socket without ``TCP_NODELAY``; the payload then waits for our delayed ACK and every APDU costs
44 ms. Re-arming ``TCP_QUICKACK`` before every ``recv`` removes the stall (about 0.1 ms per
round trip); the card loop re-arms it before each read and after each answer. The client also
sets ``TCP_NODELAY``, and each reply goes out with one ``send``.
"""

from __future__ import annotations

import logging
import socket

from readers.card_side.virtual_card import VirtualCard

__all__ = [
    "CTRL_ATR",
    "CTRL_POWER_OFF",
    "CTRL_POWER_ON",
    "CTRL_RESET",
    "apply_control",
    "execute",
]

log = logging.getLogger("readers.card_side.vpcd")

CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04

CONTROL_EVENTS = {CTRL_POWER_OFF: "power_off", CTRL_POWER_ON: "power_on", CTRL_RESET: "reset"}
SW_NO_DIAGNOSIS = b"\x6f\x00"
MAX_FRAME = 0xFFFF
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def apply_control(card: VirtualCard, code: int, owner: object) -> str | None:
    """Power off, power on or reset ``card`` (an exception of the card is logged); the name
    of the event, or ``None`` for an unknown control byte."""
    event = CONTROL_EVENTS.get(code)
    if event is None:
        log.debug("%r: ignoring unknown control byte %02X", owner, code)
        return None
    try:
        getattr(card, event)()
    except Exception:
        log.exception("%r: card.%s() raised", owner, event)
    return event


def execute(card: VirtualCard, command: bytes, owner: object) -> bytes:
    """The card's answer to ``command``; ``6F00`` when the card raises or the answer does not
    fit a frame."""
    try:
        response = card.transmit(command)
    except Exception:
        log.exception("%r: card raised on %s", owner, command[:4].hex())
        response = SW_NO_DIAGNOSIS
    if len(response) > MAX_FRAME:
        log.error("%r: %d-byte response does not fit a vpcd frame", owner, len(response))
        response = SW_NO_DIAGNOSIS
    return response
