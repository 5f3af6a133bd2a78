"""How the host-side client reaches a card: anything with ``transmit(bytes) -> bytes``.

The in-process transport wraps an emulated card directly; the PC/SC transport (pyscard) reaches
any card in a reader, real or emulated. Both record an optional masked trace.
"""

from __future__ import annotations

import time
from typing import Protocol

from apdu import Observer, TraceRecord


class Transport(Protocol):
    """Sends one command APDU and returns the response APDU (data ‖ SW1 SW2)."""

    def transmit(self, command: bytes) -> bytes:
        """Exchange one APDU."""
        ...


class CardLike(Protocol):
    """The one method of an emulated card a transport needs."""

    def transmit(self, command: bytes) -> bytes:
        """Exchange one APDU."""
        ...


class InProcessTransport:
    """Talks to an emulated card object in the same process (no PC/SC)."""

    def __init__(self, card: CardLike, on_exchange: Observer | None = None) -> None:
        self.card = card
        self.on_exchange = on_exchange

    def transmit(self, command: bytes) -> bytes:
        """Hand the command to the card."""
        if self.on_exchange is None:
            return self.card.transmit(command)
        started, start = time.time(), time.perf_counter()
        response = self.card.transmit(command)
        duration = time.perf_counter() - start
        self.on_exchange(TraceRecord(started, command, response, duration))
        return response
