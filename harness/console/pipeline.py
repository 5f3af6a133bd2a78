"""The console's work off the card's thread: decoding, masking, keeping and publishing events.

A served card calls its ``on_exchange`` observer on its serving thread (before the answer is
sent), so whatever the observer does delays that card's answer and every other card on
the loop. Decoding and masking one exchange costs the console some 30 µs of Python, which is
more than the card's own work; with :class:`EventPipeline` in its threaded form the card's
thread only puts the record on a queue (about a microsecond) and one worker thread does the
rest, in order, while the card waits for its next command.

Everything the console publishes goes through the same pipeline — exchanges, card events,
state changes and progress — so subscribers see them in the order they happened. In process
(no serving thread) the pipeline runs each item at once, so an action's events are there when
it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

_STOP = object()


class EventPipeline(Generic[Item]):
    """Runs ``handle`` on every submitted item, in submission order: at once, or (``threaded``)
    on one worker thread of its own. ``handle``'s exceptions are logged, never passed on."""

    def __init__(self, handle: Callable[[Item], object], *, threaded: bool, name: str) -> None:
        self._handle = handle
        self.threaded = threaded
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        if threaded:
            self._worker = threading.Thread(target=self._run, name=name, daemon=True)
            self._worker.start()

    def submit(self, item: Item) -> None:
        """Hand ``item`` over; never blocks and never raises."""
        if self._worker is None:
            self._call(item)
        else:
            self._queue.put(item)

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until every item submitted so far has been handled (at most ``timeout``
        seconds); False if the worker did not get there in time."""
        if self._worker is None or not self._worker.is_alive():
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Handle what is queued, then stop the worker."""
        worker = self._worker
        if worker is None:
            return
        self._queue.put(_STOP)
        worker.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._call(item)  # type: ignore[arg-type]

    def _call(self, item: Item) -> None:
        try:
            self._handle(item)
        except Exception:  # a console bug must never reach the card's thread
            log.exception("console event pipeline: handling %r failed", type(item).__name__)
