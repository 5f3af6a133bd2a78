"""The one pyscard helper: lazy import, errors, contexts, listing and waiting on readers.

Both sides use it: the card side's pcscd manager waits for its readers and cards here, the host
side's PC/SC transport opens its connections here. Every failed PC/SC call surfaces as one
exception type, :class:`ScardError`, which carries the SCARD code (``SCARD_W_REMOVED_CARD``
0x80100069, ``SCARD_E_NOT_TRANSACTED`` 0x80100016, ``SCARD_E_NO_SMARTCARD`` 0x8010000C, ...)
and a one-line message; it is a :class:`PcscError`, so the CLI's handler prints it without a
traceback.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, on the first ``SCardEstablishContext``
(see :mod:`readers.card_side.pcscd`): the first PC/SC call of the process decides which pcscd
every later call reaches. Functions taking ``socket_path`` only check that it is that one;
:func:`ask_in_subprocess` asks any other pcscd from a short-lived child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from apdu.errors import MynacardError

__all__ = [
    "DEFAULT_SOCKET",
    "SCARD_E_NOT_TRANSACTED",
    "SCARD_E_NO_SMARTCARD",
    "SCARD_E_SHARING_VIOLATION",
    "SCARD_W_REMOVED_CARD",
    "SOCKET_ENV",
    "PcscError",
    "ReaderListing",
    "ScardError",
    "ask_in_subprocess",
    "check",
    "context",
    "list_readers",
    "pyscard",
    "scard_name",
    "wait_for_card",
    "wait_for_readers",
]

SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
DEFAULT_SOCKET = "/run/pcscd/pcscd.comm"
PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

SCARD_S_SUCCESS = 0x00000000
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_W_REMOVED_CARD = 0x80100069

# pcsc-lite's pcsclite.h; not every pyscard build exports every name or constant.
_FALLBACK_NAMES = {
    SCARD_E_INVALID_HANDLE: "SCARD_E_INVALID_HANDLE",
    SCARD_E_UNKNOWN_READER: "SCARD_E_UNKNOWN_READER",
    SCARD_E_TIMEOUT: "SCARD_E_TIMEOUT",
    SCARD_E_SHARING_VIOLATION: "SCARD_E_SHARING_VIOLATION",
    SCARD_E_NO_SMARTCARD: "SCARD_E_NO_SMARTCARD",
    SCARD_E_NOT_TRANSACTED: "SCARD_E_NOT_TRANSACTED",
    SCARD_E_NO_SERVICE: "SCARD_E_NO_SERVICE",
    SCARD_E_NO_READERS_AVAILABLE: "SCARD_E_NO_READERS_AVAILABLE",
    SCARD_W_REMOVED_CARD: "SCARD_W_REMOVED_CARD",
}
SCOPE_USER = 0x0000
STATE_UNAWARE = 0x0000
STATE_CHANGED = 0x0002
STATE_UNKNOWN = 0x0004
STATE_PRESENT = 0x0020

_scard_module: Any = None
_names: dict[int, str] | None = None


class PcscError(MynacardError, RuntimeError):
    """A PC/SC call failed, or pcscd is not in the state we need."""


class ScardError(PcscError):
    """A PC/SC call failed. ``code`` is the SCARD return code (unsigned 32-bit), ``name`` its
    ``SCARD_*`` name, ``message`` the explanation; ``str()`` is one readable line."""

    def __init__(self, code: int, message: str) -> None:
        self.code = u32(code)
        self.message = message
        super().__init__(f"{message} [{scard_name(self.code)} 0x{self.code:08X}]")

    @property
    def name(self) -> str:
        return scard_name(self.code)

    @property
    def card_gone(self) -> bool:
        """True when the card was removed (or the exchange with it broke off)."""
        return self.code in (SCARD_W_REMOVED_CARD, SCARD_E_NOT_TRANSACTED, SCARD_E_NO_SMARTCARD)


def u32(hresult: int) -> int:
    """A PC/SC return code as unsigned 32 bits (pyscard may hand out signed values)."""
    return hresult & 0xFFFFFFFF


def pyscard() -> Any:
    """pyscard's low-level ``smartcard.scard``, imported on first use."""
    global _scard_module  # noqa: PLW0603 - a lazily imported module
    if _scard_module is None:
        try:
            from smartcard import scard as module  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - pyscard is a dependency
            raise ScardError(
                SCARD_E_NO_SERVICE,
                "pyscard is not importable; install it (pip install pyscard; on Linux it "
                "builds from source and needs the Debian package libpcsclite-dev)",
            ) from exc
        _scard_module = module
    return _scard_module


def scard_name(code: int) -> str:
    """``SCARD_*`` name of a PC/SC return code (hex text when unknown)."""
    global _names  # noqa: PLW0603 - built once from pyscard's constants
    code = u32(code)
    if _names is None:
        names = dict(_FALLBACK_NAMES)
        with contextlib.suppress(ScardError):
            module = pyscard()
            for name in sorted(dir(module), reverse=True):
                value = getattr(module, name)
                if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_")) and (
                    isinstance(value, int)
                ):
                    names.setdefault(u32(value), name)
        _names = names
    return _names.get(code, f"0x{code:08X}")


def call_error(hresult: int, what: str) -> ScardError:
    """The :class:`ScardError` for a failed call, with pcsc-lite's own explanation."""
    try:
        text = str(pyscard().SCardGetErrorMessage(hresult)).strip()
    except Exception:  # pragma: no cover - defensive
        text = ""
    return ScardError(hresult, f"{what}: {text}" if text else what)


def check(hresult: int, what: str) -> None:
    """Raise :class:`ScardError` unless ``hresult`` is ``SCARD_S_SUCCESS``."""
    if u32(hresult) != SCARD_S_SUCCESS:
        raise call_error(hresult, what)


def process_socket() -> str:
    """The pcscd socket this process's libpcsclite talks to."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def check_process_socket(socket_path: str | None) -> None:
    """Refuse a ``socket_path`` other than this process's (libpcsclite cannot switch)."""
    if socket_path is not None and os.path.abspath(socket_path) != os.path.abspath(
        process_socket()
    ):
        raise PcscError(
            f"this process's libpcsclite talks to {process_socket()} ({SOCKET_ENV}), not to "
            f"{socket_path}; libpcsclite reads {SOCKET_ENV} once per process, so use a "
            "subprocess with that environment instead"
        )


def establish() -> Any:
    """A new PC/SC context (the caller releases it)."""
    module = pyscard()
    hresult, ctx = module.SCardEstablishContext(SCOPE_USER)
    check(hresult, f"cannot reach pcscd at {process_socket()} (SCardEstablishContext)")
    return ctx


@contextlib.contextmanager
def context() -> Iterator[Any]:
    """A PC/SC context for the block."""
    ctx = establish()
    try:
        yield ctx
    finally:
        pyscard().SCardReleaseContext(ctx)


def readers_of(ctx: Any) -> list[str]:
    """Reader names in ``ctx`` (empty when there are none)."""
    hresult, names = pyscard().SCardListReaders(ctx, [])
    if u32(hresult) == SCARD_E_NO_READERS_AVAILABLE:
        return []
    check(hresult, "SCardListReaders")
    return list(names)


def list_readers(*, socket_path: str | None = None) -> list[str]:
    """Names of the readers this process's pcscd lists (``socket_path`` only checks it is that
    one); empty when there are none."""
    check_process_socket(socket_path)
    with context() as ctx:
        return readers_of(ctx)


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def wait_for_readers(
    names: Iterable[str], *, timeout: float = 10.0, socket_path: str | None = None
) -> list[str]:
    """Block on SCardGetStatusChange (PnP notification) until every name is listed.
    Returns the full reader list; raises TimeoutError naming the missing readers."""
    check_process_socket(socket_path)
    wanted = set(names)
    deadline = time.monotonic() + timeout
    with context() as ctx:
        pnp_state = STATE_UNAWARE
        while True:
            present = readers_of(ctx)
            missing = wanted.difference(present)
            if not missing:
                return present
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"readers not listed within {timeout} s: {sorted(missing)}; listed: {present}"
                )
            hresult, states = pyscard().SCardGetStatusChange(
                ctx, _ms(remaining), [(PNP_NOTIFICATION, pnp_state)]
            )
            if u32(hresult) == SCARD_S_SUCCESS:
                pnp_state = states[0][1] & ~STATE_CHANGED
            elif u32(hresult) != SCARD_E_TIMEOUT:
                raise call_error(hresult, "SCardGetStatusChange")


def wait_for_card(
    reader: str, *, present: bool = True, timeout: float = 5.0, socket_path: str | None = None
) -> bytes:
    """Block on SCardGetStatusChange until a card is present in (or absent from) ``reader``.
    Returns the ATR pcscd reports (empty when waiting for absence). pcscd notices a vpcd
    insertion or removal within about one 400 ms presence poll."""
    check_process_socket(socket_path)
    deadline = time.monotonic() + timeout
    with context() as ctx:
        state = STATE_UNAWARE
        while True:
            hresult, states = pyscard().SCardGetStatusChange(
                ctx, _ms(deadline - time.monotonic()), [(reader, state)]
            )
            code = u32(hresult)
            if code == SCARD_E_TIMEOUT:
                what = "present" if present else "absent"
                raise TimeoutError(f"card not {what} in {reader!r} within {timeout} s")
            if code == SCARD_E_UNKNOWN_READER or (
                code == SCARD_S_SUCCESS and states[0][1] & STATE_UNKNOWN
            ):
                where = f"pcscd ({process_socket()})"
                raise ScardError(SCARD_E_UNKNOWN_READER, f"{where} has no reader named {reader!r}")
            check(hresult, f"SCardGetStatusChange({reader!r})")
            _, event, atr = states[0]
            if bool(event & STATE_PRESENT) == present:
                return bytes(atr) if present else b""
            state = event & ~STATE_CHANGED


def atr_in(reader: str) -> bytes:
    """The ATR pcscd last saw in ``reader`` without connecting (empty when it cannot say)."""
    with context() as ctx:
        hresult, states = pyscard().SCardGetStatusChange(ctx, 0, [(reader, STATE_UNAWARE)])
        if u32(hresult) != SCARD_S_SUCCESS:
            return b""
        return bytes(states[0][2])


# -- another pcscd, asked from a child process ----------------------------------------------

_LIST_SNIPPET = """
import json
from smartcard import scard
out = {"readers": [], "present": []}
rv, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
if rv == scard.SCARD_S_SUCCESS:
    rv, names = scard.SCardListReaders(ctx, [])
    if rv == scard.SCARD_S_SUCCESS and names:
        out["readers"] = list(names)
        rv, states = scard.SCardGetStatusChange(
            ctx, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in names])
        if rv == scard.SCARD_S_SUCCESS:
            out["present"] = [s[0] for s in states if s[1] & scard.SCARD_STATE_PRESENT]
    scard.SCardReleaseContext(ctx)
else:
    out["error"] = rv
print(json.dumps(out))
"""


@dataclass(frozen=True, slots=True)
class ReaderListing:
    """What a pcscd lists: its readers, and those of them that hold a card."""

    readers: tuple[str, ...]
    present: frozenset[str]


def ask_in_subprocess(socket_path: str, timeout: float) -> ReaderListing | None:
    """Readers and present cards of the pcscd at ``socket_path``, asked by a child Python
    (this process's libpcsclite may be bound to another socket). None if it cannot answer."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
            [sys.executable, "-c", _LIST_SNIPPET],
            env={**os.environ, SOCKET_ENV: socket_path},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        answer = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(answer, dict) or "error" in answer:
        return None
    readers = tuple(str(name) for name in answer.get("readers", []))
    return ReaderListing(readers, frozenset(str(name) for name in answer.get("present", [])))
