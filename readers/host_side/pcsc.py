"""The PC/SC transport (pyscard) and discovery of My Number cards in PC/SC readers.

Works the same on a real card in a USB reader and on an emulated card behind pcscd + vpcd.
Every PC/SC failure surfaces as one exception type, :class:`PcscTransportError` (the one PC/SC
error :class:`~readers.scard.ScardError`), which carries the SCARD code (``SCARD_W_REMOVED_CARD``
0x80100069, ``SCARD_E_NOT_TRANSACTED`` 0x80100016, ``SCARD_E_NO_SMARTCARD`` 0x8010000C, ...) and
a one-line message; it is a :class:`~readers.scard.PcscError`, so the CLI's handler prints it
without a traceback.

What a host sees when a card goes away (Debian pcscd 1.9.9 + vpcd, see the PC/SC runbook §7):

* pulled after answering an APDU: the next transmit fails with ``SCARD_E_NOT_TRANSACTED``,
  later ones with ``SCARD_W_REMOVED_CARD``;
* pulled while processing an APDU: ``SCardTransmit`` *succeeds* with an empty response. This
  transport reports that as ``SCARD_W_REMOVED_CARD`` when PC/SC already knows the card is gone,
  else as ``SCARD_E_NOT_TRANSACTED`` (the exchange failed); later transmits fail with
  ``SCARD_W_REMOVED_CARD``.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process (see :mod:`readers.scard`): the
first PC/SC call of the process decides which pcscd every later call reaches.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from apdu import Observer, TraceRecord, builders
from apdu.vocabulary import KNOWN_ATRS, Jpki
from readers.scard import (
    SCARD_E_INVALID_HANDLE,
    SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED,
    SCARD_E_SHARING_VIOLATION,
    SCARD_S_SUCCESS,
    SCARD_W_REMOVED_CARD,
    STATE_PRESENT,
    ScardError,
    atr_in,
    call_error,
    check,
    establish,
    list_readers,
    pyscard,
    scard_name,
    u32,
)

__all__ = [
    "SCARD_E_NOT_TRANSACTED",
    "SCARD_E_NO_SMARTCARD",
    "SCARD_E_SHARING_VIOLATION",
    "SCARD_W_REMOVED_CARD",
    "CardKind",
    "FoundCard",
    "PcscTransport",
    "PcscTransportError",
    "Protocol",
    "Share",
    "find_my_number_cards",
    "list_readers",
    "scard_name",
]

PcscTransportError = ScardError
"""What every failure of the transport raises: the one PC/SC error of :mod:`readers.scard`."""

_LEAVE_CARD = 0  # SCARD_LEAVE_CARD
_RESET_CARD = 1  # SCARD_RESET_CARD
_UNPOWER_CARD = 2  # SCARD_UNPOWER_CARD

_SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
_SELECT_TOKEN_INFO = builders.select_ef(Jpki.EF_TOKEN).to_bytes()
_READ_TOKEN_LABEL = builders.read_binary(0, 32).to_bytes()  # the first 32 bytes: the label


class Share(enum.IntEnum):
    """How the connection shares the card with other PC/SC clients."""

    EXCLUSIVE = 1  # SCARD_SHARE_EXCLUSIVE
    SHARED = 2  # SCARD_SHARE_SHARED


class Protocol(enum.IntFlag):
    """Acceptable transmission protocols (``T0 | T1``: whichever the card offers)."""

    T0 = 1  # SCARD_PROTOCOL_T0
    T1 = 2  # SCARD_PROTOCOL_T1
    ANY = T0 | T1


class PcscTransport:
    """One connection to the card in one PC/SC reader: ``transmit(bytes) -> bytes``.

    ``with PcscTransport("Reader 00 00") as t: t.transmit(...)`` connects and disconnects.
    ``share`` chooses shared (default) or exclusive access; ``protocol`` the acceptable
    protocols (default T=0 or T=1, whichever the card offers). ``on_exchange`` gets a
    :class:`~apdu.TraceRecord` for every exchange, also failed ones (empty response,
    ``extra["error"]`` = the SCARD name). Not thread-safe: one transport per thread.
    """

    def __init__(
        self,
        reader_name: str,
        *,
        share: Share = Share.SHARED,
        protocol: Protocol = Protocol.ANY,
        on_exchange: Observer | None = None,
    ) -> None:
        self.reader_name = reader_name
        self.share = Share(share)
        self.protocol = Protocol(protocol)
        self.on_exchange = on_exchange
        self._ctx: Any = None
        self._handle: Any = None
        self._active = 0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<PcscTransport {self.reader_name!r} {state}>"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._handle is not None

    @property
    def active_protocol(self) -> Protocol | None:
        """The protocol negotiated for this connection (None when disconnected)."""
        return Protocol(self._active) if self.connected else None

    def connect(self) -> PcscTransport:
        """Connect to the card (raises ``SCARD_E_NO_SMARTCARD`` when the reader is empty)."""
        if self._handle is not None:
            return self
        scard = pyscard()
        ctx = establish()
        try:
            hresult, handle, active = scard.SCardConnect(
                ctx, self.reader_name, int(self.share), int(self.protocol)
            )
            check(hresult, f"cannot connect to the card in {self.reader_name!r}")
        except BaseException:
            scard.SCardReleaseContext(ctx)
            raise
        self._ctx, self._handle, self._active = ctx, handle, int(active)
        return self

    def disconnect(self, *, reset: bool = False, unpower: bool = False) -> None:
        """Disconnect (leaving the card as it is, resetting it, or powering it off). Never
        raises for a card that is already gone."""
        handle, ctx = self._handle, self._ctx
        self._handle = self._ctx = None
        self._active = 0
        scard = pyscard()
        if handle is not None:
            disposition = _UNPOWER_CARD if unpower else _RESET_CARD if reset else _LEAVE_CARD
            scard.SCardDisconnect(handle, disposition)
        if ctx is not None:
            scard.SCardReleaseContext(ctx)

    close = disconnect

    def reconnect(self, *, reset: bool = True) -> None:
        """Re-establish the connection (after a reset by another client, or a removal and
        re-insertion), resetting the card (cold state) unless ``reset=False``."""
        if self._handle is None:
            self.connect()
            return
        hresult, active = pyscard().SCardReconnect(
            self._handle,
            int(self.share),
            int(self.protocol),
            _RESET_CARD if reset else _LEAVE_CARD,
        )
        check(hresult, f"cannot reconnect to the card in {self.reader_name!r}")
        self._active = int(active)

    def __enter__(self) -> PcscTransport:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- use --------------------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        """The card's ATR as pcscd reports it for this connection."""
        hresult, _reader, _state, _protocol, atr = pyscard().SCardStatus(self._require())
        check(hresult, f"SCardStatus({self.reader_name!r})")
        return bytes(atr)

    def _require(self) -> Any:
        if self._handle is None:
            raise PcscTransportError(
                SCARD_E_INVALID_HANDLE, f"not connected to {self.reader_name!r}; call connect()"
            )
        return self._handle

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PcscTransport]:
        """Exclusive use of the card for a sequence of APDUs (SCardBeginTransaction /
        SCardEndTransaction); other clients' commands wait until it ends."""
        handle = self._require()
        scard = pyscard()
        check(scard.SCardBeginTransaction(handle), f"SCardBeginTransaction({self.reader_name!r})")
        try:
            yield self
        finally:
            if self._handle is handle:
                scard.SCardEndTransaction(handle, _LEAVE_CARD)

    def transmit(self, command: bytes) -> bytes:
        """Send one C-APDU (short or extended) and return the R-APDU (data ‖ SW1 SW2)."""
        handle = self._require()
        scard = pyscard()
        started, start = time.time(), time.perf_counter()
        hresult, response = scard.SCardTransmit(handle, self._active, list(command))
        duration = time.perf_counter() - start
        error: PcscTransportError | None = None
        if u32(hresult) != SCARD_S_SUCCESS:
            error = call_error(hresult, f"transmit to {self.reader_name!r} failed")
        elif len(response) < 2:
            error = self._no_answer()
        if error is not None:
            if self.on_exchange is not None:
                extra = {"error": error.name}
                record = TraceRecord(
                    started, bytes(command), b"", duration, "", extra, reader=self.reader_name
                )
                self.on_exchange(record)
            raise error
        answer = bytes(response)
        if self.on_exchange is not None:
            self.on_exchange(
                TraceRecord(started, bytes(command), answer, duration, reader=self.reader_name)
            )
        return answer

    def _no_answer(self) -> PcscTransportError:
        """SCardTransmit succeeded without a status word: the card went away mid-command."""
        where = f"the card in {self.reader_name!r} returned no response"
        result = pyscard().SCardStatus(self._handle)
        if u32(result[0]) in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD) or (
            u32(result[0]) == SCARD_S_SUCCESS and not result[2] & STATE_PRESENT
        ):
            return PcscTransportError(SCARD_W_REMOVED_CARD, f"{where}: it was removed")
        return PcscTransportError(SCARD_E_NOT_TRANSACTED, f"{where} (removed during the command?)")


# -- discovery ----------------------------------------------------------------------------


class CardKind(enum.Enum):
    """What holds the JPKI-AP, from the token label in EF ``0006`` (card-facts §5.2)."""

    PHYSICAL_CARD = "physical card"  # JPKIAPICCTOKEN2 (My Number card), JPKIAPICCTOKEN (住基カード)
    SMARTPHONE = "smartphone"  # JPKIAPGPSETOKEN (Android), JPKIAPIOSTOKEN (iPhone)
    UNKNOWN = "unknown"  # label unreadable or not one of those, or the card was busy


_KINDS = {
    "JPKIAPICCTOKEN2": CardKind.PHYSICAL_CARD,
    "JPKIAPICCTOKEN": CardKind.PHYSICAL_CARD,
    "JPKIAPGPSETOKEN": CardKind.SMARTPHONE,
    "JPKIAPIOSTOKEN": CardKind.SMARTPHONE,
}
_KNOWN_ATR_VALUES = frozenset(KNOWN_ATRS.values())


@dataclass(frozen=True, slots=True)
class FoundCard:
    """A My Number card (or smartphone JPKI token) in a reader."""

    reader: str
    atr: bytes
    kind: CardKind
    label: str = ""  # the token label from EF 0006, "" when not read


def _ok(response: bytes) -> bool:
    return response[-2:] == b"\x90\x00"


def _probe(reader: str) -> FoundCard | None:
    """Look at one reader: SELECT and READ BINARY only, on an exclusive connection (so no
    other client's session is disturbed); a card busy in another client is judged by its
    ATR alone."""
    transport = PcscTransport(reader, share=Share.EXCLUSIVE)
    try:
        transport.connect()
    except PcscTransportError as exc:
        if exc.code == SCARD_E_SHARING_VIOLATION:
            atr = atr_in(reader)
            if atr in _KNOWN_ATR_VALUES:
                return FoundCard(reader, atr, CardKind.UNKNOWN)
        return None  # empty reader, mute card, reader gone meanwhile
    try:
        atr = transport.atr
        if not _ok(transport.transmit(_SELECT_JPKI)):
            return FoundCard(reader, atr, CardKind.UNKNOWN) if atr in _KNOWN_ATR_VALUES else None
        label = ""
        if _ok(transport.transmit(_SELECT_TOKEN_INFO)):
            response = transport.transmit(_READ_TOKEN_LABEL)
            if _ok(response):
                label = response[:-2].decode("ascii", "replace").rstrip(" \x00")
        return FoundCard(reader, atr, _KINDS.get(label, CardKind.UNKNOWN), label)
    except PcscTransportError:
        return None  # removed while we looked
    finally:
        transport.disconnect()


def find_my_number_cards(readers: list[str] | None = None) -> list[FoundCard]:
    """The readers (all by default) that hold a My Number card: a known My Number ATR
    (:data:`apdu.vocabulary.KNOWN_ATRS`) or a JPKI-AP that answers SELECT with ``9000``.
    ``kind`` comes from the token label in JPKI EF ``0006``. Non-destructive: sends only
    SELECT and READ BINARY, and never VERIFY."""
    names = list_readers() if readers is None else readers
    found = []
    for reader in names:
        card = _probe(reader)
        if card is not None:
            found.append(card)
    return found
