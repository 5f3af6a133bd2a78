"""The ``virtualsmartcard`` (vsmartcard's vicc) library adapter.

:func:`smartcard_os` wraps any :class:`~readers.card_side.virtual_card.VirtualCard`
(``card_emulator.Card`` included) as a ``virtualsmartcard.VirtualSmartcard.SmartcardOS``;
:class:`ViccRunner` plugs it into a vpcd slot with the library's own ``VirtualICC`` loop.
:class:`~readers.card_side.vpcd.VpcdClient` does the same job without the library and is what
the project uses by default; this adapter exists for setups built around vicc.

The library is imported lazily (the rest of ``readers`` works without it). On Debian it is the
package ``python3-virtualsmartcard``, installed at a path that is on nobody's ``sys.path``
(``/usr/lib/python3/site-packages/virtualsmartcard``; a ``.pth`` file adds it), and it needs
the pip package ``pycryptodome`` (the ``Crypto`` namespace; Debian's python3-pycryptodome
installs ``Cryptodome`` and does not help). See the PC/SC runbook §5.

Work-arounds applied to the library as shipped (vicc 0.8):

* ``TCP_QUICKACK`` is re-armed before every ``recv`` (else every APDU stalls 40 ms), and a
  ``recv(n)`` returns exactly ``n`` bytes (the library assumes that; a large APDU split over
  TCP segments would otherwise reach the card truncated); a socket error reads as EOF (the
  library's own error path fails with ``UnboundLocalError``).
* The library logs through the root logger (``logging.info(...)``), and its first record
  would call ``logging.basicConfig()`` for an application that has not configured logging
  (so a later ``basicConfig`` of the application would do nothing); ``VirtualICC.__init__``
  even calls ``basicConfig`` itself. On loading, the library's modules get a stand-in
  ``logging`` that sends their records to the ``virtualsmartcard`` logger and ignores
  ``basicConfig``. Its warning about the default PIN of the built-in card (which we replace)
  and its connection errors (the runner reports them itself) are dropped.
* ``VirtualICC.__init__`` calls ``sys.exit()`` when vpcd is not reachable and ``run()`` when
  vpcd disconnects: the runner retries the connection until ``connect_timeout`` and turns
  both exits into a normal end.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from apdu.errors import MynacardError
from readers.card_side import netns as netns_module
from readers.card_side.virtual_card import VirtualCard

__all__ = [
    "DEBIAN_PACKAGE",
    "DEBIAN_PATH",
    "PIP_PACKAGE",
    "QuickAckSocket",
    "ViccConnectError",
    "ViccRunner",
    "ViccUnavailableError",
    "load_virtualsmartcard",
    "serve_vicc",
    "smartcard_os",
]

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "python3-virtualsmartcard"
PIP_PACKAGE = "pycryptodome"
#: Where Debian installs the library; a ``.pth`` file with this line makes it importable.
DEBIAN_PATH = "/usr/lib/python3/site-packages/virtualsmartcard"

_SW_NO_DIAGNOSIS = b"\x6f\x00"
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class ViccUnavailableError(MynacardError, ImportError):
    """The ``virtualsmartcard`` library (or its pycryptodome dependency) is not importable."""


class ViccConnectError(MynacardError, ConnectionError):
    """vpcd did not accept the vicc card's connection within the timeout."""


def _install_hint() -> str:
    return (
        f"install the Debian package '{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}), "
        f"make it importable with a .pth file containing the line {DEBIAN_PATH} in this "
        f"Python's site-packages, and install the pip package '{PIP_PACKAGE}' "
        f"(pip install {PIP_PACKAGE})"
    )


class _LibraryLogging:
    """Stands in for the ``logging`` module inside the library's modules: records go to the
    ``virtualsmartcard`` logger, ``basicConfig`` does nothing."""

    def __init__(self) -> None:
        self.debug = library_log.debug
        self.info = library_log.info
        self.warning = library_log.warning
        self.error = library_log.error
        self.exception = library_log.exception
        self.critical = library_log.critical
        self.log = library_log.log

    def basicConfig(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802 - logging's name
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)


class _DropReplacedMessages(logging.Filter):
    """The built-in card's "Using default SAM parameters. PIN=..." (we replace that card) and
    the connection errors of ``VirtualICC.__init__`` (the runner retries, then raises
    :class:`ViccConnectError`)."""

    _DROPPED = ("Using default SAM parameters", "Failed to open socket", "Is pcscd running")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._DROPPED)


library_log = logging.getLogger("virtualsmartcard")
library_log.addFilter(_DropReplacedMessages())


def load_virtualsmartcard() -> Any:
    """``virtualsmartcard.VirtualSmartcard``, or :class:`ViccUnavailableError` naming what to
    install. The loaded library modules log through the ``virtualsmartcard`` logger."""
    try:
        module = importlib.import_module("virtualsmartcard.VirtualSmartcard")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing.split(".")[0] in ("Crypto", "sha"):
            what = f"needs the pip package '{PIP_PACKAGE}' (its 'Crypto' modules)"
        else:
            what = "is not importable"
        raise ViccUnavailableError(
            f"the virtualsmartcard library {what} ({exc}); {_install_hint()}"
        ) from exc
    shim = _LibraryLogging()
    for name, loaded in list(sys.modules.items()):
        if name.split(".")[0] == "virtualsmartcard" and getattr(loaded, "logging", None) is logging:
            setattr(loaded, "logging", shim)  # noqa: B010 - a module global of the library
    return module


class _CardOS:
    """The SmartcardOS interface over a :class:`VirtualCard` (mixed into the library's class
    by :func:`smartcard_os`, so ``isinstance(os, SmartcardOS)`` holds)."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card

    def getATR(self) -> bytes:  # noqa: N802 - the library's method name
        return bytes(self.card.atr)

    def powerUp(self) -> None:  # noqa: N802
        self.card.power_on()

    def powerDown(self) -> None:  # noqa: N802
        self.card.power_off()

    def reset(self) -> None:
        self.card.reset()

    def execute(self, msg: bytes) -> bytes:
        try:
            return bytes(self.card.transmit(bytes(msg)))
        except Exception:
            log.exception("card raised on %s", bytes(msg[:4]).hex())
            return _SW_NO_DIAGNOSIS


_os_class: type | None = None


def smartcard_os(card: VirtualCard) -> Any:
    """``card`` as a ``virtualsmartcard.VirtualSmartcard.SmartcardOS`` (getATR, powerUp,
    powerDown, reset, execute)."""
    global _os_class  # noqa: PLW0603 - built once, after the lazy import
    if _os_class is None:
        library = load_virtualsmartcard()
        _os_class = type("CardSmartcardOS", (_CardOS, library.SmartcardOS), {})
    return _os_class(card)


class QuickAckSocket:
    """A socket wrapper for ``VirtualICC``: re-arms ``TCP_QUICKACK`` before every ``recv``,
    reads exactly ``n`` bytes, and reports errors as EOF (``b""``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, size: int, flags: int = 0) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            try:
                if _QUICKACK is not None:
                    self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                chunk = self.sock.recv(size - len(buf), flags)
            except OSError:
                return b""
            if not chunk:
                return b""
            buf += chunk
        return bytes(buf)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class ViccRunner:
    """One card in one vpcd slot, served by the library's ``VirtualICC.run()`` loop.

    ``start()`` connects (inserts the card) and serves in a daemon thread; ``stop()`` closes
    the socket (removes the card) and waits for the loop to end. Also a context manager.
    A runner serves one insertion; make a new one to insert the card again.
    """

    def __init__(
        self,
        card: VirtualCard,
        port: int,
        host: str = "127.0.0.1",
        *,
        connect_timeout: float = 10.0,
        netns: Callable[[], str | None] | None = None,
    ) -> None:
        """``netns`` names the network namespace of the port (a network-isolated pcscd's
        :attr:`~readers.card_side.reader_conf.VpcdReader.netns`)."""
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
        self.netns = netns
        self.card = card
        self.port = port
        self.host = host
        self.connect_timeout = connect_timeout
        self.icc: Any = None
        self.error: BaseException | None = None
        self.closed_by_peer = False
        self._raw: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ViccRunner {self.host}:{self.port} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def connect(self) -> Any:
        """Build the ``VirtualICC`` with our card and socket wrapper (connects to vpcd)."""
        library = load_virtualsmartcard()
        deadline = time.monotonic() + self.connect_timeout
        delay = 0.01
        while True:
            icc = self._construct(library)
            if icc is not None:
                break
            if time.monotonic() + delay > deadline:
                raise ViccConnectError(
                    f"vpcd at {self.host}:{self.port} not reachable within "
                    f"{self.connect_timeout} s; is pcscd running with a vpcd reader on that port?"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        with contextlib.suppress(Exception):
            atexit.unregister(icc.stop)  # the library registers it for every instance
        icc.os = smartcard_os(self.card)
        raw: socket.socket = icc.sock
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        icc.sock = QuickAckSocket(raw)
        self._raw = raw
        self.icc = icc
        return icc

    def _construct(self, library: Any) -> Any:
        path = self.netns() if self.netns is not None else None
        if path is not None:  # the library makes its socket in __init__: make it in there
            return netns_module.run_in(path, lambda: self._construct_here(library))
        return self._construct_here(library)

    def _construct_here(self, library: Any) -> Any:
        try:
            return library.VirtualICC(
                None, "iso7816", self.host, self.port, logginglevel=logging.WARNING
            )
        except SystemExit:  # the library's answer to "connection refused"
            return None

    def start(self) -> ViccRunner:
        """Insert the card and serve in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} was already started; make a new runner")
        self.connect()
        self._thread = threading.Thread(
            target=self.run, name=f"vicc-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def run(self) -> None:
        """Serve in the calling thread until :meth:`stop` or until vpcd disconnects."""
        if self.icc is None:
            self.connect()
        try:
            self.icc.run()
        except SystemExit:
            pass  # the library exits when the socket reaches EOF
        except BaseException as exc:
            self.error = exc
            log.exception("%r: VirtualICC loop failed", self)
        finally:
            self.closed_by_peer = not self._stopping
            if self._raw is not None:
                self._raw.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Remove the card (close the socket) and wait for the loop to end."""
        self._stopping = True
        if self._raw is not None:
            with contextlib.suppress(OSError):
                self._raw.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{self!r}: serving thread did not stop within {timeout} s")
        if self._raw is not None and not self.running:
            self._raw.close()

    def __enter__(self) -> ViccRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_vicc(
    card: VirtualCard,
    port: int,
    host: str = "127.0.0.1",
    *,
    connect_timeout: float = 10.0,
    netns: Callable[[], str | None] | None = None,
) -> ViccRunner:
    """Put ``card`` into the vpcd slot at ``host:port`` through ``VirtualICC``; returns the
    started :class:`ViccRunner` (call ``stop()`` to remove the card)."""
    return ViccRunner(card, port, host, connect_timeout=connect_timeout, netns=netns).start()
