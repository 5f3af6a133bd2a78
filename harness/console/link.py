"""The link between a card process and its console process: one socket pair, both directions.

``mynacard serve --console`` runs the console's web server in a process of its own
(:mod:`harness.console.web.process`), so no HTTP request ever holds the card process's
interpreter lock. The two talk over an inherited ``socketpair`` (never a name on the file
system, never the network), in frames of a 4-byte length and a body whose first byte says
its encoding:

* console → card: ``J`` + JSON only, ``{"id": n, "method": "...", "args": [...]}`` — calls of
  the controller's surface (:data:`CALLS`), nothing else. The card process never unpickles
  anything the console process sends.
* card → console: ``J`` + JSON for the start-up settings, then ``P`` + a pickled list of
  items, in order: exchanges (``x``), card events (``v``), published events (``e``), decoder
  resets (``d``) and call replies (``r``).

What crosses to the console holds no secret: an exchange's command has the data of any
secret-bearing instruction zeroed (:func:`apdu.blank_secret`), and of its response only the
length and status word cross. The card's thread only appends its record to a queue
(:class:`ForwardFeed`, one C call); a writer thread turns the records into items and sends the
queue every :data:`BATCH_SECONDS`, at once for replies and events, in one ``sendall``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from apdu import TraceRecord, blank_secret
from harness.console.errors import ControlError
from harness.console.state import ReaderState

if TYPE_CHECKING:
    from harness.console.control import CardController

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame either side accepts."""
BATCH_SECONDS = 0.1
"""How long the card side gathers exchanges before it sends them (events and replies go at
once): the live stream shows an exchange within a tenth of a second. Every 10 ms instead, the
two processes' wake-ups showed in the APDUs' 99th percentile (1.6× at idle)."""
MAX_PENDING = 200_000
"""Items the card side holds for a console that does not read; older ones are dropped."""
YIELD_EVERY = 128
"""Records the writer converts between two releases of the interpreter lock."""
CALL_WORKERS = 8
"""Calls the card side runs at once (a persona switch takes seconds; a snapshot should not
wait for it)."""

CALLS = frozenset(
    {
        "snapshot",
        "state",
        "insert",
        "remove",
        "glitch",
        "reset",
        "set_tries",
        "credential",
        "switch_persona",
        "apply_faults",
        "clear_faults",
        "revoke",
        "hold",
        "release",
        "sync",
    }
)
"""What the console process may call (``sync``: a no-op whose reply comes after every item
queued before it)."""
QUICK_CALLS = frozenset({"snapshot", "state", "credential", "sync"})
"""Calls answered on the link's reading thread at once (they never wait for a reader); the
others run on a pool of :data:`CALL_WORKERS` threads."""

JSON_FRAME = b"J"
PICKLE_FRAME = b"P"


class LinkError(ConnectionError):
    """The other end of the link went away or sent a frame this end refuses."""


def send_frame(sock: socket.socket, kind: bytes, body: bytes) -> None:
    """One frame: its length, ``kind`` (``J`` or ``P``), ``body``."""
    sock.sendall(HEADER.pack(len(body) + 1) + kind + body)


def send_json(sock: socket.socket, message: Mapping[str, Any]) -> None:
    send_frame(sock, JSON_FRAME, json.dumps(message, ensure_ascii=False).encode("utf-8"))


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """``(kind, body)`` of the next frame; ``None`` at a clean end of the link."""
    header = _recv_exact(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if not 1 <= size <= MAX_FRAME:
        raise LinkError(f"frame of {size} bytes (at most {MAX_FRAME})")
    body = _recv_exact(sock, size)
    if body is None:
        raise LinkError("the link ended in the middle of a frame")
    return body[:1], body[1:]


def recv_json(sock: socket.socket) -> dict[str, Any] | None:
    """The next frame, which must be a JSON object; ``None`` at the end of the link."""
    frame = recv_frame(sock)
    if frame is None:
        return None
    kind, body = frame
    if kind != JSON_FRAME:
        raise LinkError(f"expected a JSON frame, got kind {kind!r}")
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise LinkError(f"a frame that is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise LinkError("a frame that is not a JSON object")
    return message


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            if left == size:
                return None
            raise LinkError("the link ended in the middle of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _drop(record: TraceRecord) -> None:
    """What a :class:`ForwardFeed` does with a record once its link has ended."""


def exchange_item(record: TraceRecord) -> tuple[Any, ...]:
    """What crosses the link of ``record`` (no secret: see the module docstring)."""
    if record.event:
        return ("v", record.timestamp, record.reader, record.event)
    response = record.response
    status = response[-2:] if len(response) >= 2 else b""
    return (
        "x",
        record.timestamp,
        record.reader,
        blank_secret(record.command),
        len(response),
        status,
        record.duration,
        record.note,
    )


def record_of(item: tuple[Any, ...]) -> TraceRecord:
    """The record an ``x`` or ``v`` item stands for: its response is zeros of the answer's
    length, then its status word (the console shows no more)."""
    if item[0] == "v":
        _, timestamp, reader, event = item
        return TraceRecord.card_event(event, reader=reader, timestamp=timestamp)
    _, timestamp, reader, command, length, status, duration, note = item
    response = bytes(max(0, length - len(status))) + status
    return TraceRecord(timestamp, command, response, duration, reader=reader, note=note)


def to_wire(result: object) -> object:
    """A call's result as it crosses: reader states packed (:meth:`ReaderState.packed`)."""
    if isinstance(result, ReaderState):
        return ("state", result.packed())
    if isinstance(result, list) and result and isinstance(result[0], ReaderState):
        return ("states", [each.packed() for each in result])
    return result


def from_wire(value: object) -> Any:
    """What :func:`to_wire` made, as the result it was."""
    if isinstance(value, tuple) and len(value) == 2:
        if value[0] == "state":
            return ReaderState.unpacked(value[1])
        if value[0] == "states":
            return [ReaderState.unpacked(each) for each in value[1]]
    return value


class ForwardFeed:
    """A controller's feed that queues everything for the console process. On the card's
    thread, :attr:`record` is the queue's own ``append`` (a C call, no Python frame); once the
    link has ended it drops the records."""

    def __init__(self, link: CardLink, append: Callable[[TraceRecord], None]) -> None:
        self._link = link
        self.record = append

    def end(self) -> None:
        """Drop every record from now on (the console process is gone)."""
        self.record = _drop

    def publish(self, kind: str, reader: str, body: Mapping[str, Any]) -> None:
        """Queued at once, in the frame of the call's reply when a call of the console made
        it (one write and one wake-up of the console's process, not two)."""
        if isinstance(body.get("state"), ReaderState):
            body = {**body, "state": to_wire(body["state"])}
        self._link.queue(("e", kind, reader, body), urgent=not self._link.in_call)

    def reset_decoder(self, reader: str) -> None:
        self._link.queue(("d", reader), urgent=True)

    def settle(self, timeout: float = 2.0) -> bool:
        return self._link.flush(timeout)

    def close(self) -> None:
        """Nothing of its own to stop (the link closes on its own)."""


class CardLink:
    """The card process's end: forwards the controller's records and events, runs the calls
    the console process sends (see the module docstring). ``start`` makes ``controller``
    forward to it; ``close`` ends the link."""

    def __init__(
        self,
        controller: CardController,
        sock: socket.socket,
        *,
        batch: float = BATCH_SECONDS,
    ) -> None:
        self.controller = controller
        self.batch = batch
        self.ended = threading.Event()
        """Set when the console process went away (or :meth:`close` ended the link)."""
        self._sock = sock
        self._out: deque[TraceRecord | tuple[Any, ...]] = deque(maxlen=MAX_PENDING)
        self.feed = ForwardFeed(self, self._out.append)
        self._urgent = threading.Event()
        self._calling = threading.local()
        self._closing = False
        self._send_lock = threading.Lock()
        self._calls = ThreadPoolExecutor(CALL_WORKERS, thread_name_prefix="mynacard-console-call")
        self._reader = threading.Thread(target=self._read, name="mynacard-link-in", daemon=True)
        self._writer = threading.Thread(target=self._write, name="mynacard-link-out", daemon=True)

    def start(self) -> CardLink:
        self.controller.forward(self.feed)
        self._writer.start()
        self._reader.start()
        return self

    def queue(self, item: tuple[Any, ...], *, urgent: bool = False) -> None:
        """Hand ``item`` to the writer (never blocks; dropped once the link has ended)."""
        if self.ended.is_set():
            return
        self._out.append(item)
        if urgent:
            self._urgent.set()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until what is queued now has been sent (False after ``timeout``)."""
        if self.ended.is_set():
            return True
        sent = threading.Event()
        self.queue(("flush", sent), urgent=True)
        return sent.wait(timeout) or self.ended.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then end the link (the console process sees its end)."""
        self._closing = True
        self._urgent.set()
        self._writer.join(timeout)
        self._end()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(timeout)
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    # -- the two threads -----------------------------------------------------------------------

    def _write(self) -> None:
        try:
            while not self.ended.is_set():
                # exchanges wait for the next tick (the card's thread never wakes this one);
                # events and replies are urgent
                self._urgent.wait(self.batch)
                self._urgent.clear()
                if self._out:
                    self._send_queued()
                if self._closing and not self._out:
                    return
        except OSError as exc:
            if not self._closing:
                log.warning("console link: the console process went away (%s)", exc)
        finally:
            self._end()

    def _end(self) -> None:
        self.ended.set()
        self.feed.end()
        self._urgent.set()  # the writer leaves its wait

    def _send_queued(self, last: tuple[Any, ...] | None = None) -> None:
        """Send everything queued (then ``last``, if given) in one frame."""
        with self._send_lock:
            items: list[tuple[Any, ...]] = []
            flushes: list[tuple[Any, ...]] = []
            while True:
                try:
                    item = self._out.popleft()
                except IndexError:
                    break
                if isinstance(item, TraceRecord):
                    items.append(exchange_item(item))
                    if len(items) % YIELD_EVERY == 0:
                        time.sleep(0)  # let a waiting card thread answer: no long hold of the GIL
                elif item[0] == "flush":
                    flushes.append(item)
                else:
                    items.append(item)
            if last is not None:
                items.append(last)
            if items:
                send_frame(self._sock, PICKLE_FRAME, pickle.dumps(items, protocol=5))
            for _, sent in flushes:
                sent.set()

    def _read(self) -> None:
        try:
            while True:
                message = recv_json(self._sock)
                if message is None:
                    break
                if message.get("method") in QUICK_CALLS:
                    self._call(message)
                else:
                    self._calls.submit(self._call, message)
        except (OSError, LinkError, RuntimeError) as exc:  # RuntimeError: the pool shut down
            if not self._closing:
                log.warning("console link: %s", exc)
        finally:
            self._end()

    @property
    def in_call(self) -> bool:
        """True on a thread running a call of the console (its reply is about to be sent)."""
        return getattr(self._calling, "active", False)

    def _call(self, message: Mapping[str, Any]) -> None:
        ident = message.get("id")
        reply: tuple[Any, ...]
        self._calling.active = True
        try:
            result = self._run(message.get("method"), message.get("args", []))
        except ControlError as exc:
            reply = ("r", ident, False, (exc.field, exc.reason, exc.kind))
        except Exception as exc:  # a bug: the console answers 500, the card goes on
            log.exception("console link: call %r failed", message.get("method"))
            reply = ("r", ident, False, (None, type(exc).__name__, "internal"))
        else:
            reply = ("r", ident, True, to_wire(result))
        finally:
            self._calling.active = False
        try:
            self._send_queued(reply)  # after every item queued before it: ``sync`` relies on it
        except OSError as exc:
            if not self._closing:
                log.warning("console link: cannot answer (%s)", exc)

    def _run(self, method: object, args: object) -> object:
        if not isinstance(method, str) or method not in CALLS:
            raise ControlError("method", f"no such call {str(method)[:40]!r}")
        if not isinstance(args, list):
            raise ControlError("args", "expected a list")
        if method == "sync":
            return None
        if method == "set_tries" and len(args) > 1 and isinstance(args[1], list):
            args = [args[0], tuple(args[1]), *args[2:]]  # (application, fid) crossed as a list
        return getattr(self.controller, method)(*args)


__all__ = [
    "CALLS",
    "CardLink",
    "ForwardFeed",
    "LinkError",
    "exchange_item",
    "record_of",
    "recv_frame",
    "recv_json",
    "send_json",
]
