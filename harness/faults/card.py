"""The faulty card: any card object wrapped so that a :class:`~harness.faults.scenario.Scenario`'s
faults fire on the APDUs that match them, in process or behind a vpcd client."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apdu import CodecError, CommandApdu, Observer, TraceRecord
from harness.faults.scenario import SW_WRONG_LENGTH, Fault, Scenario
from harness.personas import card_from_persona
from readers.card_side.virtual_card import VirtualCard
from readers.card_side.vpcd import Removal, VpcdClient


class CardRemovedError(ConnectionError):
    """In-process: the card was pulled out (a fault of kind ``remove``)."""


class FaultyCard:
    """A card with faults injected; the same API as the card it wraps.

    In-process, a removal raises :class:`CardRemovedError` (for this and later commands until
    :meth:`insert`). Behind a :class:`VpcdClient` (``attach(client)``, or create the client with
    :meth:`vpcd_client`), the client is made to pull the card: the host sees the same as with
    ``VpcdClient.remove_on_apdu`` (an empty answer, then ``SCARD_W_REMOVED_CARD``).
    """

    def __init__(
        self,
        card: VirtualCard,
        scenario: Scenario | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_exchange: Observer | None = None,
    ) -> None:
        """``on_exchange`` gets a :class:`~apdu.TraceRecord` for every exchange and every
        power event (``power_on``, ``power_off``, ``reset``)."""
        self.card = card
        self.scenario = scenario or Scenario()
        self.rng = random.Random(self.scenario.seed)
        self.sleep = sleep
        self.on_exchange = on_exchange
        self.client: VpcdClient | None = None
        self.removed = False
        self.fired: list[tuple[int, str]] = []
        """(command number, fault kind) of every fault that fired."""
        self.commands = 0
        self._seen = [0] * len(self.scenario.faults)
        self._lock = threading.Lock()
        self._planned: tuple[bytes, list[Fault]] | None = None

    @classmethod
    def for_persona(
        cls, scenario: Scenario, persona: str | Path | None = None, **kwargs: Any
    ) -> FaultyCard:
        """A fresh card from ``persona`` (default demo) with ``scenario``'s counters, wrapped
        in its faults."""
        card = card_from_persona(persona, counters=dict(scenario.counters))
        return cls(card, scenario, **kwargs)

    # -- the card API ---------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        return self.scenario.atr if self.scenario.atr is not None else self.card.atr

    def power_on(self) -> None:
        self._event("power_on")
        self.card.power_on()

    def power_off(self) -> None:
        self._event("power_off")
        self.card.power_off()

    def reset(self) -> None:
        self._event("reset")
        self.card.reset()

    def close(self) -> None:
        close = getattr(self.card, "close", None)
        if callable(close):
            close()

    def credential(self, application: str, fid: int) -> Any:
        return self.card.credential(application, fid)  # type: ignore[attr-defined]

    def _event(self, name: str) -> None:
        if self.on_exchange is not None:
            self.on_exchange(TraceRecord.card_event(name))

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, client: VpcdClient) -> VpcdClient:
        """Serve through ``client``: removals pull the card out of its reader."""
        self.client = client
        return client

    def vpcd_client(self, port: int, host: str = "127.0.0.1", **kwargs: Any) -> VpcdClient:
        """A :class:`VpcdClient` serving this card, already attached."""
        return self.attach(VpcdClient(self, port, host, **kwargs))

    def insert(self) -> None:
        """Put a removed card back (in-process; behind vpcd use ``client.insert()`` too)."""
        self.removed = False

    # -- the faults -----------------------------------------------------------------------

    def _fires(self, index: int, fault: Fault, command: bytes) -> bool:
        if not fault.match.matches(command):
            return False
        if fault.kind == "extended":
            try:
                if not CommandApdu.parse(command).is_extended:
                    return False
            except CodecError:
                return False
        self._seen[index] += 1
        if fault.nth is not None:
            return self._seen[index] == fault.nth
        return fault.probability >= 1.0 or self.rng.random() < fault.probability

    def answer_delay(self, command: bytes) -> float:
        """Decide which faults fire on ``command`` (kept for the ``transmit`` that follows) and
        return the latency they add: behind a vpcd client a timer on the card loop, not a
        sleep (:class:`~readers.card_side.virtual_card.DelayingCard`)."""
        firing = self._decide(bytes(command))
        self._planned = (bytes(command), firing)
        return self._latency(firing)

    def transmit(self, command: bytes) -> bytes:
        started = time.time()
        t0 = time.perf_counter()
        response = self._transmit(bytes(command))
        if self.on_exchange is not None:
            duration = time.perf_counter() - t0
            self.on_exchange(TraceRecord(started, bytes(command), response, duration))
        return response

    def _decide(self, command: bytes) -> list[Fault]:
        """Count ``command`` and pick the faults that fire on it (recorded in :attr:`fired`)."""
        with self._lock:
            self.commands += 1
            number = self.commands
            firing = [
                fault
                for index, fault in enumerate(self.scenario.faults)
                if self._fires(index, fault, command)
            ]
        for fault in firing:
            self.fired.append((number, fault.kind))
        return firing

    def _latency(self, firing: list[Fault]) -> float:
        delay = 0.0
        for fault in firing:
            if fault.kind == "latency":
                jitter = self.rng.uniform(-fault.jitter, fault.jitter) if fault.jitter else 0.0
                delay += max(0.0, fault.seconds + jitter)
        return delay

    def _transmit(self, command: bytes) -> bytes:
        if self.removed:
            self._planned = None
            raise CardRemovedError("the card was removed from the reader")
        planned, self._planned = self._planned, None
        if planned is not None and planned[0] == command:
            firing = planned[1]  # decided (and waited for) in answer_delay
        else:
            firing = self._decide(command)
            delay = self._latency(firing)
            if delay:
                self.sleep(delay)
        removal = next((f for f in firing if f.kind == "remove"), None)
        if removal is not None and removal.when is Removal.BEFORE_PROCESSING:
            return self._pull(b"", before=True)
        if any(f.kind == "glitch" for f in firing):
            self._event("reset")
            self.card.reset()
        override = next((f for f in firing if f.kind in ("status", "extended")), None)
        if override is not None:
            response = override.sw or SW_WRONG_LENGTH
        else:
            response = self.card.transmit(command)
        truncate = next((f for f in firing if f.kind == "truncate"), None)
        if truncate is not None:
            keep = len(response) // 2 if truncate.keep is None else truncate.keep
            response = response[:keep]
        if removal is not None:
            lost = removal.when is Removal.AFTER_PROCESSING
            return self._pull(b"" if lost else response, before=lost)
        return response

    def _pull(self, response: bytes, *, before: bool) -> bytes:
        """Remove the card; in-process an answer that never arrives raises."""
        if self.client is not None:
            self.client.remove(wait=False)  # from the serving thread: after this answer
            return response
        self.removed = True
        if before:
            raise CardRemovedError("the card was removed while the command was sent")
        return response


def traced(card: VirtualCard, recorder: Observer, scenario: Scenario | None = None) -> FaultyCard:
    """``card`` (with ``scenario``'s faults, if any) giving every exchange and power event to
    ``recorder`` (e.g. a :class:`harness.traces.trace_file.TraceWriter`)."""
    return FaultyCard(card, scenario, on_exchange=recorder)
