"""harness.control without a console: the SSE parser, URL handling, hiding the token, errors.

A small stand-in HTTP server (stdlib) plays the console where an answer is needed; the client
against the real console is tests/console/test_client.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apdu import MynacardError
from harness.control import (
    ConsoleClient,
    ConsoleError,
    ConsoleTimeoutError,
    SseMessage,
    SseParser,
)

TOKEN = "s3cr3t-T0ken_value"


# -- the SSE parser ---------------------------------------------------------------------------


def test_parser_reads_fields_ids_and_multi_line_data() -> None:
    parser = SseParser()
    stream = (
        b'id: 1\nevent: hello\ndata: {"cards": []}\n\n'
        b": keepalive\n\n"
        b"event: exchange\ndata: line one\ndata:line two\ndata\nid: 7\nretry: 1500\n\n"
        b"data: no type\n\n"
    )
    assert parser.feed(stream) == [
        SseMessage("hello", '{"cards": []}', "1"),
        SseMessage("exchange", "line one\nline two\n", "7", 1500),
        SseMessage("message", "no type", None),
    ]
    assert parser.comments == 1


def test_parser_joins_chunks_split_anywhere() -> None:
    text = 'id: 12\r\nevent: state\r\ndata: {"holder": "番号　花子"}\r\n\r\n: ka\r\rdata: x\r\r'
    whole = SseParser().feed(text.encode())
    assert whole == [
        SseMessage("state", '{"holder": "番号　花子"}', "12"),
        SseMessage("message", "x", None),
    ]
    encoded = text.encode()
    for size in (1, 2, 3, 5, 7):
        parser = SseParser()
        got: list[SseMessage] = []
        for start in range(0, len(encoded), size):  # splits CR LF and UTF-8 characters
            got += parser.feed(encoded[start : start + size])
        assert got == whole, size


def test_parser_dispatches_nothing_without_data() -> None:
    parser = SseParser()
    assert parser.feed("event: nothing\nid: 3\n\n: only a comment\n\n\n") == []
    assert parser.feed("data: late\n") == []  # not dispatched until the blank line
    assert parser.feed("\n") == [SseMessage("message", "late", None)]  # the id did not stay


# -- URLs and the token -----------------------------------------------------------------------


def test_the_url_the_console_printed_or_its_parts() -> None:
    for given in (
        f"http://127.0.0.1:8765/?token={TOKEN}",
        f"console http://127.0.0.1:8765/?token={TOKEN}\n",
    ):
        client = ConsoleClient(given)
        assert client.base_url == "http://127.0.0.1:8765"
        assert client.url == f"http://127.0.0.1:8765/?token={TOKEN}"
        assert TOKEN not in repr(client) and "…" in repr(client)
        client.close()
    with ConsoleClient("http://localhost:9/", TOKEN) as client:
        assert client.base_url == "http://localhost:9"


def test_a_url_without_token_or_scheme_is_refused_without_showing_the_query() -> None:
    with pytest.raises(ConsoleError) as missing:
        ConsoleClient("http://127.0.0.1:8765/")
    assert missing.value.field == "url" and missing.value.status is None
    with pytest.raises(ConsoleError) as bad:
        ConsoleClient(f"127.0.0.1:8765/?token={TOKEN}")
    assert TOKEN not in str(bad.value)
    assert isinstance(bad.value, MynacardError)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYNACARD_CONSOLE", raising=False)
    with pytest.raises(ConsoleError, match="MYNACARD_CONSOLE: not set"):
        ConsoleClient.from_env()
    monkeypatch.setenv("MYNACARD_CONSOLE", f"http://127.0.0.1:8765/?token={TOKEN}")
    with ConsoleClient.from_env() as client:
        assert client.base_url == "http://127.0.0.1:8765"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connection_refused_names_the_url_not_the_token() -> None:
    port = _free_port()  # nothing listens there any more
    with ConsoleClient(f"http://127.0.0.1:{port}/?token={TOKEN}") as client:
        with pytest.raises(ConsoleError) as refused:
            client.cards()
        error = refused.value
        assert error.status is None
        assert f"http://127.0.0.1:{port}/?token=…" in str(error)
        assert "GET /api/cards" in str(error)
        assert TOKEN not in str(error)
        assert error.__cause__ is None and error.__suppress_context__  # no httpx traceback
        with pytest.raises(ConsoleError) as streaming:
            list(client.events(timeout=5))
        assert TOKEN not in str(streaming.value) and streaming.value.status is None


def test_bad_reader_arguments_are_refused_here() -> None:
    with ConsoleClient("http://127.0.0.1:9", TOKEN) as client, pytest.raises(ConsoleError) as bad:
        client.card(True)
    assert bad.value.field == "reader"


# -- against a stand-in console ---------------------------------------------------------------


class StandIn(BaseHTTPRequestHandler):
    """Answers as the console would, from the class attributes the test sets."""

    seen: list[tuple[str, str, dict[str, str], bytes]] = []  # noqa: RUF012 - test record
    events: list[bytes] = []  # noqa: RUF012
    hold_open = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        StandIn.seen.append((self.command, self.path, dict(self.headers), body))
        return body

    def _json(self, status: int, data: object) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._record()
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"error": "missing or wrong token", "field": "authorization"})
        elif self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in StandIn.events:
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(0.01)
            time.sleep(StandIn.hold_open)
        elif self.path == "/api/cards/9":
            self._json(404, {"error": f"no reader 9 (token {TOKEN})", "field": "reader"})
        elif self.path == "/api/cards/text":
            self.send_response(502)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Bad proxy")
        else:
            self._json(200, {"cards": [], "pki": False})

    def do_POST(self) -> None:
        body = json.loads(self._record() or b"{}")
        if body.get("tries") == 9:
            self._json(400, {"error": "must be an integer 0-3 (0 blocks), got 9", "field": "tries"})
        else:
            self._json(200, {"reader": "A", "inserted": True, "body": body})

    def do_DELETE(self) -> None:
        self.do_POST()


@pytest.fixture
def stand_in() -> Iterator[str]:
    StandIn.seen, StandIn.events, StandIn.hold_open = [], [], 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_carry_the_token_and_the_bodies_the_api_wants(stand_in: str) -> None:
    with ConsoleClient(stand_in, TOKEN) as client:
        assert client.cards() == {"cards": [], "pki": False}
        client.set_tries(0, "jpki", 0x18, 2)
        client.lock("reader A/1", "jpki", "jpki_auth")
        client.unlock(1, "text", "0011")
        client.switch_persona(0, name="demo")
        client.apply_faults(0, scenario="one-try-left")
        client.clear_faults(0)
        client.revoke(0, "both", "keyCompromise")
        client.hold(0)
    sent = [
        (method, path, json.loads(body) if body else None) for method, path, _, body in StandIn.seen
    ]
    assert sent == [
        ("GET", "/api/cards", None),
        ("POST", "/api/cards/0/credentials/jpki/0018", {"tries": 2}),
        ("POST", "/api/cards/reader%20A%2F1/credentials/jpki/jpki_auth", {"action": "lock"}),
        ("POST", "/api/cards/1/credentials/text/0011", {"action": "unlock"}),
        ("POST", "/api/cards/0/persona", {"persona": "demo"}),
        ("POST", "/api/cards/0/faults", {"scenario": "one-try-left"}),
        ("DELETE", "/api/cards/0/faults", None),
        ("POST", "/api/cards/0/certificates/both/revoke", {"reason": "keyCompromise"}),
        ("POST", "/api/cards/0/certificates/auth/hold", {}),
    ]
    for _, _, headers, _ in StandIn.seen:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Host"] == stand_in.removeprefix("http://")


def test_refusals_become_console_errors(stand_in: str) -> None:
    with ConsoleClient(stand_in, TOKEN) as client:
        with pytest.raises(ConsoleError) as tries:
            client.set_tries(0, "jpki", "jpki_auth", 9)
        assert (tries.value.status, tries.value.field) == (400, "tries")
        assert str(tries.value) == (
            "POST /api/cards/0/credentials/jpki/jpki_auth → HTTP 400: "
            "tries: must be an integer 0-3 (0 blocks), got 9"
        )
        with pytest.raises(ConsoleError) as missing:
            client.card(9)
        assert (missing.value.status, missing.value.field) == (404, "reader")
        assert TOKEN not in str(missing.value)  # even when the server said it
        with pytest.raises(ConsoleError) as proxy:
            client.card("text")
        assert (proxy.value.status, proxy.value.field, proxy.value.message) == (
            502,
            None,
            "Bad proxy",
        )
    with ConsoleClient(stand_in, "wrong") as client:
        with pytest.raises(ConsoleError) as unauthorized:
            client.cards()
        assert (unauthorized.value.status, unauthorized.value.field) == (401, "authorization")
        with pytest.raises(ConsoleError) as streaming:
            next(iter(client.events()))
        assert streaming.value.status == 401


def test_events_are_parsed_in_order_and_end_at_the_deadline(stand_in: str) -> None:
    StandIn.events = [
        b'event: hello\ndata: {"cards": [{"reader": "A", "inserted": true}]}\n\n',
        b": keepalive\n\n",
        b'id: 5\nevent: exchange\ndata: {"seq": 5, "kind": "exchange", "sw": "9000"}\n\n',
        b'id: 6\nevent: state\ndata: {"reader": "A", "action": "remove",\n'
        b'data:  "state": {"reader": "A", "inserted": false}}\n\n',
        b'id: 7\nevent: dropped\ndata: {"count": 3}\n\n',
    ]
    StandIn.hold_open = 3.0
    with ConsoleClient(stand_in, TOKEN) as client:
        started = time.monotonic()
        with client.events(timeout=1.0) as stream:
            got = list(stream)
        assert time.monotonic() - started < 2.5  # stopped at its deadline, not the server's end
    assert [(e["kind"], e.get("seq")) for e in got] == [
        ("hello", None),
        ("exchange", 5),
        ("state", 6),
        ("dropped", 7),
    ]
    assert got[2]["state"] == {"reader": "A", "inserted": False}
    assert StandIn.seen[0][1] == "/api/events"


def test_wait_for_returns_the_state_that_satisfies_the_predicate(stand_in: str) -> None:
    StandIn.events = [
        b'event: hello\ndata: {"cards": []}\n\n',
        b'id: 1\nevent: state\ndata: {"state": {"reader": "A", "inserted": true}}\n\n',
        b'id: 2\nevent: state\ndata: {"state": {"reader": "A", "inserted": false}}\n\n',
    ]
    StandIn.hold_open = 2.0
    with ConsoleClient(stand_in, TOKEN) as client:
        state = client.wait_for(0, lambda s: s.get("inserted") is False, timeout=5)
        assert state == {"reader": "A", "inserted": False}
        assert StandIn.seen[0][1] == "/api/cards/0/events"
        with pytest.raises(ConsoleTimeoutError) as late:
            client.wait_for(0, lambda s: s.get("powered") is True, timeout=0.5)
        assert isinstance(late.value, TimeoutError) and late.value.field == "timeout"
        assert "within 0.5 s" in str(late.value)
