"""A served card behind the one lock its reader and the console share.

A :class:`~card_emulator.Card` is not thread-safe. Behind vpcd, the card's serving thread
(:class:`~readers.card_side.vpcd.VpcdClient`) calls ``transmit``, ``atr`` and the power events;
the console acts from other threads (a web request). :class:`ControlledCard` is what the reader
holds: every call of the reader and every action of the console takes :attr:`ControlledCard.lock`
(re-entrant), so an action happens between two APDUs, never in the middle of one.

Rule for whoever holds the lock: never wait for the reader (``VpcdClient.insert`` / ``remove``)
while holding it — the serving thread may be waiting for the lock to finish an APDU, and the
removal would then wait for the serving thread.

Inside, the card can be wrapped in faults (a :class:`~harness.faults.FaultyCard`) or replaced by
another card (a persona switch); the reader keeps talking to the same proxy.

In process (no client attached), whoever calls :meth:`ControlledCard.transmit` stands in for the
reader: the proxy reports each exchange and power event to :attr:`ControlledCard.on_exchange`
itself and, while removed, refuses APDUs with :class:`~harness.faults.CardRemovedError`. Behind
a client, the client reports them, so each record arrives once.
"""

from __future__ import annotations

import threading
import time

from apdu import Observer, TraceRecord
from card_emulator import Card
from harness.faults import CardRemovedError, FaultyCard, Scenario
from readers.card_side.vpcd import VpcdClient


class ControlledCard:
    """The card a reader holds while the console may change it (see the module docstring)."""

    def __init__(
        self,
        card: Card,
        scenario: Scenario | None = None,
        *,
        reader: str = "",
        on_exchange: Observer | None = None,
    ) -> None:
        """``card`` wrapped, with ``scenario``'s faults if given (its counters are not applied
        here: the caller made the card with them)."""
        self.lock = threading.RLock()
        """Taken by every call of the reader and every change of the console."""
        self.reader = reader
        """The reader's name in the records reported in process."""
        self.on_exchange = on_exchange
        """In process only: gets every exchange and power event (see the module docstring)."""
        self.client: VpcdClient | None = None
        self._card = card
        self._faulty = FaultyCard(card, scenario) if scenario is not None else None
        self._inserted = True

    def __repr__(self) -> str:
        return f"<ControlledCard {self.reader or 'in process'}>"

    # -- what the console reads and changes (take :attr:`lock` around several steps) ----------

    @property
    def card(self) -> Card:
        """The emulated card inside (hold :attr:`lock` while using it)."""
        return self._card

    @property
    def faults(self) -> FaultyCard | None:
        """The faults wrapping the card, if any."""
        return self._faulty

    @property
    def inserted(self) -> bool:
        """Behind a client: its socket is connected. In process: not removed, by the console
        or by a fault of kind ``remove``."""
        client = self.client
        if client is not None:
            return client.connected
        with self.lock:
            return self._inserted and not (self._faulty is not None and self._faulty.removed)

    def set_inserted(self, inserted: bool) -> None:
        """In process: put the card in or take it out (behind a client, use the client)."""
        with self.lock:
            self._inserted = inserted
            if inserted and self._faulty is not None:
                self._faulty.insert()

    def set_faults(self, scenario: Scenario | None) -> None:
        """Wrap the card in ``scenario``'s faults (replacing any before); ``None`` unwraps it."""
        with self.lock:
            self._faulty = None if scenario is None else FaultyCard(self._card, scenario)
            if self._faulty is not None and self.client is not None:
                self._faulty.attach(self.client)

    def swap(self, card: Card) -> Card:
        """Put ``card`` in place of the card inside, without faults; returns the old card (the
        caller closes it)."""
        with self.lock:
            old, self._card, self._faulty = self._card, card, None
            return old

    # -- what a server needs -----------------------------------------------------------------

    def attach(self, client: VpcdClient) -> VpcdClient:
        """Served through ``client`` (``CardServer`` calls this): it reports the records, and
        faults of kind ``remove`` pull the card out through it."""
        with self.lock:
            self.client = client
            if self._faulty is not None:
                self._faulty.attach(client)
        return client

    def close(self) -> None:
        """Release the card inside (its image file, if any)."""
        with self.lock:
            self._card.close()

    # -- the reader's side: VirtualCard ------------------------------------------------------

    @property
    def atr(self) -> bytes:
        with self.lock:
            return self._front().atr

    def answer_delay(self, command: bytes) -> float:
        """The faults' latency for ``command`` (a timer on the card loop, not a sleep)."""
        if self._faulty is None:  # one attribute read: no lock to ask for none
            return 0.0
        with self.lock:
            faulty = self._faulty
            return faulty.answer_delay(command) if faulty is not None else 0.0

    def transmit(self, command: bytes) -> bytes:
        if self.client is not None:
            with self.lock:
                return self._front().transmit(command)
        started, start = time.time(), time.perf_counter()
        with self.lock:
            if not self._inserted:
                raise CardRemovedError("the card is not in the reader")
            response = self._front().transmit(command)
        duration = time.perf_counter() - start
        self._report(TraceRecord(started, bytes(command), response, duration, reader=self.reader))
        return response

    def power_on(self) -> None:
        with self.lock:
            self._front().power_on()
        self._report_event("power_on")

    def power_off(self) -> None:
        with self.lock:
            self._front().power_off()
        self._report_event("power_off")

    def reset(self) -> None:
        with self.lock:
            self._front().reset()
        self._report_event("reset")

    # -- internals -----------------------------------------------------------------------------

    def _front(self) -> Card | FaultyCard:
        return self._faulty if self._faulty is not None else self._card

    def _report_event(self, name: str) -> None:
        if self.client is None:
            self._report(TraceRecord.card_event(name, reader=self.reader))

    def _report(self, record: TraceRecord) -> None:
        observer = self.on_exchange
        if observer is not None and self.client is None:
            observer(record)
