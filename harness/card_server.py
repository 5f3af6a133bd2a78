"""Cards in virtual readers: the engine behind ``mynacard serve`` and the PC/SC demo.

Where the readers come from, in order of preference:

1. ``--vpcd HOST:PORT`` endpoints given explicitly (remote kiosks, a vpcd someone else runs);
2. the running pcscd on the standard socket, if it has enough free vpcd readers;
3. a pcscd of our own on the standard socket, if no pcscd runs there — so unmodified programs
   (OpenSC, pcsc_scan, kiosk software) see the cards with no configuration;
4. otherwise a pcscd of our own on a private socket, announced with the
   ``PCSCLITE_CSOCK_NAME`` a client needs.

More than 16 readers (pcsc-lite's limit per pcscd): as many pcscd of our own as needed, each
with up to 16 vpcd readers on a socket of its own (:attr:`CardServer.sockets` says which socket
serves which reader); any number of ``--vpcd`` endpoints. Every card of the process is served by
one thread, the card loop (:mod:`readers.card_side.card_loop`).

Every APDU can be written, masked, to a JSON Lines trace.

Exposure: Debian's vpcd listens on ``0.0.0.0`` (no bind-address setting), and whoever connects
to an empty reader's port is a card to every PC/SC client on the host — and receives their PINs.
A pcscd of our own therefore runs in a network namespace of its own
(``readers/card_side/netns.py``) when this process may create one (root); in every other case
:attr:`CardServer.warnings` says which ports are open to the network.

Losing a reader: when vpcd closes a card's connection (pcscd exited or restarted), the card goes
back in as soon as vpcd listens again; a pcscd of our own that died is restarted with the same
readers. A reader that does not come back within ``reconnect_for`` seconds sets :attr:`failed`
(``mynacard serve`` then exits non-zero naming it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from apdu import Observer, TraceRecord
from apdu.errors import MynacardError
from harness.traces.trace_file import TraceWriter
from readers.card_side.pcscd import READER_NAME, PrivatePcscd
from readers.card_side.running_pcscd import find_running_vpcd
from readers.card_side.sockets import private_socket_path, socket_is_live
from readers.card_side.virtual_card import VirtualCard
from readers.card_side.vpcd import VpcdClient
from readers.scard import DEFAULT_SOCKET, SOCKET_ENV, ask_in_subprocess, process_socket

MAX_READERS = 16
"""Readers one pcscd can hold (pcsc-lite's limit)."""
MAX_PCSCD = 16
"""pcscd instances one server starts at most."""
MAX_SERVED = MAX_READERS * MAX_PCSCD
"""Readers of our own pcscd instances one server can offer."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")

log = logging.getLogger(__name__)


class ServableCard(VirtualCard, Protocol):
    """A card a server can hold: the transport surface plus :meth:`close` (an emulated
    :class:`~card_emulator.Card`, or one wrapped with faults)."""

    def close(self) -> None:
        """Release what the card holds (e.g. its image file)."""
        ...


class ServeError(MynacardError, RuntimeError):
    """The cards could not be put into readers."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one card connects: a vpcd slot, with the PC/SC reader name when known."""

    host: str
    port: int
    reader: str | None = None
    netns: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    socket_path: str | None = field(default=None, compare=False)
    """The PC/SC socket of the pcscd that lists this reader (ours), when known."""

    def __str__(self) -> str:
        where = f"{self.host}:{self.port}"
        return f"{self.reader!r} ({where})" if self.reader else where


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` or ``PORT`` → :class:`Endpoint`; ValueError with a clear message."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT (port must be a number)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is outside 1-65535")
    return Endpoint(host.strip("[]") or "127.0.0.1", port)


@dataclass
class ServedCard:
    """One card, where it is served, and its connection."""

    label: str
    card: ServableCard
    endpoint: Endpoint
    client: VpcdClient | None = None


@dataclass
class CardServer:
    """Puts cards into virtual readers and keeps them there until :meth:`stop`."""

    cards: Sequence[tuple[str, ServableCard]]
    readers: int | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    trace: Path | None = None
    private_socket: bool = False
    on_exchange: Observer | None = None
    reconnect_for: float = 30.0
    """How long a card waits for its reader to come back after vpcd closed the connection."""
    own_pcsc_context: bool = False
    """This process's libpcsclite talks to another pcscd (``mynacard relay``'s host side): a
    pcscd of our own then leaves ``PCSCLITE_CSOCK_NAME`` alone and is asked from subprocesses."""

    served: list[ServedCard] = field(default_factory=list, init=False)
    warnings: list[str] = field(default_factory=list, init=False)
    """What the user must know about exposure (ports open to the network)."""
    failed: threading.Event = field(default_factory=threading.Event, init=False)
    failure: str | None = field(default=None, init=False)
    _supervisor: threading.Thread | None = field(default=None, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    empty_readers: list[str] = field(default_factory=list, init=False)
    pcscd: PrivatePcscd | None = field(default=None, init=False)
    """Our first pcscd (``pcscds[0]``), if any."""
    pcscds: list[PrivatePcscd] = field(default_factory=list, init=False)
    """Every pcscd of our own, 16 readers each at most."""
    socket_path: str = field(default=DEFAULT_SOCKET, init=False)
    _trace_writer: TraceWriter | None = field(default=None, init=False)
    _places_opened: list[Endpoint] | None = field(default=None, init=False)

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name == "on_exchange" and "served" in self.__dict__:
            self._wire_observers()  # the console adds itself after start()

    def _observer(self) -> Observer | None:
        """What the clients report to: nothing when no one reads the records (then no record
        is made per APDU), the one observer itself when there is one (one call less per APDU)."""
        if self._trace_writer is None:
            return self.on_exchange
        return self._observe

    def _wire_observers(self) -> None:
        observer = self._observer()
        for served in self.served:
            if served.client is not None:
                served.client.on_exchange = observer

    @property
    def sockets(self) -> list[tuple[str, list[str]]]:
        """Each PC/SC socket of our pcscd instances and the readers it serves, in order."""
        return [(p.socket_path, [r.name for r in p.readers]) for p in self.pcscds]

    def __enter__(self) -> CardServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a PC/SC client process needs in its environment to see these readers."""
        return {} if self.socket_path == DEFAULT_SOCKET else {SOCKET_ENV: self.socket_path}

    def open_readers(self, cards: int) -> None:
        """Find or start the readers for ``cards`` cards now (our pcscd, if one is needed, is
        started and lists its readers), before the cards exist: :meth:`start`, once
        :attr:`cards` is set, then only inserts them. Used by ``mynacard serve`` so that pcscd
        starts — and its 400 ms presence poll runs — while the cards are being made."""
        if self._places_opened is not None:
            raise ServeError("readers already open")
        try:
            self._places_opened = self._places(cards)
        except BaseException:
            self.stop()
            raise

    def _places(self, cards: int) -> list[Endpoint]:
        wanted = max(self.readers or 0, cards)
        if not cards:
            raise ServeError("no card to serve")
        if self.endpoints:
            if len(self.endpoints) < cards:
                raise ServeError(f"{cards} cards but only {len(self.endpoints)} --vpcd endpoints")
            remote = sorted({str(e) for e in self.endpoints if e.host not in LOOPBACK})
            if remote:
                self.warnings.append(
                    f"cards connect to vpcd on another host ({', '.join(remote)}): that vpcd "
                    "listens on its network, where anyone who reaches an empty reader's port can "
                    "plug in a card and receive the PINs typed at that host"
                )
            return self.endpoints
        if wanted > MAX_SERVED:
            raise ServeError(
                f"at most {MAX_SERVED} readers ({MAX_PCSCD} pcscd of {MAX_READERS}), not {wanted}"
            )
        if wanted > MAX_READERS:
            return self._start_pcscds(wanted)
        socket_in_use = os.path.exists(DEFAULT_SOCKET)
        if not self.private_socket and socket_in_use:
            running = find_running_vpcd()
            if running is not None and len(running.free_readers) >= wanted:
                readers = running.free_readers[:wanted]
                ports = ", ".join(str(r.port) for r in running.readers)
                self.warnings.append(
                    f"using the running pcscd's vpcd readers: Debian's vpcd listens on all "
                    f"interfaces (0.0.0.0, ports {ports}), so anyone on the network can plug a "
                    "card into an empty reader and receive the PINs typed there; "
                    "--private-socket serves from a network-isolated pcscd instead"
                )
                return [Endpoint(r.host, r.port, r.name) for r in readers]
        use_default = not self.private_socket and not socket_is_live(DEFAULT_SOCKET)
        return self._start_pcscds(wanted, use_default=use_default)

    def _start_pcscds(self, wanted: int, *, use_default: bool = False) -> list[Endpoint]:
        """ceil(wanted / 16) pcscd of our own (the first on the default socket when
        ``use_default``, the others each on a private socket of its own); their readers."""
        counts = [MAX_READERS] * (wanted // MAX_READERS)
        if wanted % MAX_READERS:
            counts.append(wanted % MAX_READERS)
        places: list[Endpoint] = []
        for index, count in enumerate(counts):
            name = READER_NAME if index == 0 else f"{READER_NAME} {index + 1}"
            if index == 0 and not self.own_pcsc_context:
                socket_path = DEFAULT_SOCKET if use_default else None
                pcscd = PrivatePcscd(count, name=name, socket_path=socket_path)
            else:
                if index == 0:
                    socket_path = DEFAULT_SOCKET if use_default else private_socket_path()
                else:
                    base = os.path.dirname(private_socket_path())
                    socket_path = os.path.join(base, f"pcscd-{index + 1}.comm")
                pcscd = PrivatePcscd(count, name=name, socket_path=socket_path, set_environ=False)
            self.pcscds.append(pcscd)
            if self.pcscd is None:
                self.pcscd = pcscd
            pcscd.start()
            places += [
                Endpoint(r.host, r.port, r.name, r.netns, pcscd.socket_path) for r in pcscd.readers
            ]
        assert self.pcscd is not None
        self.socket_path = self.pcscd.socket_path
        open_ports = [str(r.port) for p in self.pcscds if not p.isolated for r in p.readers]
        if open_ports:
            self.warnings.append(
                f"pcscd could not be isolated from the network (needs root and unshare): its "
                f"vpcd readers listen on all interfaces (0.0.0.0, ports {', '.join(open_ports)}); "
                "firewall them"
            )
        return places

    def start(self) -> None:
        """Start pcscd if needed and connect every card to its reader."""
        if self.trace is not None:
            self._trace_writer = TraceWriter(self.trace, append=True)
        try:
            places = self._places_opened
            if places is None:
                places = self._places(len(self.cards))
            elif len(self.cards) > len(places) or not self.cards:
                raise ServeError(f"{len(self.cards)} cards for {len(places)} readers opened")
            observer = self._observer()
            for (label, card), endpoint in zip(self.cards, places, strict=False):
                served = ServedCard(label, card, endpoint)
                served.client = VpcdClient(
                    card,
                    endpoint.port,
                    endpoint.host,
                    on_exchange=observer,
                    reader=endpoint.reader or str(endpoint),
                    netns=endpoint.netns,
                    reconnect_for=self.reconnect_for,
                    on_lost=self._reader_lost,
                )
                served.client.start()
                attach = getattr(card, "attach", None)
                if callable(attach):
                    attach(served.client)  # a FaultyCard pulls itself out through its client
                self.served.append(served)
            self.empty_readers = [str(e) for e in places[len(self.cards) :]]
            for pcscd in self.pcscds:
                self._wait_for_cards(pcscd, 10.0)
            if self.pcscds:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="pcscd-supervisor", daemon=True
                )
                self._supervisor.start()
        except BaseException:
            self.stop()
            raise

    def _wait_for_cards(self, pcscd: PrivatePcscd, timeout: float) -> None:
        names = [
            s.endpoint.reader
            for s in self.served
            if s.endpoint.reader is not None and s.endpoint.socket_path == pcscd.socket_path
        ]
        if not names:
            return
        if not self.own_pcsc_context and pcscd.socket_path == process_socket():
            for name in names:
                pcscd.wait_for_card(name, timeout=timeout)
            return
        deadline = time.monotonic() + timeout
        while True:  # another pcscd than this process's: asked from a child process
            listing = ask_in_subprocess(pcscd.socket_path, timeout)
            if listing is not None and set(names) <= listing.present:
                return
            if time.monotonic() > deadline:
                raise ServeError(f"cards not present in {names} within {timeout:g} s")
            time.sleep(0.2)

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        if self.failure is None:
            self.failure = message
        self.failed.set()

    def _reader_lost(self, client: VpcdClient) -> None:
        name = next(
            (str(s.endpoint) for s in self.served if s.client is client), f"port {client.port}"
        )
        if not self._stopping.is_set():
            self._fail(f"reader {name} lost: {client.error}")

    def _supervise(self) -> None:
        """Restart our pcscd instances when they die; the cards reconnect by themselves."""
        while not self._stopping.wait(0.5):
            for pcscd in self.pcscds:
                if pcscd.running:
                    continue
                log.warning(
                    "pcscd (pid %s) exited; starting it again with the same readers", pcscd.pid
                )
                try:
                    pcscd.restart()
                except Exception as exc:
                    self._fail(f"pcscd exited and could not be restarted: {exc}")
                    return
                log.warning("pcscd restarted (pid %s)", pcscd.pid)

    def _observe(self, record: TraceRecord) -> None:
        if self._trace_writer is not None:
            self._trace_writer(record)
        if self.on_exchange is not None:
            self.on_exchange(record)

    def announce_pcscd(self) -> None:
        """Print which pcscd serves the readers (when this server started one); with several,
        which socket serves which reader."""
        if self.pcscd is None:
            return
        if len(self.pcscds) > 1:
            for pcscd in self.pcscds:
                names = [r.name for r in pcscd.readers]
                print(
                    f"pcscd (pid {pcscd.pid}) serving {pcscd.socket_path}: {len(names)} readers, "
                    f"{names[0]!r} … {names[-1]!r}"
                )
                print(f"  its clients run with: export {SOCKET_ENV}={pcscd.socket_path}")
        else:
            print(f"pcscd (pid {self.pcscd.pid}) serving {self.socket_path}")
        if self.pcscd.isolated:
            print("  its vpcd readers live in a network namespace of their own: no network")
            print("  and no other process can reach them (PC/SC clients use the socket)")

    def announce_clients(self, trace: Path | None) -> None:
        """Print the warnings, what PC/SC clients must export, the trace file and how to stop."""
        for warning in self.warnings:
            print(f"WARNING: {warning}", file=sys.stderr, flush=True)
        if len(self.pcscds) > 1:
            print(
                f"PC/SC clients must run with the {SOCKET_ENV} of the pcscd serving their "
                "reader (above)"
            )
        elif self.env:
            exports = " ".join(f"{k}={v}" for k, v in self.env.items())
            print(f"PC/SC clients must run with: export {exports}")
        if trace:
            print(f"trace (masked APDUs): {trace}")
        print("Ctrl-C or SIGTERM stops.", flush=True)

    def run_until(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, Ctrl-C, or a reader is lost for good (:attr:`failed`)."""
        try:
            while not stop.wait(0.5) and not self.failed.is_set():
                pass
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        """Remove every card, stop our pcscd (by PID), close the trace and card images."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
            self._supervisor = None
        for served in self.served:
            if served.client is not None:
                served.client.stop()
            served.card.close()
        self.served.clear()
        for pcscd in reversed(self.pcscds):
            pcscd.stop()
        self.pcscds.clear()
        self.pcscd = None
        self._places_opened = None
        if self._trace_writer is not None:
            self._trace_writer.close()
            self._trace_writer = None
