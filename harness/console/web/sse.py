"""Server-Sent Events of the console: one :class:`~harness.console.Subscription` per stream,
bridged to the event loop without a thread.

A stream sends ``hello`` (the states at connection) first, then each event of the controller
(``exchange``, ``card``, ``state``, ``progress``) as ``id: <seq>``, ``event: <kind>``,
``data: <json>``; ``dropped`` (``{"count": n}``) when its queue overflowed; a ``: keepalive``
comment after :data:`KEEPALIVE` seconds without events. The subscription wakes the loop with
``loop.call_soon_threadsafe`` when an event arrives, so an idle stream holds no thread; the
card's threads only append to the subscription's bounded queue.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from harness.console import Subscription

KEEPALIVE = 15.0
"""Seconds between keepalive comments on an idle stream."""
QUEUE = 5000
"""Events a stream holds for a slow reader before it drops the oldest."""


def frame(kind: str, data: Mapping[str, Any], seq: int | None = None) -> str:
    """One SSE message."""
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class Streams:
    """The open streams' subscriptions, so that stopping the server ends them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Subscription] = set()
        self.closing = False

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            if self.closing:
                subscription.close()
            self._open.add(subscription)

    def discard(self, subscription: Subscription) -> None:
        with self._lock:
            self._open.discard(subscription)

    def close_all(self) -> None:
        """End every stream (their subscriptions close; each stream then finishes)."""
        with self._lock:
            self.closing = True
            subscriptions = list(self._open)
        for subscription in subscriptions:
            subscription.close()


async def event_stream(
    subscription: Subscription,
    hello: Callable[[], Mapping[str, Any]],
    reader: str | None,
    streams: Streams,
    keepalive: float = KEEPALIVE,
) -> AsyncIterator[str]:
    """The SSE text of ``subscription`` (only ``reader``'s events unless ``None``), starting
    with ``hello()`` (computed in a worker thread: it reads the cards)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:
        loop.call_soon_threadsafe(wake.set)

    subscription.notify = notify
    streams.add(subscription)
    try:
        yield frame("hello", await anyio.to_thread.run_sync(hello))
        dropped = 0
        while True:
            wake.clear()
            events = subscription.drain()
            if subscription.dropped != dropped:
                yield frame("dropped", {"count": subscription.dropped - dropped})
                dropped = subscription.dropped
            for event in events:
                if reader is None or event.reader == reader:
                    yield frame(event.kind, event.to_json(), event.seq)
            if subscription.closed:
                return
            if not events:
                try:
                    await asyncio.wait_for(wake.wait(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
    finally:
        subscription.notify = None
        subscription.close()
        streams.discard(subscription)


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` answer that ends its stream as soon as the client goes away
    (it listens for ``http.disconnect`` whatever the server's ASGI version), so a closed tab
    leaves no subscription behind."""

    def __init__(self, content: AsyncIterator[str], subscription: Subscription) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def run(job: Callable[[], Any]) -> None:
                await job()
                group.cancel_scope.cancel()

            group.start_soon(run, partial(self._stream, send))
            await run(partial(self._disconnected, receive))

    async def _stream(self, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError:  # the client went away mid-write
            self._subscription.close()

    async def _disconnected(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._subscription.close()
