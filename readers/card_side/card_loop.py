"""One thread that serves every card connection of a process: a ``selectors`` loop with timers.

A :class:`~readers.card_side.vpcd.VpcdClient` registers its socket here instead of owning a
thread: the loop calls its handler when the socket is readable (or writable, while an answer is
still going out), runs timers (a latency fault's delay) and runs calls other threads post with
:meth:`CardLoop.call_soon` (insertion, removal, stop). Everything a handler does runs on the
loop's thread, so one slow card holds up the others: cards must answer without blocking, and a
card that wants to wait asks for a timer instead of sleeping.

:func:`shared_loop` is the process's loop, started on first use (a daemon thread).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["CardLoop", "Timer", "shared_loop"]

log = logging.getLogger(__name__)

Handler = Callable[[int], None]
"""Called with the ready events (``selectors.EVENT_READ`` / ``EVENT_WRITE`` bits)."""


class Timer:
    """A call scheduled with :meth:`CardLoop.call_later`; :meth:`cancel` drops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (if it has not run yet)."""
        self.cancelled = True


class CardLoop:
    """A selector loop in one daemon thread, with timers and calls from other threads."""

    def __init__(self, name: str = "vpcd-cards") -> None:
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: deque[Callable[[], object]] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._woken = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> CardLoop:
        """Start the loop's thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        return self

    @property
    def in_loop(self) -> bool:
        """True when called on the loop's own thread."""
        return threading.get_ident() == self._ident

    # -- what clients use -------------------------------------------------------------------

    def register(self, sock: socket.socket, events: int, handler: Handler) -> None:
        """Call ``handler(events)`` when ``sock`` is ready (loop thread only)."""
        self._selector.register(sock, events, handler)

    def modify(self, sock: socket.socket, events: int, handler: Handler) -> None:
        """Change what ``sock`` is watched for (loop thread only)."""
        self._selector.modify(sock, events, handler)

    def unregister(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (loop thread only; a socket not registered is ignored)."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the loop's thread, soon (from any thread)."""
        self._calls.append(callback)
        if not self.in_loop and not self._woken:
            self._woken = True
            with contextlib.suppress(BlockingIOError, InterruptedError):  # full of wake-ups
                self._wake_w.send(b"\0")

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` on the loop's thread after ``delay`` seconds (loop thread only)."""
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        self._ident = threading.get_ident()
        select = self._selector.select
        calls = self._calls
        timers = self._timers
        wake = self._wake_r
        while True:
            timeout: float | None = None
            if calls:
                timeout = 0.0
            elif timers:
                timeout = max(0.0, timers[0][0] - time.monotonic())
            for key, events in select(timeout):
                handler = key.data
                if handler is None:
                    self._woken = False
                    try:
                        while wake.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    continue
                try:
                    handler(events)
                except Exception:
                    log.exception("card loop: a handler raised")
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        self._guarded(timer.callback)
            while calls:
                self._guarded(calls.popleft())

    @staticmethod
    def _guarded(callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("card loop: a call raised")


_shared: CardLoop | None = None
_shared_lock = threading.Lock()


def shared_loop() -> CardLoop:
    """The process's card loop, started on first use."""
    global _shared  # noqa: PLW0603 - one loop per process
    with _shared_lock:
        if _shared is None:
            _shared = CardLoop().start()
        return _shared
