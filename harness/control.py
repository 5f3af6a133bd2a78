"""A Python client of the live console of ``mynacard serve --console`` (its HTTP API).

A kiosk test drives the card in the reader between its own APDUs::

    from harness.control import ConsoleClient

    console = ConsoleClient("http://127.0.0.1:8765/?token=...")  # the line serve printed
    console.set_tries(0, "jpki", "jpki_auth", 1)  # one try left
    console.remove(0)                              # the card leaves the reader now
    console.wait_for(0, lambda state: not state["inserted"], timeout=5)

Every method mirrors one route of the API and returns its JSON answer as plain data; a refused
request raises :class:`ConsoleError` (the HTTP status, the field at fault and the server's
message). The client holds the console's token but never shows it: its ``repr``, its errors and
its messages write ``…`` in its place.

This module imports nothing else from the project's harness (only :mod:`apdu.errors`), so a
kiosk suite on another machine can use it with the package installed and no card served.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from apdu.errors import MynacardError

__all__ = [
    "ENV",
    "ConsoleClient",
    "ConsoleError",
    "ConsoleTimeoutError",
    "SseMessage",
    "SseParser",
]

ENV = "MYNACARD_CONSOLE"
"""The environment variable :meth:`ConsoleClient.from_env` reads: the console's URL, as
``mynacard serve --console`` prints it (``http://127.0.0.1:<port>/?token=<token>``)."""

HIDDEN = "…"
"""What the token is shown as."""

ReaderRef = int | str
CredentialRef = int | str
State = dict[str, Any]


class ConsoleError(MynacardError):
    """A request the console refused, or could not be made.

    ``status`` is the HTTP status (``None`` when no answer came: the console unreachable, a
    timeout), ``field`` the input the console names as at fault (``tries``, ``reader``,
    ``authorization``...; ``None`` when it names none), ``message`` the console's explanation.
    ``str()`` of the error reads as one sentence with all three and the request.
    """

    def __init__(
        self, status: int | None, field: str | None, message: str, request: str = ""
    ) -> None:
        self.status = status
        self.field = field
        self.message = message
        self.request = request
        parts = []
        if request:
            parts.append(request)
        if status is not None:
            parts.append(f"HTTP {status}")
        text = f"{field}: {message}" if field else message
        super().__init__(f"{' → '.join(parts)}: {text}" if parts else text)


class ConsoleTimeoutError(ConsoleError, TimeoutError):
    """:meth:`ConsoleClient.wait_for` saw no state it wanted in time (``status`` is None)."""


# -- Server-Sent Events ----------------------------------------------------------------------


@dataclass(frozen=True)
class SseMessage:
    """One dispatched Server-Sent Event: ``event`` its type (``message`` when none was given),
    ``data`` its data lines joined with newlines, ``id`` the ``id:`` field of this event (None
    when it had none), ``retry`` the reconnection time it asked for (None when none)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SseParser:
    """Turns a stream of bytes into :class:`SseMessage` s, as the HTML standard reads an
    ``text/event-stream``: lines end with CR LF, LF or CR (also split across chunks), a line
    starting with ``:`` is a comment (a keepalive; counted in :attr:`comments`), ``field: value``
    loses one space after the colon, several ``data:`` lines join with ``\\n``, a blank line
    dispatches the event (none when it had no data), UTF-8 split across chunks is joined."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._has_data = False
        self._after_cr = False
        self.comments = 0
        """Comment lines seen (the console sends ``: keepalive`` every 15 s)."""

    def feed(self, chunk: bytes | str) -> list[SseMessage]:
        """The events completed by ``chunk``."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CR LF split between two chunks
        if text:
            self._after_cr = False
        self._buffer += text
        messages: list[SseMessage] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, after = cut
            line = self._buffer[:end]
            self._after_cr = after == len(self._buffer) and self._buffer.endswith("\r")
            self._buffer = self._buffer[after:]
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _line(self, line: str) -> SseMessage | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None  # other fields are ignored, as the standard says

    def _dispatch(self) -> SseMessage | None:
        message = None
        if self._has_data:
            message = SseMessage(
                self._event or "message", "\n".join(self._data), self._id, self._retry
            )
        self._data, self._event, self._id, self._retry = [], "", None, None
        self._has_data = False
        return message


def _line_end(buffer: str) -> tuple[int, int] | None:
    """(end of the first line, start of the next) in ``buffer``, or None if no line is whole
    yet. A CR ends a line at once; the LF after it, if it comes in the next chunk, is dropped
    by :meth:`SseParser.feed`."""
    cr, lf = buffer.find("\r"), buffer.find("\n")
    if lf != -1 and (cr == -1 or lf < cr):
        return lf, lf + 1
    if cr == -1:
        return None
    return cr, cr + 2 if buffer[cr + 1 : cr + 2] == "\n" else cr + 1


def _event_dict(message: SseMessage) -> dict[str, Any]:
    """An SSE message of the console as the dict :meth:`ConsoleClient.events` yields."""
    try:
        data: Any = json.loads(message.data)
    except ValueError:
        data = message.data
    event: dict[str, Any] = dict(data) if isinstance(data, dict) else {"data": data}
    event.setdefault("kind", message.event)
    if message.id is not None:
        event.setdefault("seq", int(message.id) if message.id.isdigit() else message.id)
    return event


_END = object()


class EventStream:
    """The events of one SSE connection to the console, as an iterator of dicts (see
    :meth:`ConsoleClient.events`); ``with`` or :meth:`close` ends the connection.

    A thread of its own reads the connection into a queue, so the iterator can stop at its
    deadline even while no byte arrives; closing shuts the socket down, which wakes that
    thread."""

    def __init__(self, client: ConsoleClient, path: str, timeout: float | None) -> None:
        self._client = client
        self._path = path
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self.parser = SseParser()
        self._thread = threading.Thread(
            target=self._read, name=f"console events {path}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client._http.stream("GET", self._path, timeout=_STREAM_TIMEOUT) as reply:
                if reply.status_code != httpx.codes.OK:
                    reply.read()
                    self._queue.put(self._client._refusal(reply, f"GET {self._path}"))
                    return
                stream = reply.extensions.get("network_stream")
                with self._lock:
                    if stream is not None:
                        self._socket = stream.get_extra_info("socket")
                    if self._closed.is_set():
                        return
                for chunk in reply.iter_raw():
                    for message in self.parser.feed(chunk):
                        self._queue.put(_event_dict(message))
                    if self._closed.is_set():
                        return
        except Exception as exc:  # reported to the consumer, unless it closed us
            if not self._closed.is_set():
                self._queue.put(self._client._unreachable(exc, f"GET {self._path}"))
        finally:
            self._queue.put(_END)

    def pending(self) -> int:
        """Events received and not yet taken."""
        return self._queue.qsize()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._closed.is_set():
            raise StopIteration
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        try:
            if remaining is not None and remaining <= 0:
                raise queue.Empty
            item = self._queue.get(timeout=remaining)
        except queue.Empty:
            self.close()
            raise StopIteration from None
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, ConsoleError):
            self.close()
            raise item
        assert isinstance(item, dict)
        return item

    def close(self) -> None:
        """End the connection (the reading thread ends with it)."""
        with self._lock:
            self._closed.set()
            sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)
"""An event stream waits for its next byte for ever (the iterator keeps the deadline)."""


# -- the client ------------------------------------------------------------------------------


class ConsoleClient:
    """The console's HTTP API as methods (see the module doc).

    ``ConsoleClient(url)`` takes the URL ``mynacard serve --console`` printed
    (``http://127.0.0.1:<port>/?token=<token>``; a leading ``console `` is dropped, so the
    whole line works too); ``ConsoleClient(base_url, token)`` takes the two apart.

    ``reader`` arguments are the reader's index (``0``, ``1``...) or its name; ``ap`` an
    application name (``jpki``, ``text``, ``kenmen``, ``common``, ``juki``); ``credential`` a
    credential's FID (``0x18`` or ``"0018"``) or name (``"jpki_auth"``). Answers are the JSON
    the console sent (a reader's state is ``ReaderState.to_json()``).
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        text = url.strip()
        if text.startswith("console "):
            text = text[len("console ") :].strip()
        parts = urllib.parse.urlsplit(text)
        if token is None:
            token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
            if not token:
                raise ConsoleError(
                    None, "url", f"no ?token= in the console URL {_hide_query(text)!r}"
                )
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConsoleError(
                None,
                "url",
                f"expected http://127.0.0.1:<port>/?token=<token>, got {_hide_query(text)!r}",
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        """``http://127.0.0.1:<port>``: where the console is (without the token)."""
        self._token = token
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,  # never send the token through a proxy from the environment
        )

    @classmethod
    def from_env(cls, variable: str = ENV, *, timeout: float = 60.0) -> ConsoleClient:
        """A client to the console URL in ``$MYNACARD_CONSOLE`` (or ``variable``)."""
        url = os.environ.get(variable, "").strip()
        if not url:
            raise ConsoleError(
                None,
                variable,
                "not set: give it the URL `mynacard serve --console` printed "
                "(http://127.0.0.1:<port>/?token=<token>)",
            )
        return cls(url, timeout=timeout)

    @property
    def url(self) -> str:
        """The console URL with its token (what serve printed): hand it on with care."""
        return f"{self.base_url}/?token={self._token}"

    def __repr__(self) -> str:
        return f"ConsoleClient({self.base_url}/?token={HIDDEN})"

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------------

    def cards(self) -> dict[str, Any]:
        """``{"cards": [state of each reader], "pki": bool}`` (pki: certificate actions work)."""
        return self._json("GET", "/api/cards")

    def card(self, reader: ReaderRef) -> State:
        """The state of one reader: card in or out, holder, application, credentials..."""
        return self._json("GET", _reader_path(reader))

    def personas(self) -> dict[str, Any]:
        """``{"personas": [{"name", "label", "holder"}, ...]}``: what :meth:`switch_persona`
        takes by name."""
        return self._json("GET", "/api/personas")

    def scenarios(self) -> dict[str, Any]:
        """``{"scenarios": [{"name", "summary", "applicable"}, ...]}``: the conformance
        catalogue, for :meth:`apply_faults`."""
        return self._json("GET", "/api/scenarios")

    def openapi(self) -> dict[str, Any]:
        """The API's OpenAPI 3 document."""
        return self._json("GET", "/api/openapi.json")

    def trace(self, reader: ReaderRef) -> str:
        """The reader's recent exchanges, masked, in trace format 2 (JSON Lines:
        ``harness.traces.read_trace`` reads it back)."""
        return self._send("GET", f"{_reader_path(reader)}/trace").text

    # -- the reader -----------------------------------------------------------------------------

    def insert(self, reader: ReaderRef) -> State:
        """Put the card into the reader (nothing happens if it is in)."""
        return self._json("POST", f"{_reader_path(reader)}/insert")

    def remove(self, reader: ReaderRef) -> State:
        """Take the card out (nothing happens if it is out): the host's next command fails."""
        return self._json("POST", f"{_reader_path(reader)}/remove")

    def glitch(self, reader: ReaderRef) -> State:
        """A power glitch the host is not told about (its next command finds the card reset)."""
        return self._json("POST", f"{_reader_path(reader)}/glitch")

    def reset(self, reader: ReaderRef) -> State:
        """A warm reset of the card (the host is not told)."""
        return self._json("POST", f"{_reader_path(reader)}/reset")

    # -- the card -------------------------------------------------------------------------------

    def set_tries(self, reader: ReaderRef, ap: str, credential: CredentialRef, tries: int) -> State:
        """Set a credential's tries left (``0`` blocks it; its maximum refills it)."""
        return self._credential(reader, ap, credential, {"tries": tries})

    def lock(self, reader: ReaderRef, ap: str, credential: CredentialRef) -> State:
        """Block the credential (no tries left)."""
        return self._credential(reader, ap, credential, {"action": "lock"})

    def unlock(self, reader: ReaderRef, ap: str, credential: CredentialRef) -> State:
        """Unblock the credential (all its tries back)."""
        return self._credential(reader, ap, credential, {"action": "unlock"})

    def refill(self, reader: ReaderRef, ap: str, credential: CredentialRef) -> State:
        """All the credential's tries back (as :meth:`unlock`)."""
        return self._credential(reader, ap, credential, {"action": "refill"})

    def switch_persona(
        self, reader: ReaderRef, name: str | None = None, toml: str | Path | None = None
    ) -> State:
        """Replace the card with a new card of a persona: ``name`` one of :meth:`personas`, or
        ``toml`` a persona's TOML text (or a path to a persona file, read here)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["persona"] = name
        if toml is not None:
            body["toml"] = _text(toml)
        return self._json("POST", f"{_reader_path(reader)}/persona", body)

    def apply_faults(
        self, reader: ReaderRef, scenario: str | None = None, toml: str | Path | None = None
    ) -> State:
        """Put faults on the card: ``scenario`` a name of :meth:`scenarios`, or ``toml`` a fault
        scenario's TOML text (or a path to one, read here)."""
        body: dict[str, Any] = {}
        if scenario is not None:
            body["scenario"] = scenario
        if toml is not None:
            body["toml"] = _text(toml)
        return self._json("POST", f"{_reader_path(reader)}/faults", body)

    def clear_faults(self, reader: ReaderRef) -> State:
        """Take the card's faults away (its counters stay)."""
        return self._json("DELETE", f"{_reader_path(reader)}/faults")

    # -- the certificates -----------------------------------------------------------------------

    def revoke(self, reader: ReaderRef, tree: str = "auth", reason: str | None = None) -> State:
        """Revoke the card's ``auth``, ``sign`` or ``both`` certificates (``reason`` e.g.
        ``keyCompromise``)."""
        body = {} if reason is None else {"reason": reason}
        return self._certificates(reader, tree, "revoke", body)

    def hold(self, reader: ReaderRef, tree: str = "auth") -> State:
        """Put the card's certificates on hold (一時保留)."""
        return self._certificates(reader, tree, "hold", {})

    def release(self, reader: ReaderRef, tree: str = "auth") -> State:
        """Release the card's held certificates."""
        return self._certificates(reader, tree, "release", {})

    # -- events ---------------------------------------------------------------------------------

    def events(self, reader: ReaderRef | None = None, timeout: float | None = None) -> EventStream:
        """The console's events (of one reader, or of all), as they come, for ``timeout``
        seconds (``None``: until the console ends the stream or the stream is closed).

        Each is a dict: the event's JSON with ``kind`` (``hello`` first, with ``cards``: the
        state of every reader at connection; then ``exchange``, ``card``, ``state``,
        ``progress``, ``dropped``) and ``seq`` (the SSE id). Use it in a ``with`` block or
        close it (or exhaust it) to end the connection."""
        path = "/api/events" if reader is None else f"{_reader_path(reader)}/events"
        return EventStream(self, path, timeout)

    def wait_for(
        self,
        reader: ReaderRef,
        predicate: Callable[[State], bool],
        timeout: float = 10.0,
    ) -> State:
        """The reader's state once ``predicate(state)`` holds (at once if it already does),
        else :class:`ConsoleTimeoutError` after ``timeout`` seconds.

        It follows the reader's events: a ``state`` event's state is tested as it is; after the
        card's own events (exchanges, insertion, removal) the state is read afresh (once for a
        burst of events)."""
        last: State | None = None
        with self.events(reader, timeout=timeout) as stream:
            for event in stream:  # the first is hello: from then on no change is missed
                if event.get("kind") == "state" and isinstance(event.get("state"), dict):
                    last = event["state"]
                elif stream.pending():
                    continue  # read the state once, after the burst
                else:
                    last = self.card(reader)
                if predicate(last):
                    return last
        if last is None:  # no event at all came: ask once more before giving up
            last = self.card(reader)
            if predicate(last):
                return last
        raise ConsoleTimeoutError(
            None,
            "timeout",
            f"reader {reader!r} did not reach the state wanted within {timeout:g} s "
            f"(last seen: {_summary(last)})",
        )

    # -- internals -----------------------------------------------------------------------------

    def _credential(
        self, reader: ReaderRef, ap: str, credential: CredentialRef, body: Mapping[str, Any]
    ) -> State:
        ident = f"{credential:04X}" if isinstance(credential, int) else credential
        path = f"{_reader_path(reader)}/credentials/{_segment(ap)}/{_segment(ident)}"
        return self._json("POST", path, body)

    def _certificates(
        self, reader: ReaderRef, tree: str, action: str, body: Mapping[str, Any]
    ) -> State:
        path = f"{_reader_path(reader)}/certificates/{_segment(tree)}/{action}"
        return self._json("POST", path, body)

    def _json(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        reply = self._send(method, path, body)
        try:
            data = reply.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        raise ConsoleError(
            reply.status_code,
            None,
            f"the console answered {reply.headers.get('content-type', 'no content type')} "
            "instead of a JSON object",
            f"{method} {path}",
        )

    def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        what = f"{method} {path}"
        try:
            if body is None:
                reply = self._http.request(method, path)
            else:
                reply = self._http.request(method, path, json=dict(body))
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, what) from None
        if reply.is_success:
            return reply
        raise self._refusal(reply, what)

    def _refusal(self, reply: httpx.Response, what: str) -> ConsoleError:
        """The console's error answer as a :class:`ConsoleError`."""
        field: str | None = None
        message = ""
        try:
            data = reply.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data:
            message = str(data["error"])
            field = data.get("field") if isinstance(data.get("field"), str) else None
        else:
            message = reply.text.strip()[:300] or reply.reason_phrase
        return ConsoleError(reply.status_code, field, self._scrub(message), what)

    def _unreachable(self, exc: Exception, what: str) -> ConsoleError:
        """A failed connection as a :class:`ConsoleError` naming the console's URL."""
        where = f"{self.base_url}/?token={HIDDEN}"
        if isinstance(exc, ConsoleError):
            return exc
        if isinstance(exc, httpx.ConnectError):
            reason = str(exc) or "connection refused"
            message = (
                f"cannot reach the console at {where} ({reason}): "
                "is `mynacard serve --console` running?"
            )
        elif isinstance(exc, httpx.TimeoutException):
            message = f"the console at {where} did not answer in time ({type(exc).__name__})"
        else:
            message = f"the console at {where} failed: {type(exc).__name__}: {exc}"
        return ConsoleError(None, None, self._scrub(message), what)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, HIDDEN) if self._token else text


def _segment(value: object) -> str:
    return urllib.parse.quote(str(value), safe="")


def _reader_path(reader: ReaderRef) -> str:
    if isinstance(reader, bool) or not isinstance(reader, int | str):
        raise ConsoleError(None, "reader", f"expected a reader index or name, got {reader!r}")
    return f"/api/cards/{_segment(reader)}"


def _text(toml: str | Path) -> str:
    return toml.read_text(encoding="utf-8") if isinstance(toml, Path) else toml


def _hide_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query=HIDDEN if parts.query else ""))


def _summary(state: State | None) -> str:
    if state is None:
        return "nothing"
    keys = ("inserted", "powered", "application", "verified")
    return ", ".join(f"{key}={state.get(key)!r}" for key in keys if key in state) or "{}"
