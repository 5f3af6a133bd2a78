"""The card side of vsmartcard's vpcd: plug a
:class:`~readers.card_side.virtual_card.VirtualCard` into a virtual reader slot over TCP.

vpcd (the pcscd driver ``libifdvpcd``) listens on one TCP port per reader slot; the card is the
TCP client, speaking the frames of :mod:`readers.card_side.vpcd_frames`. Connecting is inserting
the card, closing the socket is removing it. pcscd polls presence by asking for the ATR about
every 400 ms per reader.

One :class:`VpcdClient` is one card in one slot. It owns no thread: every client of a process
is served by one :class:`~readers.card_side.card_loop.CardLoop` (a ``selectors`` loop), which
reads a frame's header and body with one ``recv``, answers with one ``send`` and runs latency
as timers.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

from apdu import Observer, TraceRecord
from apdu.errors import MynacardError
from readers.card_side import netns as netns_module
from readers.card_side.card_loop import CardLoop, Timer, shared_loop
from readers.card_side.virtual_card import VirtualCard
from readers.card_side.vpcd_frames import CTRL_ATR, QUICKACK, apply_control, execute

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Removal", "VpcdClient", "VpcdConnectError"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Port of slot 0 of the stock /etc/reader.conf.d/vpcd (0x8C7B); slot 1 is 35964.
DEFAULT_PORT = 35963
#: One ``recv`` takes a whole frame: 2 length bytes and up to 65535 of payload.
RECV_SIZE = 0x10001
#: How long the loop waits for a frame's body once its header is in (see ``_read_rest``).
REST_WAIT_MS = 1


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
    """One virtual card connected to one vpcd slot, served by a :class:`CardLoop`.

    The card is inserted when the client connects and removed when it closes the socket.
    ``start()`` registers the card with the loop (the process's :func:`shared_loop` unless
    ``loop`` is given) and returns once connected; ``run()`` does the same and returns when the
    client ends. Both end on ``stop()``, or when vpcd closes the connection (pcscd exited),
    after which :attr:`closed_by_peer` is true. No thread is owned: every card of the process
    is served by the loop's one thread, and connection attempts run in short-lived helpers.

    ``insert()`` and ``remove()`` may be called at any time while running, from any thread,
    including from inside the card or an ``on_exchange`` hook (then the removal takes effect
    after the current answer is sent).

    ``on_exchange`` gets a :class:`~apdu.TraceRecord` (``reader`` = :attr:`reader`) on the
    loop's thread for every APDU the card answers, before the answer is sent (so a client holding
    an answer can rely on the card's record of it), and for every card event: ``insert`` /
    ``remove`` (connection made / closed) and ``power_on`` / ``power_off`` / ``reset`` (from
    vpcd). Its exceptions are logged, never passed on. Without
    an observer no record (nor clock reading) is made.

    A card with an ``answer_delay(command)`` method (:class:`~readers.card_side.virtual_card.
    DelayingCard`, e.g. a latency fault) is asked before each APDU; a positive delay is a timer
    on the loop, during which the other cards are served.
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
        loop: CardLoop | None = None,
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
        self._loop_arg = loop
        self._loop: CardLoop | None = loop

        self._cond = threading.Condition()
        self._running = False
        self._stopping = False
        self._want_inserted = True
        self._close_requested = False  # our own removal/stop, as opposed to vpcd closing
        self._sock: socket.socket | None = None
        self._armed: tuple[int, Removal] | None = None
        self._connecting = False  # a connection helper thread is at work
        self._dispatching = False  # the loop is inside this card (transmit or hook)
        self._pending = bytearray()  # received bytes not yet a whole frame
        self._outbox = b""  # the part of an answer the socket did not take yet
        self._timer: Timer | None = None  # a delayed answer (latency)
        self._poll: select.poll | None = None  # this connection alone (_read_rest)
        self._local = host in ("127.0.0.1", "::1", "localhost")
        self._ask_delay: Callable[[bytes], float] | None = getattr(card, "answer_delay", None)

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
        """Serve on the card loop. With ``inserted`` (default), return once connected
        and raise :class:`VpcdConnectError` if vpcd cannot be reached."""
        with self._cond:
            if self._running:
                raise RuntimeError(f"{self!r} is already running")
            if self._loop is None:
                self._loop = shared_loop()
            self._reset_for_run(inserted)
            self._running = True
            target = self.connections + 1
            if inserted:
                self._spawn_connector(self.connect_timeout, reconnect=False)
        if inserted:
            self._wait_connected(target, timeout)
        return self

    def run(self, *, inserted: bool = True) -> None:
        """Serve until ``stop()`` or until vpcd closes the connection (the card loop does the
        work; this thread waits). Raises :class:`VpcdConnectError` if an insertion cannot
        connect."""
        self.start(inserted=inserted)
        self.join()
        if self.error is not None and not self.lost:
            raise self.error

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the client has ended (stopped, or vpcd gone); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Remove the card (close the socket) and end serving."""
        with self._cond:
            self._stopping = True
            self._close_requested = True
            self._want_inserted = False
            self._cond.notify_all()
            loop = self._loop
            if loop is None or not self._running:
                return
        if loop.in_loop:
            self._end()
            return
        loop.call_soon(self._end)
        if not self.join(timeout):
            raise TimeoutError(f"{self!r}: not stopped within {timeout} s")

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
        """Connect the card (insert it). With ``wait``, return once connected (on the loop's
        own thread it cannot wait: the connection is made after the current call)."""
        with self._cond:
            if not self._running:
                raise RuntimeError(f"{self!r} is not running")
            if self._want_inserted and self._sock is not None:
                return  # already in
            # a socket still set here belongs to a removal in progress: wait for a new one
            target = self.connections + 1
            self._want_inserted = True
            self._cond.notify_all()
            self._spawn_connector(self.connect_timeout, reconnect=False)
        if wait and not self._on_loop():
            self._wait_connected(target, timeout)

    def remove(self, *, wait: bool = True, timeout: float = 5.0) -> None:
        """Close the card's socket (remove it). With ``wait``, return once it is closed.
        Called from inside the card or a hook, the socket is closed right after the current
        answer has been sent."""
        with self._cond:
            self._want_inserted = False
            self._close_requested = True
            self._armed = None
            self._cond.notify_all()
            generation = self.connections
            loop = self._loop
            if loop is None or self._sock is None:
                return
        if loop.in_loop:
            if not self._dispatching:
                self._close(generation)
            return  # inside the card: closed after sending the current answer
        loop.call_soon(lambda: self._close(generation))
        with self._cond:
            if wait and not self._cond.wait_for(
                lambda: self._sock is None or self.connections != generation, timeout
            ):
                raise TimeoutError(f"{self!r}: card not removed within {timeout} s")

    def remove_on_apdu(self, n: int = 1, *, when: Removal = Removal.AFTER_ANSWER) -> None:
        """Arm a one-shot removal at the ``n``-th APDU from now (1 = the next one).
        Control messages (power, ATR requests) do not count. The card stays removed
        until ``insert()``."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._cond:
            self._armed = (n, when)

    # -- internals: any thread ---------------------------------------------------------------

    def _on_loop(self) -> bool:
        return self._loop is not None and self._loop.in_loop

    def _reset_for_run(self, inserted: bool) -> None:
        self._stopping = False
        self._want_inserted = inserted
        self._close_requested = False
        self.error = None
        self.closed_by_peer = False

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

    def _spawn_connector(self, within: float, *, reconnect: bool) -> None:
        """Start a helper thread that connects (call with :attr:`_cond` held)."""
        if self._connecting:
            return  # the helper at work makes this connection
        self._connecting = True
        threading.Thread(
            target=self._connector,
            args=(within, reconnect),
            name=f"vpcd-connect-{self.host}:{self.port}",
            daemon=True,
        ).start()

    def _connector(self, within: float, reconnect: bool) -> None:
        loop = self._loop
        assert loop is not None
        try:
            sock = self._open_socket(within)
        except BaseException as exc:  # recorded for start()/insert() to re-raise
            failure = exc
            loop.call_soon(lambda: self._connect_failed(failure, reconnect))
            return
        loop.call_soon(lambda: self._attach(sock, reconnect))

    def _socket(self, timeout: float) -> socket.socket:
        path = self.netns() if self.netns is not None else None
        if path is None:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        return netns_module.connect_in(path, self.host, self.port, timeout)

    def _open_socket(self, within: float) -> socket.socket | None:
        """Connect with bounded retries; None if the insertion was cancelled meanwhile."""
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
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            return sock

    # -- internals: the loop's thread ------------------------------------------------------

    def _connect_failed(self, exc: BaseException, reconnect: bool) -> None:
        with self._cond:
            self._connecting = False
            self.error = exc
            self._want_inserted = False
            if reconnect:
                self.lost = True
                self.closed_by_peer = True
            self._running = False
            self._cond.notify_all()
        if reconnect:
            log.error("%r: reader lost: %s", self, exc)
            if self.on_lost is not None:
                self.on_lost(self)
        else:
            log.debug("%r: connection failed: %r", self, exc)

    def _attach(self, sock: socket.socket | None, reconnect: bool) -> None:
        """A helper connected (``sock``) or gave up (``None``): the card is in, or not."""
        with self._cond:
            self._connecting = False
            wanted = self._running and not self._stopping and self._want_inserted
            if sock is None or not wanted or self._sock is not None:
                if sock is not None:
                    sock.close()
                if wanted and self._sock is None:  # insert() came after the helper gave up
                    self._spawn_connector(self.connect_timeout, reconnect=False)
                self._cond.notify_all()
                return
            self._sock = sock
            self._close_requested = False
            self.connections += 1
            if reconnect:
                self.reconnections += 1
            self._pending = bytearray()
            self._outbox = b""
            self._poll = None
            self._cond.notify_all()
        if reconnect:
            log.warning("%r: vpcd listens again; the card is back in its reader", self)
        log.debug("%r: connected", self)
        self._quickack(sock)
        assert self._loop is not None
        self._loop.register(sock, selectors.EVENT_READ, self._ready)
        self._observe(TraceRecord.card_event("insert", reader=self.reader))

    def _end(self) -> None:
        """stop(): close the connection and end."""
        self._close(None)
        with self._cond:
            self._running = False
            self._cond.notify_all()

    def _close(self, generation: int | None, *, peer: bool = False) -> None:
        """Close connection number ``generation`` (None: whichever is open); ``peer``: vpcd
        closed it (or it failed)."""
        sock = self._sock
        if sock is None or (generation is not None and generation != self.connections):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._loop is not None
        self._loop.unregister(sock)
        self._observe(TraceRecord.card_event("remove", reader=self.reader))
        with self._cond:  # under the lock: waiters see the socket gone
            sock.close()
            self._sock = None
            self._pending = bytearray()
            self._outbox = b""
            peer_closed = peer and not self._close_requested and self._want_inserted
            if peer_closed:
                self._want_inserted = False
                self.closed_by_peer = True
            self._cond.notify_all()
        if not peer_closed:
            return
        if self.reconnect_for <= 0:
            log.info("%r: vpcd closed the connection", self)
            with self._cond:
                self._running = False
                self._cond.notify_all()
            return
        log.warning(
            "%r: vpcd closed the connection (pcscd exited or restarted); reconnecting for up "
            "to %.0f s",
            self,
            self.reconnect_for,
        )
        with self._cond:
            self._want_inserted = True
            self.closed_by_peer = False
            self._spawn_connector(self.reconnect_for, reconnect=True)

    def _quickack(self, sock: socket.socket) -> None:
        if self._quickack_opt is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, self._quickack_opt, 1)

    def _ready(self, events: int) -> None:
        """The loop's handler: the socket can be written (an answer pending) or read."""
        sock = self._sock
        if sock is None:
            return
        if events & selectors.EVENT_WRITE and not self._flush(sock):
            return
        if not events & selectors.EVENT_READ:
            return
        quickack = self._quickack_opt
        try:
            if quickack is not None:
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(None, peer=True)
            return
        if not data:
            self._close(None, peer=True)
            return
        pending = self._pending
        if not pending and self._timer is None and not self._outbox:
            size = len(data) - 2
            if size > 1 and (data[0] << 8 | data[1]) == size:  # one whole APDU: the usual case
                self._apdu(sock, data[2:])
                return
        pending += data
        if self._local and 2 <= len(pending) < 2 + (pending[0] << 8 | pending[1]):
            self._read_rest(sock, pending)
        self._drain(sock)

    def _read_rest(self, sock: socket.socket, pending: bytearray) -> None:
        """Debian's vpcd writes the header and the body with two ``send`` calls: the body
        follows within microseconds once our ACK is out, so wait for it here (at most
        :data:`REST_WAIT_MS`; vpcd on this host only) rather than go round the loop again."""
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        if not self._poll.poll(REST_WAIT_MS):
            return
        try:
            data = sock.recv(RECV_SIZE)
        except OSError:
            return  # the loop's next read sees it
        pending += data

    def _drain(self, sock: socket.socket) -> None:
        """Handle every whole frame received, in order, until one must wait."""
        pending = self._pending
        while len(pending) >= 2 and self._timer is None and not self._outbox:
            size = pending[0] << 8 | pending[1]
            if len(pending) < 2 + size:
                return
            message = bytes(pending[2 : 2 + size])
            del pending[: 2 + size]
            if size > 1:
                self._apdu(sock, message)
            elif size == 1:
                self._control(sock, message[0])
            if self._sock is not sock:
                return  # closed meanwhile

    def _control(self, sock: socket.socket, code: int) -> None:
        card = self.card
        if code != CTRL_ATR:
            event = apply_control(card, code, self)
            if event is not None and self.on_exchange is not None:
                self._observe(TraceRecord.card_event(event, reader=self.reader))
            return
        try:
            atr = card.atr
        except Exception as exc:  # unanswered, vpcd would wait forever: end (recorded)
            log.exception("%r: the card's ATR raised", self)
            with self._cond:
                self.error = exc
                self._close_requested = True
            self._end()
            return
        self._send(sock, atr)

    def _apdu(self, sock: socket.socket, message: bytes) -> None:
        self.apdu_count += 1
        when = self._check_armed() if self._armed is not None else None
        if when is Removal.BEFORE_PROCESSING:
            self._close(None)
            return
        delay = self._answer_delay(message) if self._ask_delay is not None else 0.0
        if delay > 0:
            assert self._loop is not None
            self._timer = self._loop.call_later(delay, lambda: self._delayed(sock, message, when))
            return
        self._answer(sock, message, when)

    def _answer_delay(self, message: bytes) -> float:
        ask = self._ask_delay
        if ask is None:
            return 0.0
        try:
            return float(ask(message))
        except Exception:
            log.exception("%r: card.answer_delay raised", self)
            return 0.0

    def _delayed(self, sock: socket.socket, message: bytes, when: Removal | None) -> None:
        self._timer = None
        if self._sock is not sock:
            return
        self._answer(sock, message, when)
        if self._sock is sock:
            self._drain(sock)  # frames that came during the delay

    def _answer(self, sock: socket.socket, message: bytes, when: Removal | None) -> None:
        self._dispatching = True
        try:
            if self.on_exchange is None:
                response = execute(self.card, message, self)
            else:
                started, start = time.time(), time.perf_counter()
                response = execute(self.card, message, self)
                duration = time.perf_counter() - start
                if response or self._want_inserted:
                    self._observe(
                        TraceRecord.exchange(started, message, response, duration, self.reader)
                    )
        finally:
            self._dispatching = False
        if not self._want_inserted and (not response or when is Removal.AFTER_PROCESSING):
            self._close(None)  # the card removed itself while answering: no answer
            return
        if when is Removal.AFTER_PROCESSING:
            self._close(None)
            return
        self._send(sock, response)
        if self._sock is sock and (when is Removal.AFTER_ANSWER or not self._want_inserted):
            self._close(None)  # removed from inside the card or a hook: after the answer

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        frame = len(payload).to_bytes(2, "big") + payload
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(None, peer=True)
            return
        if self._quickack_opt is not None:  # sending re-enters delayed-ACK mode: leave it now,
            with contextlib.suppress(OSError):  # before vpcd's next 2-byte header arrives
                sock.setsockopt(socket.IPPROTO_TCP, self._quickack_opt, 1)
        if sent < len(frame):
            self._outbox = frame[sent:]
            assert self._loop is not None
            self._loop.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._ready)

    def _flush(self, sock: socket.socket) -> bool:
        """Send more of a pending answer; False when the connection is gone."""
        try:
            sent = sock.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._close(None, peer=True)
            return False
        self._outbox = self._outbox[sent:]
        if not self._outbox:
            assert self._loop is not None
            self._loop.modify(sock, selectors.EVENT_READ, self._ready)
            self._drain(sock)
        return self._sock is sock

    def _observe(self, record: TraceRecord) -> None:
        if self.on_exchange is None:
            return
        try:
            self.on_exchange(record)
        except Exception:
            log.exception("%r: on_exchange hook raised", self)

    def _check_armed(self) -> Removal | None:
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
