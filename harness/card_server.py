"""Cards in virtual readers: the engine behind ``mynacard serve`` and the PC/SC demo.

Where the readers come from, in order of preference:

1. ``--vpcd HOST:PORT`` endpoints given explicitly (remote kiosks, a vpcd someone else runs);
2. the running pcscd on the standard socket, if it has enough free vpcd readers;
3. a pcscd of our own on the standard socket, if no pcscd runs there — so unmodified programs
   (OpenSC, pcsc_scan, kiosk software) see the cards with no configuration;
4. otherwise a pcscd of our own on a private socket, announced with the
   ``PCSCLITE_CSOCK_NAME`` a client needs.

Every APDU can be written, masked, to a JSON Lines trace.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from apdu import TraceRecord
from readers.pcscd import (
    DEFAULT_SOCKET,
    SOCKET_ENV,
    PrivatePcscd,
    find_running_vpcd,
    socket_is_live,
)
from readers.virtual_card import VirtualCard
from readers.vpcd import VpcdClient

MAX_READERS = 16


class ServableCard(VirtualCard, Protocol):
    """A card a server can hold: the transport surface plus :meth:`close` (an emulated
    :class:`~card_emulator.Card`, or one wrapped with faults)."""

    def close(self) -> None:
        """Release what the card holds (e.g. its image file)."""
        ...


class ServeError(RuntimeError):
    """The cards could not be put into readers."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one card connects: a vpcd slot, with the PC/SC reader name when known."""

    host: str
    port: int
    reader: str | None = None

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


class TraceWriter:
    """Appends masked APDU records to a JSON Lines file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, reader: str, record: TraceRecord) -> None:
        line = json.dumps({"reader": reader, **record.to_json()}, ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class CardServer:
    """Puts cards into virtual readers and keeps them there until :meth:`stop`."""

    cards: Sequence[tuple[str, ServableCard]]
    readers: int | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    trace: Path | None = None
    private_socket: bool = False
    on_apdu: Callable[[str, TraceRecord], None] | None = None

    served: list[ServedCard] = field(default_factory=list, init=False)
    empty_readers: list[str] = field(default_factory=list, init=False)
    pcscd: PrivatePcscd | None = field(default=None, init=False)
    socket_path: str = field(default=DEFAULT_SOCKET, init=False)
    _trace_writer: TraceWriter | None = field(default=None, init=False)

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

    def _places(self) -> list[Endpoint]:
        wanted = max(self.readers or 0, len(self.cards))
        if not self.cards:
            raise ServeError("no card to serve")
        if wanted > MAX_READERS:
            raise ServeError(f"at most {MAX_READERS} readers (pcsc-lite's limit), not {wanted}")
        if self.endpoints:
            if len(self.endpoints) < len(self.cards):
                raise ServeError(
                    f"{len(self.cards)} cards but only {len(self.endpoints)} --vpcd endpoints"
                )
            return self.endpoints
        socket_in_use = os.path.exists(DEFAULT_SOCKET)
        if not self.private_socket and socket_in_use:
            running = find_running_vpcd()
            if running is not None and len(running.free_readers) >= wanted:
                return [Endpoint(r.host, r.port, r.name) for r in running.free_readers[:wanted]]
        use_default = not self.private_socket and not socket_is_live(DEFAULT_SOCKET)
        self.pcscd = PrivatePcscd(wanted, socket_path=DEFAULT_SOCKET if use_default else None)
        self.pcscd.start()
        self.socket_path = self.pcscd.socket_path
        return [Endpoint(r.host, r.port, r.name) for r in self.pcscd.readers]

    def start(self) -> None:
        """Start pcscd if needed and connect every card to its reader."""
        if self.trace is not None:
            self._trace_writer = TraceWriter(self.trace)
        try:
            places = self._places()
            for (label, card), endpoint in zip(self.cards, places, strict=False):
                served = ServedCard(label, card, endpoint)
                served.client = VpcdClient(
                    card, endpoint.port, endpoint.host, on_apdu=self._hook(endpoint)
                )
                served.client.start()
                attach = getattr(card, "attach", None)
                if callable(attach):
                    attach(served.client)  # a FaultyCard pulls itself out through its client
                self.served.append(served)
            self.empty_readers = [e.reader or str(e) for e in places[len(self.cards) :]]
            if self.pcscd is not None:
                for served in self.served:
                    assert served.endpoint.reader is not None
                    self.pcscd.wait_for_card(served.endpoint.reader, timeout=10.0)
        except BaseException:
            self.stop()
            raise

    def _hook(self, endpoint: Endpoint) -> Callable[[bytes, bytes], None]:
        name = endpoint.reader or str(endpoint)

        def on_apdu(command: bytes, response: bytes) -> None:
            record = TraceRecord(time.time(), command, response)
            if self._trace_writer is not None:
                self._trace_writer.write(name, record)
            if self.on_apdu is not None:
                self.on_apdu(name, record)

        return on_apdu

    def stop(self) -> None:
        """Remove every card, stop our pcscd (by PID), close the trace and card images."""
        for served in self.served:
            if served.client is not None:
                served.client.stop()
            served.card.close()
        self.served.clear()
        if self.pcscd is not None:
            self.pcscd.stop()
            self.pcscd = None
        if self._trace_writer is not None:
            self._trace_writer.close()
            self._trace_writer = None
