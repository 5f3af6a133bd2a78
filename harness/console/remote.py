"""The controller's stand-in in a console process of its own (the other end of
:mod:`harness.console.link`).

:class:`RemoteController` has the surface the web app calls (:class:`~.controls.Controls`):
each reading or action is a call across the link, answered by the real
:class:`~harness.console.CardController` in the card's process (its :class:`ControlError` comes
back as itself). Exchanges and events arrive from the link on one thread and go through a
:class:`~harness.console.feed.LocalFeed` here, so decoding, the trace buffer and every
subscriber cost this process, never the card's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.console.controls import CredentialRef, ReaderRef
from harness.console.errors import ControlError
from harness.console.events import DEFAULT_QUEUE, Subscription
from harness.console.feed import LocalFeed
from harness.console.link import (
    PICKLE_FRAME,
    LinkError,
    from_wire,
    record_of,
    recv_frame,
    send_json,
)
from harness.console.state import CredentialState, ReaderState
from jpki.revocation import RevocationReason

log = logging.getLogger(__name__)

CALL_TIMEOUT = 300.0
"""Seconds a call waits for the card's process (a persona switch personalizes a card)."""
OPEN_TIMEOUT = 30.0
SNAPSHOT_SPACING = 0.05
"""Seconds between the starts of two snapshot calls at least: however many requests ask, the
card's process makes at most 20 snapshots a second (each shared by every request that asked
while the one before was under way). Each costs the card's process some 50 µs of its
interpreter lock; at a few hundred a second they showed in the APDUs' 99th percentile."""


Answer = TypeVar("Answer")


class Coalesced(Generic[Answer]):
    """One call at a time of ``run``, shared: whoever asks while a call is under way gets the
    answer of the next one, which starts when that call ends and at least ``spacing`` seconds
    after the start of the one before (never an answer from a call that started before the
    question)."""

    def __init__(self, run: Callable[[], Answer], *, name: str, spacing: float = 0.0) -> None:
        self._run = run
        self.spacing = spacing
        self._lock = threading.Lock()
        self._next: Future[Answer] | None = None
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._drive, name=name, daemon=True)
        self._thread.start()

    def __call__(self) -> Answer:
        with self._lock:
            if self._next is None:
                self._next = Future()
                self._wake.set()
            mine = self._next
        return mine.result()

    def _drive(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                flight, self._next = self._next, None
                self._wake.clear()
            if flight is None:
                continue
            began = time.monotonic()
            try:
                flight.set_result(self._run())
            except BaseException as exc:  # the askers get it
                flight.set_exception(exc)
            time.sleep(max(0.0, began + self.spacing - time.monotonic()))


class RemoteController:
    """The surface of a :class:`~harness.console.CardController` in another process, over
    the link ``sock`` (see the module docstring). :meth:`start` reads the link; :meth:`open`
    lets calls through (once the card's process has been told the console is ready);
    ``on_end`` runs when the link ends."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        readers: list[str],
        has_pki: bool,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self._sock = sock
        self._readers = list(readers)
        self._has_pki = has_pki
        self.call_timeout = call_timeout
        self.on_end: Callable[[], object] | None = None
        self.ended = threading.Event()
        self._feed = LocalFeed(self._readers, threaded=False)
        self._ids = itertools.count(1)
        self._calls: dict[int, Future[Any]] = {}
        self._calls_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._read, name="mynacard-link-in", daemon=True)
        self._snapshots: Coalesced[list[ReaderState]] = Coalesced(
            lambda: self._call("snapshot"), name="mynacard-snapshots", spacing=SNAPSHOT_SPACING
        )

    def start(self) -> RemoteController:
        self._thread.start()
        return self

    def open(self) -> None:
        """Let calls cross from now on (the first frame on the link had to be ``ready``)."""
        self._open.set()

    def send(self, message: dict[str, Any]) -> None:
        """A JSON frame to the card's process (serialized with the calls)."""
        with self._send_lock:
            send_json(self._sock, message)

    # -- reading -------------------------------------------------------------------------------

    @property
    def readers(self) -> list[str]:
        return list(self._readers)

    @property
    def has_pki(self) -> bool:
        return self._has_pki

    def snapshot(self) -> list[ReaderState]:
        """Every reader's state, from a call that started after this one was asked; calls
        asked while one is under way share the next (so a burst of requests costs the
        card's process one snapshot at a time, not one each)."""
        return self._snapshots()

    def state(self, reader: ReaderRef) -> ReaderState:
        result: ReaderState = self._call("state", reader)
        return result

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        return self._feed.subscribe(maxsize)

    def trace(self, reader: ReaderRef) -> str:
        name = self.state(reader).reader
        self._call("sync")  # every exchange before this moment has crossed the link
        return self._feed.trace(name)

    def credential(self, reader: ReaderRef, application: str, credential: str) -> CredentialState:
        result: CredentialState = self._call("credential", reader, application, credential)
        return result

    # -- acting --------------------------------------------------------------------------------

    def insert(self, reader: ReaderRef) -> ReaderState:
        return self._act("insert", reader)

    def remove(self, reader: ReaderRef) -> ReaderState:
        return self._act("remove", reader)

    def glitch(self, reader: ReaderRef) -> ReaderState:
        return self._act("glitch", reader)

    def reset(self, reader: ReaderRef) -> ReaderState:
        return self._act("reset", reader)

    def set_tries(self, reader: ReaderRef, credential: CredentialRef, tries: int) -> ReaderState:
        return self._act("set_tries", reader, credential, tries)

    def switch_persona(self, reader: ReaderRef, persona: Any) -> ReaderState:
        return self._act(
            "switch_persona", reader, str(persona) if isinstance(persona, Path) else persona
        )

    def apply_faults(self, reader: ReaderRef, scenario: Any) -> ReaderState:
        return self._act(
            "apply_faults", reader, str(scenario) if isinstance(scenario, Path) else scenario
        )

    def clear_faults(self, reader: ReaderRef) -> ReaderState:
        return self._act("clear_faults", reader)

    def revoke(
        self, reader: ReaderRef, tree: str = "auth", reason: str | RevocationReason = "unspecified"
    ) -> ReaderState:
        return self._act(
            "revoke", reader, tree, reason.value if isinstance(reason, RevocationReason) else reason
        )

    def hold(self, reader: ReaderRef, tree: str = "auth") -> ReaderState:
        return self._act("hold", reader, tree)

    def release(self, reader: ReaderRef, tree: str = "auth") -> ReaderState:
        return self._act("release", reader, tree)

    # -- the link ------------------------------------------------------------------------------

    def close(self) -> None:
        """End the link from this side (the card's process goes on serving)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._feed.close()

    def _act(self, method: str, *args: Any) -> ReaderState:
        result: ReaderState = self._call(method, *args)
        return result

    def _call(self, method: str, *args: Any) -> Any:
        if not self._open.wait(OPEN_TIMEOUT) or self.ended.is_set():
            raise ControlError("reader", "the card process is gone", "conflict")
        future: Future[Any] = Future()
        ident = next(self._ids)
        with self._calls_lock:
            self._calls[ident] = future
        try:
            self.send({"id": ident, "method": method, "args": list(args)})
            return future.result(self.call_timeout)
        except (OSError, TimeoutError):
            raise ControlError(
                "reader", f"the card process did not answer {method}", "conflict"
            ) from None
        finally:
            with self._calls_lock:
                self._calls.pop(ident, None)

    def _read(self) -> None:
        try:
            while True:
                frame = recv_frame(self._sock)
                if frame is None:
                    break
                kind, body = frame
                if kind != PICKLE_FRAME:
                    raise LinkError(f"unexpected frame kind {kind!r}")
                for item in pickle.loads(body):  # noqa: S301 - from our own parent, over a socketpair
                    self._handle(item)
        except (OSError, LinkError) as exc:
            log.warning("console link: %s", exc)
        finally:
            self.ended.set()
            with self._calls_lock:
                pending = list(self._calls.values())
            for future in pending:
                if not future.done():
                    future.set_exception(
                        ControlError("reader", "the card process is gone", "conflict")
                    )
            if self.on_end is not None:
                self.on_end()

    def _handle(self, item: tuple[Any, ...]) -> None:
        tag = item[0]
        if tag in ("x", "v"):
            self._feed.record(record_of(item))
        elif tag == "e":
            _, kind, reader, body = item
            if "state" in body:
                body = {**body, "state": from_wire(body["state"])}
            self._feed.publish(kind, reader, body)
        elif tag == "d":
            self._feed.reset_decoder(item[1])
        elif tag == "r":
            _, ident, ok, payload = item
            with self._calls_lock:
                future = self._calls.get(ident)
            if future is None or future.done():
                return
            if ok:
                future.set_result(from_wire(payload))
            else:
                field, reason, kind = payload
                if kind == "internal":
                    future.set_exception(RuntimeError(f"the card process failed: {reason}"))
                else:
                    future.set_exception(ControlError(field, reason, kind))


__all__ = ["RemoteController"]
