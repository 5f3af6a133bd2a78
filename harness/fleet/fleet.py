"""One process serving a card to each kiosk of a fleet (the kiosks' vpcd endpoints).

Each kiosk gets a :class:`~harness.card_server.CardServer` of its own (one card, one endpoint)
and a supervising thread:

* the card is inserted into the kiosk's vpcd; while vpcd listens, nothing else happens;
* when vpcd closes the connection (the kiosk's pcscd restarted), the card goes back in as soon
  as vpcd listens again, retrying with backoff for ``reconnect_timeout`` seconds (state
  ``reconnecting``);
* a kiosk that cannot be reached (at start, or not back within ``reconnect_timeout``) is
  reported by name on stderr and tried again with backoff (1 s doubling to ``retry_max``),
  with a fresh card made from its persona — or its durable image, which keeps its state.

Every state change prints one status line on stdout, ``kiosk NAME (HOST:PORT): STATE — detail``;
a table of every kiosk's line is printed every ``status_interval`` seconds and on SIGUSR1.
The fleet holds no state of its own apart from the card images: the orchestrator scales it out.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from apdu import TraceRecord
from harness.card_server import CardServer, Endpoint, ServableCard
from harness.fleet.config import FleetConfig, KioskConfig

__all__ = ["Fleet", "KioskState", "KioskStatus", "make_card"]

RETRY_FIRST = 1.0
"""Seconds before the first new attempt at an unreachable kiosk (then doubling)."""


class KioskState(enum.Enum):
    """Where a kiosk's card is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    UNREACHABLE = "unreachable"
    STOPPED = "stopped"


@dataclass
class KioskStatus:
    """One kiosk's state, for its status line."""

    kiosk: KioskConfig
    state: KioskState = KioskState.CONNECTING
    detail: str = ""
    since: float = field(default_factory=time.monotonic)
    apdus: int = 0
    reconnections: int = 0
    failures: int = 0
    retry: float | None = None
    """Seconds until the next attempt at an unreachable kiosk."""

    def line(self, now: float | None = None) -> str:
        """``kiosk NAME (HOST:PORT): STATE for Ns, N APDUs, N reconnections — detail``."""
        age = (time.monotonic() if now is None else now) - self.since
        text = (
            f"kiosk {self.kiosk.name} ({self.kiosk.where}): {self.state.value} for {age:.0f} s, "
            f"{self.apdus} APDUs, {self.reconnections} reconnections"
        )
        if self.detail:
            text = f"{text} — {self.detail}"
        if self.retry is not None and self.state is KioskState.UNREACHABLE:
            text = f"{text} (next attempt in {self.retry:g} s)"
        return text


def _scenario_card(kiosk: KioskConfig) -> ServableCard:
    from harness.conformance.catalogue import load_catalogue  # noqa: PLC0415 - cold start
    from harness.default_pki import shared_card  # noqa: PLC0415
    from harness.faults import FaultyCard, Scenario  # noqa: PLC0415
    from harness.personas import card_from_persona  # noqa: PLC0415

    assert kiosk.scenario is not None
    by_name = {entry.name: entry for entry in load_catalogue()}
    entry = by_name.get(kiosk.scenario)
    if entry is not None:
        card = card_from_persona(
            kiosk.persona, **dict(entry.persona), counters=dict(entry.card.counters)
        )
        return FaultyCard(card, entry.card)
    faults = Scenario.load(kiosk.scenario)
    if kiosk.image is not None:
        return FaultyCard(shared_card(kiosk.persona, image=kiosk.image), faults)
    return FaultyCard(
        card_from_persona(kiosk.persona, counters=dict(faults.counters)),
        faults,
    )


def make_card(kiosk: KioskConfig) -> ServableCard:
    """The card ``kiosk`` gets: its persona's (a fresh one each time), its durable image, and
    its scenario's faults when it has one."""
    from harness.default_pki import shared_card  # noqa: PLC0415 - cold start

    if kiosk.scenario is not None:
        return _scenario_card(kiosk)
    return shared_card(kiosk.persona, image=kiosk.image)


class Fleet:
    """Serves a card to every kiosk of ``config`` until :meth:`stop`."""

    def __init__(
        self,
        config: FleetConfig,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        card_factory: Callable[[KioskConfig], ServableCard] = make_card,
        on_exchange: Callable[[TraceRecord], None] | None = None,
    ) -> None:
        self.config = config
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.card_factory = card_factory
        self.on_exchange = on_exchange
        self.status = {kiosk.name: KioskStatus(kiosk) for kiosk in config.kiosks}
        self._lock = threading.Lock()  # status and printing
        self._cards_lock = threading.Lock()  # card making (the shared PKI) one at a time
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.first_round = threading.Event()
        """Set once every kiosk was tried once (connected or reported unreachable)."""
        self._tried: set[str] = set()

    # -- output -------------------------------------------------------------------------------

    def _print(self, text: str, *, error: bool = False) -> None:
        stream = self.err if error else self.out
        print(text, file=stream, flush=True)

    def _set(
        self,
        kiosk: KioskConfig,
        state: KioskState,
        detail: str = "",
        retry: float | None = None,
        *,
        problem: str = "cannot be reached",
    ) -> None:
        """Record a state; a change prints the kiosk's status line (and, for an unreachable
        kiosk, ``kiosk NAME (WHERE) <problem>: <detail>`` on stderr). The same error again
        only updates the retry."""
        with self._lock:
            status = self.status[kiosk.name]
            status.retry = retry
            if status.state is state and status.detail == detail:
                return
            status.state, status.detail, status.since = state, detail, time.monotonic()
            if state is KioskState.UNREACHABLE:
                status.failures += 1
            self._print(status.line())
            if state is KioskState.UNREACHABLE:
                self._print(
                    f"mynacard fleet: kiosk {kiosk.name} ({kiosk.where}) {problem}: {detail}",
                    error=True,
                )
            if state in (KioskState.CONNECTED, KioskState.UNREACHABLE):
                self._tried.add(kiosk.name)
            self._check_ready()

    def _check_ready(self) -> None:
        if len(self._tried) < len(self.status) or self.first_round.is_set():
            return
        self.first_round.set()
        connected = self.counts().get(KioskState.CONNECTED, 0)
        self._print(f"fleet ready: {connected}/{len(self.status)} kiosks connected")

    def counts(self) -> dict[KioskState, int]:
        """How many kiosks are in each state."""
        counts: dict[KioskState, int] = {}
        for status in self.status.values():
            counts[status.state] = counts.get(status.state, 0) + 1
        return counts

    def status_lines(self) -> list[str]:
        """A summary line, then one line per kiosk."""
        with self._lock:
            now = time.monotonic()
            summary = ", ".join(f"{n} {state.value}" for state, n in self.counts().items())
            return [
                f"fleet: {len(self.status)} kiosks: {summary}",
                *(status.line(now) for status in self.status.values()),
            ]

    def print_status(self) -> None:
        """Print :meth:`status_lines`."""
        lines = self.status_lines()
        with self._lock:
            self._print("\n".join(lines))

    # -- serving ------------------------------------------------------------------------------

    def _observer(self, kiosk: KioskConfig) -> Callable[[TraceRecord], None]:
        status = self.status[kiosk.name]

        def observe(record: TraceRecord) -> None:
            if record.event == "remove" and not self._stop.is_set():
                self._set(kiosk, KioskState.RECONNECTING, "vpcd closed the connection")
            elif record.event == "insert" and status.state is KioskState.RECONNECTING:
                status.reconnections += 1
                self._set(kiosk, KioskState.CONNECTED, "back in the reader")
            elif not record.event:
                status.apdus += 1
            if self.on_exchange is not None:
                self.on_exchange(record)

        return observe

    def _new_card(self, kiosk: KioskConfig) -> ServableCard:
        with self._cards_lock:
            return self.card_factory(kiosk)

    def _serve_kiosk(self, kiosk: KioskConfig) -> None:
        delay = RETRY_FIRST
        netns = None if kiosk.netns is None else str(kiosk.netns)
        endpoint = Endpoint(
            kiosk.host, kiosk.port, None, None if netns is None else (lambda: netns)
        )
        while not self._stop.is_set():
            try:
                card = self._new_card(kiosk)
            except Exception as exc:  # e.g. an image another process holds
                self._set(
                    kiosk,
                    KioskState.UNREACHABLE,
                    f"card not made: {exc}",
                    delay,
                    problem="has no card",
                )
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.config.retry_max)
                continue
            server = CardServer(
                [(kiosk.name, card)],
                endpoints=[endpoint],
                on_exchange=self._observer(kiosk),
                reconnect_for=self.config.reconnect_timeout,
            )
            try:
                server.start()
            except Exception as exc:  # the endpoint does not answer: named, retried
                server.stop()
                card.close()
                self._set(kiosk, KioskState.UNREACHABLE, str(exc), delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.config.retry_max)
                continue
            delay = RETRY_FIRST
            self._set(kiosk, KioskState.CONNECTED, "")
            while not self._stop.wait(0.25) and not server.failed.is_set():
                pass
            failure = server.failure
            server.stop()
            if self._stop.is_set():
                break
            self._set(kiosk, KioskState.UNREACHABLE, failure or "reader lost", delay)
            if self._stop.wait(delay):
                break
        self._set(kiosk, KioskState.STOPPED)

    def start(self) -> None:
        """Start serving every kiosk (returns at once; see :attr:`first_round`)."""
        for kiosk in self.config.kiosks:
            thread = threading.Thread(
                target=self._serve_kiosk, args=(kiosk,), name=f"kiosk-{kiosk.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def run_until(self, stop: threading.Event, status_now: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set, printing the status table every ``status_interval``
        seconds and whenever ``status_now`` is set."""
        interval = self.config.status_interval
        next_table = time.monotonic() + interval if interval else None
        while not stop.wait(0.2):
            if status_now is not None and status_now.is_set():
                status_now.clear()
                self.print_status()
            if next_table is not None and time.monotonic() >= next_table:
                self.print_status()
                next_table = time.monotonic() + interval

    def stop(self) -> None:
        """Remove every card (each kiosk's server stopped) and end the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
