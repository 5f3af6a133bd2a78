"""The card side of vsmartcard's vpcd: plug a
:class:`~readers.card_side.virtual_card.VirtualCard` into a virtual reader slot over TCP.

vpcd (the pcscd driver ``libifdvpcd``) listens on one TCP port per reader slot; the card is the
TCP client, speaking the frames of :mod:`readers.card_side.vpcd_frames`. Connecting is inserting
the card, closing the socket is removing it. pcscd polls presence by asking for the ATR about
every 400 ms per reader.

One :class:`VpcdClient` is one card in one slot, served by its own thread (``start()``) or by
the caller (``run()``). Several clients may run in one process.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

from apdu import Observer, TraceRecord
from apdu.errors import MynacardError
from readers.card_side import netns as netns_module
from readers.card_side.virtual_card import VirtualCard
from readers.card_side.vpcd_frames import (
    CTRL_ATR,
    QUICKACK,
    apply_control,
    execute,
    recv_exact,
    send_frame,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Removal", "VpcdClient", "VpcdConnectError"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Port of slot 0 of the stock /etc/reader.conf.d/vpcd (0x8C7B); slot 1 is 35964.
DEFAULT_PORT = 35963


class VpcdConnectError(MynacardError, ConnectionError):
    """vpcd did not accept the card's connection within the connect timeout."""


class Removal(enum.Enum):
    """When an armed removal (:meth:`VpcdClient.remove_on_apdu`) pulls the card."""

    #: On receiving the APDU: the card never sees it, no answer. The host's SCardTransmit
    #: returns success with a 0-byte response (pyscard: "Card returned no valid response").
    BEFORE_PROCESSING = "before-processing"
    #: The card executes the APDU (state changes are kept), but the answer is lost.
    #: The host sees the same as for BEFORE_PROCESSING.
    AFTER_PROCESSING = "after-processing"
    #: The answer is sent, then the card is pulled. The host's next APDU fails with
    #: SCARD_E_NOT_TRANSACTED, later ones with SCARD_W_REMOVED_CARD.
    AFTER_ANSWER = "after-answer"


class VpcdClient:
    """One virtual card connected to one vpcd slot.

    The card is inserted when the client connects and removed when it closes the socket.
    ``start()`` serves in a daemon thread and returns once connected; ``run()`` serves in the
    calling thread. Both end on ``stop()``, or when vpcd closes the connection (pcscd exited),
    after which :attr:`closed_by_peer` is true.

    ``insert()`` and ``remove()`` may be called at any time while running, from any thread,
    including from inside the card or an ``on_exchange`` hook (then the removal takes effect
    after the current answer is sent).

    ``on_exchange`` gets a :class:`~apdu.TraceRecord` (``reader`` = :attr:`reader`) on the
    serving thread for every APDU the card answers, before the answer is sent, and for every
    card event: ``insert`` / ``remove`` (connection made / closed) and ``power_on`` /
    ``power_off`` / ``reset`` (from vpcd). Its exceptions are logged, never passed on.
    """

    def __init__(
        self,
        card: VirtualCard,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        *,
        connect_timeout: float = 10.0,
        on_exchange: Observer | None = None,
        reader: str = "",
        quickack: bool = True,
        netns: Callable[[], str | None] | None = None,
        reconnect_for: float = 0.0,
        on_lost: Callable[[VpcdClient], object] | None = None,
    ) -> None:
        """``connect_timeout`` bounds each insertion: connection attempts are retried with
        backoff (10 ms doubling to 0.5 s) while vpcd is not listening yet.
        ``quickack=False`` exists only to demonstrate the 44 ms stall; leave it on.
        ``netns`` names the network namespace the port lives in (a private pcscd's, see
        :mod:`readers.card_side.netns`), looked up at every connection.
        ``reconnect_for`` > 0: when vpcd closes the connection (pcscd exited or restarted), the
        card goes back into the reader as soon as vpcd listens again, retrying with backoff
        for that many seconds; if it cannot, :attr:`lost` is set, :attr:`error` says why and
        ``on_lost(client)`` is called. With 0 (default) the client simply stops."""
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
        self.card = card
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.on_exchange = on_exchange
        self.reader = reader or f"vpcd {host}:{port}"
        self.quickack = quickack
        self._quickack_opt = QUICKACK if quickack else None
        self.netns = netns
        self.reconnect_for = reconnect_for
        self.on_lost = on_lost
        self.lost = False
        self.reconnections = 0

        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stopping = False
        self._want_inserted = True
        self._close_requested = False  # our own removal/stop, as opposed to vpcd closing
        self._sock: socket.socket | None = None
        self._serving_thread: int | None = None
        self._armed: tuple[int, Removal] | None = None

        self.error: BaseException | None = None
        self.closed_by_peer = False
        self.apdu_count = 0
        self.connections = 0

    def __repr__(self) -> str:
        state = "inserted" if self.connected else "removed"
        return f"<VpcdClient {self.host}:{self.port} {state}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the card's socket is connected (the card is "in the reader")."""
        return self._sock is not None

    @property
    def running(self) -> bool:
        return self._running

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, inserted: bool = True, timeout: float | None = None) -> VpcdClient:
        """Serve in a background thread. With ``inserted`` (default), return once connected
        and raise :class:`VpcdConnectError` if vpcd cannot be reached."""
        with self._cond:
            if self._running:
                raise RuntimeError(f"{self!r} is already running")
            self._reset_for_run(inserted)
            self._running = True
            target = self.connections + 1
            self._thread = threading.Thread(
                target=self._thread_main, name=f"vpcd-card-{self.host}:{self.port}", daemon=True
            )
        self._thread.start()
        if inserted:
            self._wait_connected(target, timeout)
        return self

    def run(self, *, inserted: bool = True) -> None:
        """Serve in the calling thread until ``stop()`` or until vpcd closes the connection.
        Raises :class:`VpcdConnectError` if an insertion cannot connect."""
        with self._cond:
            if self._running:
                raise RuntimeError(f"{self!r} is already running")
            self._reset_for_run(inserted)
            self._running = True
        try:
            self._loop()
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Remove the card (close the socket) and end the serving loop."""
        with self._cond:
            self._stopping = True
            self._close_requested = True
            self._shutdown_socket()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{self!r}: serving thread did not stop within {timeout} s")

    def __enter__(self) -> VpcdClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- insertion and removal --------------------------------------------------------------

    def insert(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Connect the card (insert it). With ``wait``, return once connected."""
        with self._cond:
            if not self._running:
                raise RuntimeError(f"{self!r} is not running")
            if self._want_inserted and self._sock is not None:
                return  # already in
            # a socket still set here belongs to a removal in progress: wait for a new one
            target = self.connections + 1
            self._want_inserted = True
            self._cond.notify_all()
        if wait:
            self._wait_connected(target, timeout)

    def remove(self, *, wait: bool = True, timeout: float = 5.0) -> None:
        """Close the card's socket (remove it). With ``wait``, return once it is closed.
        Called from the serving thread (card or hook), the socket is closed right after
        the current answer has been sent."""
        with self._cond:
            self._want_inserted = False
            self._close_requested = True
            self._armed = None
            if threading.get_ident() == self._serving_thread:
                return  # _serve() closes after sending the current answer
            self._shutdown_socket()
            self._cond.notify_all()
            if wait and not self._cond.wait_for(lambda: self._sock is None, timeout):
                raise TimeoutError(f"{self!r}: card not removed within {timeout} s")

    def remove_on_apdu(self, n: int = 1, *, when: Removal = Removal.AFTER_ANSWER) -> None:
        """Arm a one-shot removal at the ``n``-th APDU from now (1 = the next one).
        Control messages (power, ATR requests) do not count. The card stays removed
        until ``insert()``."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._cond:
            self._armed = (n, when)

    # -- internals --------------------------------------------------------------------------

    def _reset_for_run(self, inserted: bool) -> None:
        self._stopping = False
        self._want_inserted = inserted
        self._close_requested = False
        self.error = None
        self.closed_by_peer = False

    def _thread_main(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # recorded for start()/insert() to re-raise
            log.debug("%r: serving loop ended with %r", self, exc)
            with self._cond:
                self.error = exc
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _wait_connected(self, target: int, timeout: float | None) -> None:
        """Wait for connection number ``target`` (counted by :attr:`connections`)."""
        limit = self.connect_timeout + 5.0 if timeout is None else timeout

        def connected() -> bool:
            return self.connections >= target and self._sock is not None

        with self._cond:
            done = self._cond.wait_for(
                lambda: connected() or self.error is not None or not self._running, limit
            )
            if self.error is not None:
                raise self.error
            if not connected():
                if not done:
                    raise TimeoutError(f"{self!r}: not connected within {limit} s")
                raise RuntimeError(f"{self!r} stopped before the card was inserted")

    def _shutdown_socket(self) -> None:
        # shutdown() (not close()) wakes a recv() blocked in the serving thread.
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _loop(self) -> None:
        with self._cond:
            self._serving_thread = threading.get_ident()
        pending: socket.socket | None = None  # connected by a reconnection
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._want_inserted)
                    if self._stopping:
                        if pending is not None:
                            pending.close()
                        return
                sock, pending = pending or self._connect(), None
                if sock is None:
                    continue
                self._observe(TraceRecord.card_event("insert", reader=self.reader))
                try:
                    self._serve(sock)
                finally:
                    self._observe(TraceRecord.card_event("remove", reader=self.reader))
                    with self._cond:  # under the lock: no shutdown() on a closed socket
                        sock.close()
                        self._sock = None
                        peer_closed = not self._close_requested and self._want_inserted
                        if peer_closed:
                            self._want_inserted = False
                            self.closed_by_peer = True
                        self._cond.notify_all()
                if peer_closed:
                    if self.reconnect_for <= 0:
                        log.info("%r: vpcd closed the connection", self)
                        return
                    pending = self._reconnect()
                    if pending is None:
                        return
        finally:
            with self._cond:
                self._serving_thread = None

    def _reconnect(self) -> socket.socket | None:
        """After vpcd closed the connection: the new connection once it listens again, or
        ``None`` (given up, or stopped meanwhile)."""
        log.warning(
            "%r: vpcd closed the connection (pcscd exited or restarted); reconnecting for up "
            "to %.0f s",
            self,
            self.reconnect_for,
        )
        with self._cond:
            self._want_inserted = True
            self.closed_by_peer = False
        try:
            sock = self._open_socket(self.reconnect_for)
        except VpcdConnectError as exc:
            with self._cond:
                self.lost = True
                self.closed_by_peer = True
                self._want_inserted = False
                self.error = exc
                self._cond.notify_all()
            log.error("%r: reader lost: %s", self, exc)
            if self.on_lost is not None:
                self.on_lost(self)
            return None
        if sock is not None:
            self.reconnections += 1
            log.warning("%r: vpcd listens again; the card is back in its reader", self)
        return sock

    def _connect(self) -> socket.socket | None:
        """Connect with bounded retries; None if the insertion was cancelled meanwhile."""
        return self._open_socket(self.connect_timeout)

    def _socket(self, timeout: float) -> socket.socket:
        path = self.netns() if self.netns is not None else None
        if path is None:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        return netns_module.connect_in(path, self.host, self.port, timeout)

    def _open_socket(self, within: float) -> socket.socket | None:
        deadline = time.monotonic() + within
        delay = 0.01
        while True:
            remaining = deadline - time.monotonic()
            try:
                sock = self._socket(max(remaining, 0.1))
            except socket.gaierror as exc:
                raise VpcdConnectError(f"cannot resolve vpcd host {self.host!r}: {exc}") from exc
            except OSError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VpcdConnectError(
                        f"vpcd at {self.host}:{self.port} not reachable within "
                        f"{within:g} s ({exc}); is pcscd running with a vpcd reader "
                        "on that port?"
                    ) from exc
                with self._cond:
                    if self._cond.wait_for(
                        lambda: self._stopping or not self._want_inserted, min(delay, left)
                    ):
                        return None
                delay = min(delay * 2, 0.5 if within <= self.connect_timeout else 2.0)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._stopping or not self._want_inserted:
                    sock.close()
                    return None
                self._sock = sock
                self._close_requested = False
                self.connections += 1
                self._cond.notify_all()
            log.debug("%r: connected", self)
            return sock

    def _serve(self, sock: socket.socket) -> None:
        """Answer vpcd until EOF, an error, or a removal."""
        card = self.card
        quickack = self._quickack_opt
        while self._want_inserted:  # remove() from the card or a hook: after the answer
            header = recv_exact(sock, 2, quickack)
            if header is None:
                return
            (size,) = struct.unpack(">H", header)
            msg = recv_exact(sock, size, quickack) if size else b""
            if msg is None:
                return
            if size == 1:
                if msg[0] != CTRL_ATR:
                    event = apply_control(card, msg[0], self)
                    if event is not None:
                        self._observe(TraceRecord.card_event(event, reader=self.reader))
                elif not send_frame(sock, card.atr):  # a card whose ``atr`` raises ends the
                    return  # loop (the error is recorded): unanswered, vpcd would wait forever
                continue
            if size == 0:
                continue
            self.apdu_count += 1
            when = self._check_armed()
            if when is Removal.BEFORE_PROCESSING:
                return
            started, start = time.time(), time.perf_counter()
            response = execute(card, msg, self)
            if not response and not self._want_inserted:
                return  # the card removed itself while answering (a relayed card pulled out)
            if self.on_exchange is not None:
                duration = time.perf_counter() - start
                self._observe(TraceRecord(started, msg, response, duration, reader=self.reader))
            if when is Removal.AFTER_PROCESSING:
                return
            if not send_frame(sock, response) or when is Removal.AFTER_ANSWER:
                return

    def _observe(self, record: TraceRecord) -> None:
        if self.on_exchange is None:
            return
        try:
            self.on_exchange(record)
        except Exception:
            log.exception("%r: on_exchange hook raised", self)

    def _check_armed(self) -> Removal | None:
        if self._armed is None:
            return None
        with self._cond:
            if self._armed is None:
                return None
            remaining, when = self._armed
            if remaining > 1:
                self._armed = (remaining - 1, when)
                return None
            self._armed = None
            self._want_inserted = False
            self._close_requested = True
            return when
