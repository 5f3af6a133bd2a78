"""The console's event stream: every exchange and card event of every reader, and every state
change an action made, to any number of subscribers.

Publishing never blocks the card: each :class:`Subscription` is a bounded queue that, when full,
drops its oldest event and counts it (:attr:`Subscription.dropped`); its lock is held only to
append. A subscriber that reads too slowly loses events, never delays an APDU.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

DEFAULT_QUEUE = 1000
"""Events a subscription holds before it drops the oldest."""

MAX_QUEUE = 100_000


@dataclass(frozen=True, slots=True)
class Event:
    """One event: ``kind`` is ``exchange`` (an APDU and its answer), ``card`` (insert, remove,
    power on/off, reset) or ``state`` (an action changed a reader); ``body`` is JSON-ready and
    already masked."""

    seq: int
    """Position in the stream (1, 2, ...), shared by all subscribers: a gap is a drop."""
    kind: str
    reader: str
    body: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, **self.body}


class Subscription:
    """A bounded queue of events for one subscriber (``with`` closes it)."""

    def __init__(self, maxsize: int, hub: EventHub) -> None:
        self.maxsize = maxsize
        self._events: deque[Event] = deque()
        self._cond = threading.Condition()
        self._hub = hub
        self._dropped = 0
        self._closed = False
        self.notify: Callable[[], object] | None = None
        """Called (on the publishing thread, outside the queue's lock) when an event arrives in
        an empty queue and when the subscription closes: an event loop sets it to wake its
        reader (``loop.call_soon_threadsafe``). It must not block; what it raises is ignored."""

    @property
    def dropped(self) -> int:
        """Events dropped so far because this queue was full (the oldest go first)."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, event: Event) -> None:
        """Queue ``event``; never blocks (a full queue drops its oldest event)."""
        with self._cond:
            if self._closed:
                return
            was_empty = not self._events
            if len(self._events) >= self.maxsize:
                self._events.popleft()
                self._dropped += 1
            self._events.append(event)
            self._cond.notify()
        if was_empty:
            self._wake()

    def _wake(self) -> None:
        notify = self.notify
        if notify is not None:
            with contextlib.suppress(Exception):  # e.g. the loop closed: not the publisher's
                notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (``None``: until one comes or the
        subscription is closed); ``None`` when none came."""
        with self._cond:
            self._cond.wait_for(lambda: self._events or self._closed, timeout)
            return self._events.popleft() if self._events else None

    def drain(self) -> list[Event]:
        """Every queued event, without waiting."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
            return events

    def close(self) -> None:
        """Stop receiving; a waiting :meth:`get` returns ``None``."""
        self._hub.unsubscribe(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake()

    def __iter__(self) -> Iterator[Event]:
        """Events as they come, until the subscription is closed."""
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventHub:
    """Numbers events and hands each to every open subscription."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._subscriptions: list[Subscription] = []

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        subscription = Subscription(maxsize, self)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    @property
    def listened(self) -> bool:
        """Whether any subscription is open (a publisher may skip building an event if not)."""
        return bool(self._subscriptions)

    def publish(self, kind: str, reader: str, body: Mapping[str, Any]) -> Event:
        with self._lock:  # held while queueing, so every subscriber sees events in order
            self._seq += 1
            event = Event(self._seq, kind, reader, body)
            for subscription in self._subscriptions:
                subscription.put(event)
        return event

    def close(self) -> None:
        """Close every subscription."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
