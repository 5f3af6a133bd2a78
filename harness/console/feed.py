"""Where the console's events go: decoded, kept and published here, or forwarded elsewhere.

A :class:`~harness.console.CardController` hands every record (an exchange or a card event)
and every event it makes (``state``, ``progress``) to its feed, in order. :class:`LocalFeed`
does the console's work with them in this process: decode each exchange for its reader, keep
it for the trace download (:mod:`~harness.console.trace_buffer`), publish it masked
(:mod:`~harness.console.masking`) to the subscribers of its :class:`~.events.EventHub`.
Behind a server that work runs on a pipeline thread of its own
(:mod:`~harness.console.pipeline`), so the card's thread only queues the record.

When the console runs in a process of its own (:mod:`harness.console.link`), the card's
process has a forwarding feed instead and the console's process a :class:`LocalFeed` fed from
the link.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from apdu import TraceRecord
from harness.console.errors import ControlError
from harness.console.events import DEFAULT_QUEUE, MAX_QUEUE, EventHub, Subscription
from harness.console.masking import event_from_trace, trace_json
from harness.console.pipeline import EventPipeline
from harness.console.state import ReaderState
from harness.console.trace_buffer import TraceBuffer
from harness.traces.decoder import ReaderDecoders


class Feed(Protocol):
    """What a controller hands its records and events to (never blocks, never raises)."""

    def record(self, record: TraceRecord) -> None:
        """An exchange or a card event of one reader."""

    def publish(self, kind: str, reader: str, body: Mapping[str, Any]) -> None:
        """An event the controller made (``state``, ``progress``), JSON-ready but for its
        ``state`` entry, which may be a :class:`~harness.console.state.ReaderState` (the feed
        makes its JSON where the event is handled, not on the thread that acted)."""

    def reset_decoder(self, reader: str) -> None:
        """Another card is in ``reader``: decode its exchanges from the power-on state."""

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until everything handed over so far is handled; False after ``timeout``."""

    def close(self) -> None:
        """Handle what is pending, then stop."""


class LocalFeed:
    """Decode, keep and publish in this process (see the module docstring)."""

    def __init__(self, readers: Collection[str], *, threaded: bool) -> None:
        """``readers``: the names whose exchanges are decoded and kept (records of others are
        published only); ``threaded``: handle on a worker thread (behind a server) or at once
        (in process, where an action's events are there when it returns)."""
        self._readers = frozenset(readers)
        self._hub = EventHub()
        self._decoders = ReaderDecoders()
        self._traces = TraceBuffer()
        self._pipeline: EventPipeline[TraceRecord | Callable[[], object]] = EventPipeline(
            self._handle, threaded=threaded, name="mynacard-console-events"
        )

    def record(self, record: TraceRecord) -> None:
        self._pipeline.submit(record)

    def publish(self, kind: str, reader: str, body: Mapping[str, Any]) -> None:
        self._pipeline.submit(functools.partial(self._publish, kind, reader, body))

    def reset_decoder(self, reader: str) -> None:
        self._pipeline.submit(functools.partial(self._decoders.reset, reader))

    def settle(self, timeout: float = 2.0) -> bool:
        return self._pipeline.settle(timeout)

    def close(self) -> None:
        self._pipeline.close()
        self._hub.close()

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """A subscription to every event published from now on, holding at most ``maxsize``
        (1-:data:`~harness.console.events.MAX_QUEUE`)."""
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise ControlError("maxsize", f"expected an integer, got {maxsize!r}")
        if not 1 <= maxsize <= MAX_QUEUE:
            raise ControlError("maxsize", f"must be 1-{MAX_QUEUE}, got {maxsize}")
        return self._hub.subscribe(maxsize)

    def trace(self, reader: str) -> str:
        """``reader``'s kept lines as a trace file (after what is pending is handled)."""
        self.settle()
        return self._traces.render(reader)

    def _publish(self, kind: str, reader: str, body: Mapping[str, Any]) -> None:
        state = body.get("state")
        if isinstance(state, ReaderState):
            body = {**body, "state": state.to_json()}
        self._hub.publish(kind, reader, body)

    def _handle(self, item: TraceRecord | Callable[[], object]) -> None:
        if isinstance(item, TraceRecord):
            self._record(item)
        else:
            item()

    def _record(self, record: TraceRecord) -> None:
        known = record.reader in self._readers
        try:
            meaning = self._decoders.meaning(record) if known else ""
        except Exception:  # a decoder bug must not stop the console
            meaning = ""
        line = trace_json(record)  # one to_json for the trace and the event
        if meaning and not record.event and not record.note:
            line["meaning"] = meaning
        if known:
            self._traces.add(record, meaning, line)
        if self._hub.listened:
            kind = "card" if record.event else "exchange"
            self._hub.publish(kind, record.reader, event_from_trace(record, line))


__all__ = ["Feed", "LocalFeed"]
