"""The card in a PC/SC reader (a real one), as a :class:`~readers.card_side.virtual_card.
VirtualCard` a vpcd reader can hold.

* ``atr``: the real card's ATR (cached: pcscd asks for it about every 400 ms);
* ``transmit``: the C-APDU forwarded unchanged through pyscard, the R-APDU returned unchanged;
* power events from the virtual reader map to the real connection: power off →
  ``SCardDisconnect(SCARD_UNPOWER_CARD)``, power on → ``SCardConnect`` (the card is powered
  and reset), reset → ``SCardReconnect(SCARD_RESET_CARD)``;
* presence: the real card removed (a :class:`~harness.relay.presence.PresenceWatcher`, or a
  transmit failing with "card removed") removes the card from the virtual reader (its vpcd
  socket is closed, with no answer to an APDU in flight); inserted again, it is inserted again.

The host side runs in this process's libpcsclite, i.e. against the pcscd named by
``PCSCLITE_CSOCK_NAME`` (the real reader's); the virtual reader is only a TCP connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from harness.relay.errors import RelayError
from harness.relay.presence import PresenceWatcher
from readers.host_side.pcsc import (
    SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED,
    SCARD_W_REMOVED_CARD,
    PcscTransport,
    PcscTransportError,
)
from readers.scard import SCARD_E_INVALID_HANDLE, SCARD_E_NO_SERVICE, list_readers

__all__ = ["RelayedCard"]

log = logging.getLogger(__name__)

SCARD_W_RESET_CARD = 0x80100068  # another client reset the card: reconnect, keep going
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_E_READER_UNAVAILABLE = 0x80100017
_GONE = frozenset(
    {
        SCARD_W_REMOVED_CARD,
        SCARD_E_NO_SMARTCARD,
        SCARD_E_NOT_TRANSACTED,
        SCARD_E_NO_SERVICE,
        SCARD_E_READER_UNAVAILABLE,
        SCARD_E_INVALID_HANDLE,
    }
)
_SW_NO_DIAGNOSIS = b"\x6f\x00"


class Slot(Protocol):
    """What the relay needs of the virtual reader's card connection (a
    :class:`~readers.card_side.vpcd.VpcdClient`)."""

    def insert(self, *, wait: bool = True, timeout: float | None = None) -> None: ...

    def remove(self, *, wait: bool = True, timeout: float = 5.0) -> None: ...


def resolve_reader(text: str) -> str:
    """The PC/SC reader named ``text`` (or at index ``text``) of this process's pcscd;
    :class:`RelayError` listing the readers there are when there is no such reader."""
    try:
        names = list_readers()
    except PcscTransportError as exc:
        raise RelayError(f"cannot list the PC/SC readers to find {text!r}: {exc}") from exc
    if text in names:
        return text
    if text.isdigit() and int(text) < len(names):
        return names[int(text)]
    there = "; ".join(f"{i}: {name!r}" for i, name in enumerate(names)) or "none"
    raise RelayError(f"no PC/SC reader {text!r}; readers there are: {there}")


class RelayedCard:
    """The card in PC/SC reader ``reader``, forwarded APDU by APDU (see the module doc).

    :meth:`open` connects (:class:`RelayError` when the reader has no card); a card server
    calls :meth:`attach` with the virtual reader's connection, which starts watching presence;
    :meth:`close` stops watching and disconnects.
    """

    def __init__(self, reader: str, *, transport: PcscTransport | None = None) -> None:
        self.reader = reader
        self._transport = transport if transport is not None else PcscTransport(reader)
        self._lock = threading.RLock()
        self._atr = b""
        self._present = False
        self._slot: Slot | None = None
        self._watcher: PresenceWatcher | None = None
        self.removals = 0
        self.insertions = 0

    def __repr__(self) -> str:
        return f"<RelayedCard {self.reader!r} {'present' if self._present else 'absent'}>"

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> RelayedCard:
        """Connect to the card; :class:`RelayError` (naming the reader) when there is none or
        another program holds it exclusively."""
        try:
            with self._lock:
                self._transport.connect()
                self._atr = self._transport.atr
        except PcscTransportError as exc:
            raise RelayError(f"cannot relay the card in {self.reader!r}: {exc}") from exc
        self._present = True
        return self

    def attach(self, slot: Slot) -> None:
        """Called by the card server once the card is in its virtual reader: from now on the
        real card's removal and insertion are passed on to ``slot``."""
        self._slot = slot
        self._watcher = PresenceWatcher(self.reader, self._presence_changed)
        self._watcher.start(self._present)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        with self._lock:
            self._transport.disconnect()

    @property
    def present(self) -> bool:
        """Whether the real card is in its reader (as last seen)."""
        return self._present

    # -- VirtualCard ------------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, command: bytes) -> bytes:
        with self._lock:
            for attempt in range(2):
                try:
                    self._ensure_connected()
                    return self._transport.transmit(command)
                except PcscTransportError as exc:
                    if exc.code == SCARD_W_RESET_CARD and attempt == 0:
                        self._reconnect(reset=False)  # reset by another client: go on
                        continue
                    if exc.code == SCARD_W_UNPOWERED_CARD and attempt == 0:
                        self._reconnect(reset=True)
                        continue
                    if exc.code in _GONE:
                        log.info("%r: card gone during %s: %s", self, command[:4].hex(), exc)
                        self._gone()
                        return b""  # no answer: the virtual reader is emptied instead
                    log.warning("%r: %s failed: %s", self, command[:4].hex(), exc)
                    return _SW_NO_DIAGNOSIS
            return _SW_NO_DIAGNOSIS

    def power_on(self) -> None:
        with self._lock:
            self._quietly(self._ensure_connected)

    def power_off(self) -> None:
        with self._lock:
            self._transport.disconnect(unpower=True)

    def reset(self) -> None:
        with self._lock:
            if self._transport.connected:
                self._quietly(lambda: self._reconnect(reset=True))
            else:
                self._quietly(self._ensure_connected)

    # -- internals --------------------------------------------------------------------------

    def _quietly(self, action: Callable[[], None]) -> None:
        try:
            action()
        except PcscTransportError as exc:
            log.info("%r: %s", self, exc)
            if exc.code in _GONE:
                self._gone()

    def _ensure_connected(self) -> None:
        if not self._transport.connected:
            self._transport.connect()
            self._atr = self._transport.atr

    def _reconnect(self, *, reset: bool) -> None:
        self._transport.reconnect(reset=reset)

    def _gone(self) -> None:
        """The real card went away: drop the connection, empty the virtual reader."""
        self._transport.disconnect()
        if self._present:
            self._present = False
            self.removals += 1
            if self._slot is not None:
                # From the serving thread this takes effect once the current APDU is done.
                self._slot.remove(wait=False)

    def _presence_changed(self, present: bool, atr: bytes) -> None:
        slot = self._slot
        if not present:
            log.info("%r: card removed from the real reader", self)
            with self._lock:
                self._gone()
            return
        log.info("%r: card inserted (ATR %s)", self, atr.hex(" ").upper())
        with self._lock:
            self._transport.disconnect()
            self._atr = atr
            if self._present:
                return
            self._present = True
            self.insertions += 1
        if slot is not None:
            try:
                slot.insert(wait=False)
            except RuntimeError as exc:  # the virtual reader's connection has ended
                log.warning("%r: cannot insert into the virtual reader: %s", self, exc)
