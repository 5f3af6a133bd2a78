"""The PC/SC transport (pyscard) and discovery of My Number cards in PC/SC readers.

Works the same on a real card in a USB reader and on an emulated card behind pcscd + vpcd.
Every PC/SC failure surfaces as one exception type, :class:`PcscTransportError`, which carries
the SCARD code (``SCARD_W_REMOVED_CARD`` 0x80100069, ``SCARD_E_NOT_TRANSACTED`` 0x80100016,
``SCARD_E_NO_SMARTCARD`` 0x8010000C, ...) and a one-line message; it is a
:class:`~readers.card_side.pcscd.PcscError`, so the CLI's handler prints it without a traceback.

What a host sees when a card goes away (Debian pcscd 1.9.9 + vpcd, see the PC/SC runbook §7):

* pulled after answering an APDU: the next transmit fails with ``SCARD_E_NOT_TRANSACTED``,
  later ones with ``SCARD_W_REMOVED_CARD``;
* pulled while processing an APDU: ``SCardTransmit`` *succeeds* with an empty response. This
  transport reports that as ``SCARD_W_REMOVED_CARD`` when PC/SC already knows the card is gone,
  else as ``SCARD_E_NOT_TRANSACTED`` (the exchange failed); later transmits fail with
  ``SCARD_W_REMOVED_CARD``.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process (see :mod:`readers.card_side.pcscd`): the
first PC/SC call of the process decides which pcscd every later call reaches.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from apdu import TraceRecord
from card_emulator.atrs import KNOWN_ATRS
from readers.card_side.pcscd import PcscError

__all__ = [
    "JPKI_AID",
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

JPKI_AID = bytes.fromhex("D392F000260100000001")

SCARD_S_SUCCESS = 0x00000000
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_W_REMOVED_CARD = 0x80100069

# Not every pyscard build exports every name; these are the codes of pcsc-lite's pcsclite.h.
_FALLBACK_NAMES = {
    SCARD_E_INVALID_HANDLE: "SCARD_E_INVALID_HANDLE",
    SCARD_E_TIMEOUT: "SCARD_E_TIMEOUT",
    SCARD_E_SHARING_VIOLATION: "SCARD_E_SHARING_VIOLATION",
    SCARD_E_NO_SMARTCARD: "SCARD_E_NO_SMARTCARD",
    SCARD_E_NOT_TRANSACTED: "SCARD_E_NOT_TRANSACTED",
    SCARD_E_NO_SERVICE: "SCARD_E_NO_SERVICE",
    SCARD_E_NO_READERS_AVAILABLE: "SCARD_E_NO_READERS_AVAILABLE",
    SCARD_W_REMOVED_CARD: "SCARD_W_REMOVED_CARD",
}

_LEAVE_CARD = 0  # SCARD_LEAVE_CARD
_RESET_CARD = 1  # SCARD_RESET_CARD
_STATE_PRESENT = 0x0020  # SCARD_STATE_PRESENT (pcsc-lite)

_SELECT_JPKI = bytes.fromhex("00A4040C0A") + JPKI_AID
_SELECT_TOKEN_INFO = bytes.fromhex("00A4020C020006")
_READ_TOKEN_LABEL = bytes.fromhex("00B0000020")  # the first 32 bytes of EF 0006: the label

_scard_module: Any = None
_names: dict[int, str] | None = None


def _scard() -> Any:
    """pyscard's low-level ``smartcard.scard``, imported on first use."""
    global _scard_module  # noqa: PLW0603 - a lazily imported module
    if _scard_module is None:
        try:
            from smartcard import scard  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - pyscard is a dependency
            raise PcscTransportError(
                SCARD_E_NO_SERVICE,
                "pyscard is not importable; install it (pip install pyscard; on Linux it "
                "builds from source and needs the Debian package libpcsclite-dev)",
            ) from exc
        _scard_module = scard
    return _scard_module


def _u32(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def scard_name(code: int) -> str:
    """``SCARD_*`` name of a PC/SC return code (hex text when unknown)."""
    global _names  # noqa: PLW0603 - built once from pyscard's constants
    code = _u32(code)
    if _names is None:
        names = dict(_FALLBACK_NAMES)
        with contextlib.suppress(PcscTransportError):
            scard = _scard()
            for name in sorted(dir(scard), reverse=True):
                value = getattr(scard, name)
                if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_")) and (
                    isinstance(value, int)
                ):
                    names.setdefault(_u32(value), name)
        _names = names
    return _names.get(code, f"0x{code:08X}")


class PcscTransportError(PcscError):
    """A PC/SC call failed. ``code`` is the SCARD return code (unsigned 32-bit), ``name`` its
    ``SCARD_*`` name, ``message`` the explanation; ``str()`` is one readable line."""

    def __init__(self, code: int, message: str) -> None:
        self.code = _u32(code)
        self.message = message
        super().__init__(f"{message} [{scard_name(self.code)} 0x{self.code:08X}]")

    @property
    def name(self) -> str:
        return scard_name(self.code)

    @property
    def card_gone(self) -> bool:
        """True when the card was removed (or the exchange with it broke off)."""
        return self.code in (SCARD_W_REMOVED_CARD, SCARD_E_NOT_TRANSACTED, SCARD_E_NO_SMARTCARD)


def _error(hresult: int, what: str) -> PcscTransportError:
    code = _u32(hresult)
    try:
        text = str(_scard().SCardGetErrorMessage(hresult)).strip()
    except Exception:  # pragma: no cover - defensive
        text = ""
    return PcscTransportError(code, f"{what}: {text}" if text else what)


def _check(hresult: int, what: str) -> None:
    if _u32(hresult) != SCARD_S_SUCCESS:
        raise _error(hresult, what)


class Share(enum.IntEnum):
    """How the connection shares the card with other PC/SC clients."""

    EXCLUSIVE = 1  # SCARD_SHARE_EXCLUSIVE
    SHARED = 2  # SCARD_SHARE_SHARED


class Protocol(enum.IntFlag):
    """Acceptable transmission protocols (``T0 | T1``: whichever the card offers)."""

    T0 = 1  # SCARD_PROTOCOL_T0
    T1 = 2  # SCARD_PROTOCOL_T1
    ANY = T0 | T1


@contextlib.contextmanager
def _context() -> Iterator[Any]:
    scard = _scard()
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(hresult, "cannot reach pcscd (SCardEstablishContext)")
    try:
        yield ctx
    finally:
        scard.SCardReleaseContext(ctx)


def _list(ctx: Any) -> list[str]:
    hresult, names = _scard().SCardListReaders(ctx, [])
    if _u32(hresult) == SCARD_E_NO_READERS_AVAILABLE:
        return []
    _check(hresult, "SCardListReaders")
    return list(names)


def list_readers() -> list[str]:
    """Names of the PC/SC readers this process's pcscd lists (empty when there are none)."""
    with _context() as ctx:
        return _list(ctx)


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
        on_exchange: Callable[[TraceRecord], None] | None = None,
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
        scard = _scard()
        hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(hresult, "cannot reach pcscd (SCardEstablishContext)")
        try:
            hresult, handle, active = scard.SCardConnect(
                ctx, self.reader_name, int(self.share), int(self.protocol)
            )
            _check(hresult, f"cannot connect to the card in {self.reader_name!r}")
        except BaseException:
            scard.SCardReleaseContext(ctx)
            raise
        self._ctx, self._handle, self._active = ctx, handle, int(active)
        return self

    def disconnect(self, *, reset: bool = False) -> None:
        """Disconnect (leaving the card as it is, or resetting it). Never raises for a card
        that is already gone."""
        handle, ctx = self._handle, self._ctx
        self._handle = self._ctx = None
        self._active = 0
        scard = _scard()
        if handle is not None:
            scard.SCardDisconnect(handle, _RESET_CARD if reset else _LEAVE_CARD)
        if ctx is not None:
            scard.SCardReleaseContext(ctx)

    close = disconnect

    def reconnect(self, *, reset: bool = True) -> None:
        """Re-establish the connection (after a reset by another client, or a removal and
        re-insertion), resetting the card (cold state) unless ``reset=False``."""
        if self._handle is None:
            self.connect()
            return
        hresult, active = _scard().SCardReconnect(
            self._handle,
            int(self.share),
            int(self.protocol),
            _RESET_CARD if reset else _LEAVE_CARD,
        )
        _check(hresult, f"cannot reconnect to the card in {self.reader_name!r}")
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
        hresult, _reader, _state, _protocol, atr = _scard().SCardStatus(self._require())
        _check(hresult, f"SCardStatus({self.reader_name!r})")
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
        scard = _scard()
        _check(scard.SCardBeginTransaction(handle), f"SCardBeginTransaction({self.reader_name!r})")
        try:
            yield self
        finally:
            if self._handle is handle:
                scard.SCardEndTransaction(handle, _LEAVE_CARD)

    def transmit(self, command: bytes) -> bytes:
        """Send one C-APDU (short or extended) and return the R-APDU (data ‖ SW1 SW2)."""
        handle = self._require()
        scard = _scard()
        start = time.perf_counter()
        hresult, response = scard.SCardTransmit(handle, self._active, list(command))
        duration = time.perf_counter() - start
        error: PcscTransportError | None = None
        if _u32(hresult) != SCARD_S_SUCCESS:
            error = _error(hresult, f"transmit to {self.reader_name!r} failed")
        elif len(response) < 2:
            error = self._no_answer()
        if error is not None:
            if self.on_exchange is not None:
                extra = {"error": error.name}
                self.on_exchange(TraceRecord(time.time(), bytes(command), b"", duration, "", extra))
            raise error
        answer = bytes(response)
        if self.on_exchange is not None:
            self.on_exchange(TraceRecord(time.time(), bytes(command), answer, duration))
        return answer

    def _no_answer(self) -> PcscTransportError:
        """SCardTransmit succeeded without a status word: the card went away mid-command."""
        where = f"the card in {self.reader_name!r} returned no response"
        result = _scard().SCardStatus(self._handle)
        if _u32(result[0]) in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD) or (
            _u32(result[0]) == SCARD_S_SUCCESS and not result[2] & _STATE_PRESENT
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
            atr = _atr_of(reader)
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


def _atr_of(reader: str) -> bytes:
    scard = _scard()
    with _context() as ctx:
        hresult, states = scard.SCardGetStatusChange(ctx, 0, [(reader, 0)])
        if _u32(hresult) != SCARD_S_SUCCESS:
            return b""
        return bytes(states[0][2])


def find_my_number_cards(readers: list[str] | None = None) -> list[FoundCard]:
    """The readers (all by default) that hold a My Number card: a known My Number ATR
    (:data:`card_emulator.atrs.KNOWN_ATRS`) or a JPKI-AP that answers SELECT with ``9000``.
    ``kind`` comes from the token label in JPKI EF ``0006``. Non-destructive: sends only
    SELECT and READ BINARY, and never VERIFY."""
    names = list_readers() if readers is None else readers
    found = []
    for reader in names:
        card = _probe(reader)
        if card is not None:
            found.append(card)
    return found
