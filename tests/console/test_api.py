"""The console's HTTP API: guard (host, token, headers), every route, errors that name the field
and change nothing, Server-Sent Events, the masked trace download, ConsoleServer, and ``mynacard
serve --console``.

Most tests run a real uvicorn :class:`ConsoleServer` over cards in process (no pcscd); the last
ones put it over a real CardServer (private pcscd + vpcd) and a ``mynacard serve`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from apdu import builders
from apdu.vocabulary import Jpki, Text
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.card_server import Endpoint
from harness.console import CardController
from harness.console.events import EventHub
from harness.console.masking import response_text
from harness.console.trace_buffer import TRACE_RECORDS, TraceBuffer
from harness.console.web import ConsoleServer, ConsoleServerError
from harness.console.web.guard import MAX_BODY
from harness.console.web.page import CSS_MARKER, JS_MARKER, PAGE
from harness.console.web.sse import Streams, event_stream
from harness.default_pki import personalize_shared, pki_store
from harness.personas import demo_persona_path
from harness.traces.trace_file import read_trace
from jpki.pki_store import PkiStore
from readers.host_side.pcsc import PcscTransport
from tests.conftest import ROOT
from tests.console.test_control import SECRETS, _forms
from tests.integration.test_serve import start_serve

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
SELECT_TEXT = builders.select_aid(Text.AID).to_bytes()
VERIFY_AUTH = builders.verify(b"1234", sfi=0x18).to_bytes()
VERIFY_TEXT = builders.verify(b"1234", sfi=0x11).to_bytes()
SELECT_MY_NUMBER = builders.select_ef(Text.EF_MY_NUMBER).to_bytes()
READ_MY_NUMBER = builders.read_binary(0, 256).to_bytes()
READ_THE_MY_NUMBER = (
    SELECT_JPKI,
    VERIFY_AUTH,
    SELECT_TEXT,
    VERIFY_TEXT,
    SELECT_MY_NUMBER,
    READ_MY_NUMBER,
)
"""A session whose answers hold the My Number (照合番号A): what the console must not show."""

#: Every route of the API: (method, path with reader 0).
ROUTES = [
    ("GET", "/"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/cards"),
    ("GET", "/api/cards/0"),
    ("POST", "/api/cards/0/insert"),
    ("POST", "/api/cards/0/remove"),
    ("POST", "/api/cards/0/glitch"),
    ("POST", "/api/cards/0/reset"),
    ("POST", "/api/cards/0/credentials/jpki/0018"),
    ("POST", "/api/cards/0/persona"),
    ("POST", "/api/cards/0/faults"),
    ("DELETE", "/api/cards/0/faults"),
    ("POST", "/api/cards/0/certificates/auth/hold"),
    ("GET", "/api/cards/0/events"),
    ("GET", "/api/events"),
    ("GET", "/api/cards/0/trace"),
    ("GET", "/api/personas"),
    ("GET", "/api/scenarios"),
]


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


@pytest.fixture(scope="module")
def memory_pki() -> PkiStore:
    return PkiStore.in_memory()


@pytest.fixture(scope="module")
def other_persona(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A persona file beside the demo one: another label and holder."""
    text = demo_persona_path().read_text("utf-8")
    text = text.replace('label = "demo"', 'label = "other"').replace("番号　花子", "試験　太郎")
    path = tmp_path_factory.mktemp("personas") / "other.toml"
    path.write_text(text, "utf-8")
    persona_module.load(path)  # a valid persona
    return path


def demo_card(pki: PkiStore) -> Card:
    return Card(personalize(persona_module.load(demo_persona_path()), store=pki))


@pytest.fixture
def controller(memory_pki: PkiStore) -> Iterator[CardController]:
    """Two demo cards in process: "Reader A 00" (certificates in ``memory_pki``) and "B"."""
    cards = [
        ("Reader A 00", demo_card(memory_pki)),
        ("B", Card(personalize_shared(persona_module.load(demo_persona_path())))),
    ]
    with CardController(cards, pki=memory_pki) as made:
        yield made


@pytest.fixture
def console(controller: CardController, other_persona: Path) -> Iterator[ConsoleServer]:
    with ConsoleServer(controller, personas=[demo_persona_path(), other_persona]) as server:
        yield server


@pytest.fixture
def api(console: ConsoleServer) -> Iterator[httpx.Client]:
    """A client of ``console`` with the token."""
    headers = {"Authorization": f"Bearer {console.token}"}
    with httpx.Client(base_url=console.base_url, headers=headers, timeout=60) as client:
        yield client


def cards(api: httpx.Client) -> Any:
    answer = api.get("/api/cards")
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_error(answer: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "field"}, body
    assert body["field"] == field, body
    assert isinstance(body["error"], str) and body["error"]
    return body  # type: ignore[no-any-return]


# -- the guard -------------------------------------------------------------------------------


def test_every_route_needs_the_token(console: ConsoleServer, api: httpx.Client) -> None:
    before = cards(api)
    with httpx.Client(base_url=console.base_url, timeout=30) as anonymous:
        for method, path in ROUTES:
            wrong: list[dict[bytes, bytes]] = [
                {},
                {b"Authorization": b"Bearer wrong"},
                {b"Authorization": f"Basic {console.token}".encode()},
                {b"Authorization": f"Bearer {console.token}x".encode()},
                {b"Authorization": "Bearer ☃".encode()},
            ]
            for headers in wrong:
                answer = anonymous.request(method, path, headers=headers, json={"tries": 0})
                body = assert_error(answer, 401, "authorization")
                assert console.token not in body["error"]
                assert answer.headers["www-authenticate"] == "Bearer"
        # the token in the address works for the page only
        assert anonymous.get(f"/?token={console.token}").status_code == 200
        assert_error(anonymous.get(f"/api/cards?token={console.token}"), 401, "authorization")
        assert_error(anonymous.get("/?token=wrong"), 401, "authorization")
    assert cards(api) == before


def test_a_foreign_host_is_refused_even_with_the_token(
    console: ConsoleServer, api: httpx.Client
) -> None:
    before = cards(api)
    other = console.port + 1 if console.port < 65535 else console.port - 1
    for host in (
        f"evil.example:{console.port}",
        f"127.0.0.1:{other}",
        "127.0.0.1",
        f"localhost.evil.example:{console.port}",
        f"127.0.0.2:{console.port}",
        f"[::1]:{console.port}",
        "",
    ):
        for method, path in ROUTES:
            answer = api.request(method, path, headers={"Host": host}, json={"tries": 0})
            assert_error(answer, 403, "host")
    assert api.get("/api/cards", headers={"Host": f"localhost:{console.port}"}).status_code == 200
    assert cards(api) == before


def test_answers_carry_the_security_headers_and_no_cors(api: httpx.Client) -> None:
    origin = {"Origin": "http://evil.example"}
    for answer in (
        api.get("/api/cards", headers=origin),
        api.get("/"),
        api.post("/api/cards/9/insert"),
        api.options("/api/cards", headers={**origin, "Access-Control-Request-Method": "POST"}),
        httpx.get(f"{api.base_url}/api/cards", headers=origin),
    ):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert not [name for name in answer.headers if name.lower().startswith("access-control")]


def test_the_page_is_one_answer_with_its_script_inlined_by_nonce(api: httpx.Client) -> None:
    answer = api.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in answer.text
    assert CSS_MARKER not in answer.text and JS_MARKER not in answer.text
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy  # nothing external
    index = (PAGE / "index.html").read_text("utf-8")
    assert CSS_MARKER in index and JS_MARKER in index
    assert api.get("/").headers["content-security-policy"] != policy  # a fresh nonce


def test_a_huge_body_is_refused_before_it_is_read(api: httpx.Client) -> None:
    before = cards(api)
    answer = api.post(
        "/api/cards/0/persona",
        content=b'{"toml": "' + b"x" * (MAX_BODY + 10) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(answer, 413, "body")
    assert cards(api) == before


# -- bad input: every refusal names the field and changes nothing ----------------------------

CREDENTIAL = "/api/cards/0/credentials/jpki/jpki_auth"
BAD_REQUESTS: list[tuple[str, str, str, Any, int, str | None]] = [
    ("tries-too-high", "POST", CREDENTIAL, {"tries": 4}, 400, "tries"),
    ("tries-negative", "POST", CREDENTIAL, {"tries": -1}, 400, "tries"),
    ("tries-huge", "POST", CREDENTIAL, {"tries": 10**30}, 400, "tries"),
    ("tries-text", "POST", CREDENTIAL, {"tries": "2"}, 400, "tries"),
    ("tries-bool", "POST", CREDENTIAL, {"tries": True}, 400, "tries"),
    ("tries-float", "POST", CREDENTIAL, {"tries": 1.5}, 400, "tries"),
    ("tries-null-only", "POST", CREDENTIAL, {"tries": None}, 400, "body"),
    ("both", "POST", CREDENTIAL, {"tries": 1, "action": "lock"}, 400, "body"),
    ("neither", "POST", CREDENTIAL, {}, 400, "body"),
    ("bad-action", "POST", CREDENTIAL, {"action": "smash"}, 400, "action"),
    ("unknown-key", "POST", CREDENTIAL, {"tries": 1, "pin": "1234"}, 400, "pin"),
    ("array", "POST", CREDENTIAL, [1], 400, "body"),
    ("string", "POST", CREDENTIAL, "lock", 400, "body"),
    ("no-body", "POST", CREDENTIAL, None, 400, "body"),
    ("malformed", "POST", CREDENTIAL, b'{"tries": 1', 400, "body"),
    ("not-utf8", "POST", CREDENTIAL, b'{"tries": "\xff"}', 400, "body"),
    ("unknown-app", "POST", "/api/cards/0/credentials/nope/0018", {"tries": 1}, 404, "application"),
    ("unknown-fid", "POST", "/api/cards/0/credentials/jpki/0099", {"tries": 1}, 404, "credential"),
    (
        "wrong-app",
        "POST",
        "/api/cards/0/credentials/text/jpki_auth",
        {"tries": 1},
        404,
        "credential",
    ),
    ("unknown-reader", "POST", "/api/cards/9/insert", None, 404, "reader"),
    ("unknown-name", "POST", "/api/cards/nope/glitch", None, 404, "reader"),
    ("long-index", "GET", "/api/cards/" + "9" * 5000, None, 404, "reader"),
    ("unknown-reader-get", "GET", "/api/cards/7", None, 404, "reader"),
    ("unknown-reader-trace", "GET", "/api/cards/7/trace", None, 404, "reader"),
    ("unknown-reader-events", "GET", "/api/cards/7/events", None, 404, "reader"),
    (
        "unknown-reader-tries",
        "POST",
        "/api/cards/7/credentials/jpki/0018",
        {"tries": 1},
        404,
        "reader",
    ),
    ("persona-unknown", "POST", "/api/cards/0/persona", {"persona": "nobody"}, 400, "persona"),
    ("persona-both", "POST", "/api/cards/0/persona", {"persona": "demo", "toml": ""}, 400, "body"),
    ("persona-number", "POST", "/api/cards/0/persona", {"persona": 3}, 400, "persona"),
    ("persona-bad-toml", "POST", "/api/cards/0/persona", {"toml": "label = ["}, 400, "toml"),
    ("persona-incomplete", "POST", "/api/cards/0/persona", {"toml": 'label = "x"'}, 400, "toml"),
    ("persona-too-big", "POST", "/api/cards/0/persona", {"toml": "#" * 300_000}, 400, "toml"),
    (
        "persona-names-a-file",
        "POST",
        "/api/cards/0/persona",
        {"toml": '[images]\nphoto = "/etc/hostname"'},
        400,
        "toml",
    ),
    (
        "persona-profile-file",
        "POST",
        "/api/cards/0/persona",
        {"toml": 'profile = "../profiles/mine.toml"'},
        400,
        "toml",
    ),
    (
        "persona-wide-chars",
        "POST",
        "/api/cards/0/persona",
        {"toml": "#" + "あ" * 90_000},
        400,
        "toml",
    ),
    ("persona-unknown-reader", "POST", "/api/cards/9/persona", {"persona": "demo"}, 404, "reader"),
    ("faults-unknown", "POST", "/api/cards/0/faults", {"scenario": "no-such"}, 400, "scenario"),
    (
        "faults-persona",
        "POST",
        "/api/cards/0/faults",
        {"scenario": "revoked-certificate"},
        400,
        "scenario",
    ),
    (
        "faults-toml-name",
        "POST",
        "/api/cards/0/faults",
        {"scenario": '[[fault]]\nkind = "remove"'},
        400,
        "scenario",
    ),
    (
        "faults-bad-kind",
        "POST",
        "/api/cards/0/faults",
        {"toml": '[[fault]]\nkind = "bogus"'},
        400,
        "toml",
    ),
    (
        "faults-counters",
        "POST",
        "/api/cards/0/faults",
        {"toml": "[counters]\njpki_auth = 9"},
        400,
        "toml",
    ),
    ("faults-empty", "POST", "/api/cards/0/faults", {}, 400, "body"),
    ("tree", "POST", "/api/cards/0/certificates/neither/hold", None, 400, "tree"),
    ("cert-action", "POST", "/api/cards/0/certificates/auth/smash", None, 404, "action"),
    ("reason", "POST", "/api/cards/0/certificates/auth/revoke", {"reason": "lost"}, 400, "reason"),
    (
        "reason-hold",
        "POST",
        "/api/cards/0/certificates/auth/revoke",
        {"reason": "certificateHold"},
        400,
        "reason",
    ),
    (
        "reason-on-hold",
        "POST",
        "/api/cards/0/certificates/auth/hold",
        {"reason": "keyCompromise"},
        400,
        "reason",
    ),
    ("release-not-held", "POST", "/api/cards/0/certificates/auth/release", None, 400, "tree"),
    ("release-unrecorded", "POST", "/api/cards/1/certificates/auth/release", None, 400, "pki"),
    ("method", "DELETE", "/api/cards/0/insert", None, 405, None),
    ("route", "GET", "/api/nope", None, 404, None),
    ("route-deep", "POST", "/api/cards/0/insert/more", None, 404, None),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_name_the_field_and_change_nothing(
    api: httpx.Client, case: tuple[str, str, str, Any, int, str | None]
) -> None:
    _, method, path, body, status, field = case
    api.post("/api/cards/0/credentials/jpki/jpki_auth", json={"tries": 2})  # not the default
    before = cards(api)
    if isinstance(body, bytes):
        answer = api.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    elif body is None:
        answer = api.request(method, path)
    else:
        answer = api.request(method, path, json=body)
    error = assert_error(answer, status, field)
    if field is not None:
        assert error["error"].startswith(f"{field}: "), error
    assert "1234" not in error["error"]
    assert cards(api) == before


def test_an_uploaded_persona_cannot_put_a_file_of_the_card_machine_on_a_card(
    api: httpx.Client,
) -> None:
    text = demo_persona_path().read_text("utf-8") + '\n[images]\nphoto = "/etc/hostname"\n'
    before = cards(api)
    error = assert_error(api.post("/api/cards/0/persona", json={"toml": text}), 400, "toml")
    assert "images.photo" in error["error"] and "--persona" in error["error"]
    assert cards(api) == before


def test_a_refused_persona_never_echoes_a_pin(api: httpx.Client) -> None:
    text = (
        demo_persona_path().read_text("utf-8").replace('jpki_auth = "1234"', 'jpki_auth = "99999"')
    )
    assert '"99999"' in text
    before = cards(api)
    error = assert_error(api.post("/api/cards/0/persona", json={"toml": text}), 400, "toml")
    assert "99999" not in error["error"]
    assert cards(api) == before


def test_conflicts_are_409(api: httpx.Client, controller: CardController) -> None:
    api.post("/api/cards/0/remove").raise_for_status()
    before = cards(api)
    for action in ("glitch", "reset"):
        assert_error(api.post(f"/api/cards/0/{action}"), 409, "reader")
    assert cards(api) == before


def test_certificate_actions_without_a_pki_are_409() -> None:
    card = Card(personalize_shared(persona_module.load(demo_persona_path())))
    with CardController([("A", card)]) as controller, ConsoleServer(controller) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            before = client.get("/api/cards").json()
            assert before["pki"] is False
            for action in ("hold", "release", "revoke"):
                answer = client.post(f"/api/cards/A/certificates/both/{action}")
                assert_error(answer, 409, "pki")
            assert client.get("/api/cards").json() == before


def test_connections_are_tcp_so_asyncio_turns_nagle_off(console: ConsoleServer) -> None:
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; with proto 0 every
    keep-alive answer waited 40 ms for the client's delayed ACK (headers and body are two
    writes). An accepted connection, seen from the server's side, must have Nagle off."""
    import asyncio.base_events

    listening = console._socket
    assert listening is not None and listening.proto == socket.IPPROTO_TCP
    probe = socket.socket(listening.family, listening.type, listening.proto)  # as accepted
    with probe:
        asyncio.base_events._set_nodelay(probe)  # what asyncio does to every transport's socket
        assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


# -- the routes that act -----------------------------------------------------------------------


def test_readers_by_index_and_by_url_encoded_name(api: httpx.Client) -> None:
    listed = cards(api)
    assert listed["pki"] is True
    assert [card["reader"] for card in listed["cards"]] == ["Reader A 00", "B"]
    by_name = api.get(f"/api/cards/{quote('Reader A 00')}").json()
    assert by_name == api.get("/api/cards/0").json() == listed["cards"][0]
    assert api.get("/api/cards/1").json()["reader"] == "B"


def test_reader_actions(api: httpx.Client, controller: CardController) -> None:
    card = controller.card(0)
    card.transmit(SELECT_JPKI)
    card.transmit(VERIFY_AUTH)
    assert api.get("/api/cards/0").json()["verified"] == ["jpki_auth"]
    for action in ("glitch", "reset"):
        state = api.post(f"/api/cards/0/{action}").json()
        assert (state["application"], state["verified"], state["powered"]) == (None, [], True)
    state = api.post("/api/cards/0/remove").json()
    assert (state["inserted"], state["powered"]) == (False, False)
    assert api.post("/api/cards/0/remove").json() == state  # already out
    state = api.post("/api/cards/0/insert").json()
    assert (state["inserted"], state["powered"]) == (True, True)


def test_credentials_by_fid_or_name_tries_lock_unlock_refill(api: httpx.Client) -> None:
    def tries(state: dict[str, Any], application: str, fid: str) -> int:
        found = [
            c for c in state["credentials"] if (c["application"], c["fid"]) == (application, fid)
        ]
        return int(found[0]["tries_left"])

    base = "/api/cards/0/credentials"
    assert tries(api.post(f"{base}/jpki/0018", json={"tries": 1}).json(), "jpki", "0018") == 1
    assert tries(api.post(f"{base}/jpki/18", json={"tries": 2}).json(), "jpki", "0018") == 2
    assert (
        tries(api.post(f"{base}/jpki/jpki_auth", json={"action": "lock"}).json(), "jpki", "0018")
        == 0
    )
    assert (
        tries(api.post(f"{base}/jpki/001b", json={"action": "unlock"}).json(), "jpki", "001B") == 5
    )
    assert tries(api.post(f"{base}/jpki/jpki_sign", json={"tries": 0}).json(), "jpki", "001B") == 0
    assert (
        tries(api.post(f"{base}/jpki/jpki_sign", json={"action": "refill"}).json(), "jpki", "001B")
        == 5
    )
    # a credential without a CREDENTIALS name, by its FID
    assert (
        tries(api.post(f"{base}/text/0012", json={"action": "refill"}).json(), "text", "0012") == 3
    )
    assert (
        tries(api.post(f"{base}/kenmen/kenmen_birth", json={"tries": 9}).json(), "kenmen", "0011")
        == 9
    )


def test_personas_and_scenarios_lists(api: httpx.Client) -> None:
    personas = api.get("/api/personas").json()["personas"]
    assert personas == [
        {"name": "demo", "label": "demo", "holder": "番号　花子"},
        {"name": "other", "label": "other", "holder": "試験　太郎"},
    ]
    scenarios = {s["name"]: s for s in api.get("/api/scenarios").json()["scenarios"]}
    assert scenarios["pin-locked"]["applicable"] is True
    assert scenarios["revoked-certificate"]["applicable"] is False
    assert all(isinstance(s["summary"], str) and s["summary"] for s in scenarios.values())


def test_switch_persona_by_name_and_by_toml(api: httpx.Client) -> None:
    state = api.post("/api/cards/0/persona", json={"persona": "other"}).json()
    assert (state["persona"], state["holder"], state["inserted"]) == ("other", "試験　太郎", True)
    toml = demo_persona_path().read_text("utf-8").replace('label = "demo"', 'label = "pasted"')
    state = api.post("/api/cards/1/persona", json={"toml": toml}).json()
    assert (state["persona"], state["holder"]) == ("pasted", "番号　花子")


def test_faults_by_name_by_toml_and_cleared(api: httpx.Client, controller: CardController) -> None:
    state = api.post("/api/cards/0/faults", json={"scenario": "pin-locked"}).json()
    assert state["faults"]["scenario"] == "pin-locked"
    toml = '[[fault]]\nkind = "status"\nmatch = "00 A4 04"\nsw = "6A82"\n'
    state = api.post("/api/cards/0/faults", json={"toml": toml}).json()
    assert state["faults"]["faults"] == ["status @ 00 A4 04"]
    assert sw(controller.card(0).transmit(SELECT_JPKI)) == 0x6A82
    assert api.delete("/api/cards/0/faults").json()["faults"] is None
    assert sw(controller.card(0).transmit(SELECT_JPKI)) == 0x9000


def test_certificates_hold_release_revoke(api: httpx.Client) -> None:
    def states(answer: httpx.Response) -> list[tuple[str, str | None]]:
        assert answer.status_code == 200, answer.text
        return [(c["state"], c["reason"]) for c in answer.json()["certificates"]]

    base = "/api/cards/0/certificates"
    assert states(api.post(f"{base}/auth/hold")) == [
        ("hold", "certificateHold"),
        ("valid", None),
    ]
    assert states(api.post(f"{base}/auth/release", json={})) == [("valid", None), ("valid", None)]
    assert states(api.post(f"{base}/both/revoke", json={"reason": "keyCompromise"})) == [
        ("revoked", "keyCompromise"),
        ("revoked", "keyCompromise"),
    ]
    before = cards(api)
    assert_error(api.post(f"{base}/sign/hold"), 400, "tree")  # already revoked
    assert cards(api) == before


def test_the_openapi_document_lists_every_route(api: httpx.Client) -> None:
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    listed = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    expected = set()
    for method, route in ROUTES:
        if route == "/api/openapi.json":  # the document itself is not in it
            continue
        path = route.replace("jpki/0018", "{ap}/{credential}").replace(
            "auth/hold", "{tree}/{action}"
        )
        expected.add((method, path.replace("/cards/0", "/cards/{reader}")))
    assert listed == expected


# -- events ----------------------------------------------------------------------------------


class SseReader:
    """Reads the messages of one event stream in a thread (so a test never blocks on it)."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.comments = 0
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._context = client.stream("GET", path, timeout=httpx.Timeout(60, read=None))
        self.response = self._context.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                elif fields:
                    message = {"event": fields.get("event"), "id": fields.get("id")}
                    message["data"] = json.loads(fields["data"])
                    with self._cond:
                        self.messages.append(message)
                        self._cond.notify_all()
                    fields = {}
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """The messages so far, once ``predicate(messages)`` holds (AssertionError if never)."""
        with self._cond:
            done = self._cond.wait_for(lambda: predicate(self.messages), timeout)
            assert done, f"never came: {self.messages[-5:]}"
            return list(self.messages)

    def close(self) -> None:
        """Hang up: shut the socket down (a read blocked in the reader thread returns)."""
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        with contextlib.suppress(httpx.HTTPError):
            self._context.__exit__(None, None, None)


def test_events_hello_then_masked_exchanges_in_order(
    api: httpx.Client, controller: CardController
) -> None:
    stream = SseReader(api, "/api/events")
    try:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        hello = stream.wait_for(lambda m: len(m) >= 1)[0]
        assert hello["event"] == "hello" and hello["id"] is None
        assert [c["reader"] for c in hello["data"]["cards"]] == ["Reader A 00", "B"]
        card = controller.card(0)
        answers = [card.transmit(command) for command in READ_THE_MY_NUMBER]
        assert {sw(answer) for answer in answers} == {0x9000}
        assert b"314159265352" in answers[-1]  # the My Number came back...
        api.post("/api/cards/0/credentials/text/text_pin", json={"tries": 2}).raise_for_status()
        messages = stream.wait_for(lambda m: any(x["event"] == "state" for x in m))
    finally:
        stream.close()
    exchanges = [m["data"] for m in messages if m["event"] == "exchange"]
    assert [x["meaning"] for x in exchanges] == [
        "SELECT 公的個人認証AP",
        "VERIFY 利用者証明用暗証番号 (JPKI 0018)",
        "SELECT 券面事項入力補助AP",
        "VERIFY 券面事項入力補助用暗証番号 (券面事項入力補助AP 0011)",
        "SELECT EF 0001 個人番号",
        "READ BINARY 0001 個人番号 @0x0000",
    ]
    assert exchanges[1]["command"] == "00 20 00 98 04 XX XX XX XX"
    assert exchanges[3]["command"] == "00 20 00 91 04 XX XX XX XX"
    read = exchanges[-1]
    assert read["response"] == f"({len(answers[-1]) - 2} bytes) 90 00"
    assert read["response_length"] == len(answers[-1]) - 2
    assert exchanges[0]["response"] == "(0 bytes) 90 00" and exchanges[0]["sw"] == "9000"
    assert all(
        set(x) >= {"seq", "kind", "type", "t", "reader", "command", "response", "sw"}
        for x in exchanges
    )
    ids = [int(m["id"]) for m in messages if m["id"] is not None]
    assert ids == sorted(ids) and [m["data"]["seq"] for m in messages[1:]] == ids
    state = next(m["data"] for m in messages if m["event"] == "state")
    assert (state["action"], state["detail"]) == (
        "set_tries",
        {"credential": "text_pin", "tries": 2},
    )
    text = json.dumps(messages, ensure_ascii=False) + json.dumps(messages)
    for secret in SECRETS:  # ...but never left the process
        for form in _forms(secret):
            assert form not in text, (secret, form)


def test_a_reader_stream_has_that_reader_only_and_progress_of_a_switch(
    api: httpx.Client, controller: CardController
) -> None:
    stream = SseReader(api, f"/api/cards/{quote('Reader A 00')}/events")
    try:
        hello = stream.wait_for(lambda m: len(m) >= 1)[0]
        assert [c["reader"] for c in hello["data"]["cards"]] == ["Reader A 00"]
        controller.card(1).transmit(SELECT_JPKI)  # reader B: not in this stream
        api.post("/api/cards/0/persona", json={"persona": "other"}).raise_for_status()
        messages = stream.wait_for(lambda m: any(x["event"] == "state" for x in m))
    finally:
        stream.close()
    assert {m["data"]["reader"] for m in messages[1:]} == {"Reader A 00"}
    progress = [m["data"] for m in messages if m["event"] == "progress"]
    assert [(p["step"], p["steps"], p["action"]) for p in progress] == [
        (step, 5, "switch_persona") for step in range(1, 6)
    ]
    assert progress[-1]["label"] == "done"
    kinds = [m["event"] for m in messages]
    assert kinds.index("progress") < kinds.index("card") < kinds.index("state")


def test_idle_streams_hold_no_thread_and_end_when_the_client_goes(
    api: httpx.Client, controller: CardController
) -> None:
    hub: EventHub = controller._events()._hub
    baseline = len(hub._subscriptions)
    threads = threading.active_count()
    streams = [SseReader(api, "/api/events") for _ in range(60)]  # more than the thread pool
    try:
        for stream in streams:
            stream.wait_for(lambda m: len(m) >= 1)
        assert len(hub._subscriptions) == baseline + 60
        # every request still gets a worker thread: no idle stream holds one
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: api.get("/api/cards").status_code, range(40)))
        assert set(answers) == {200}
        assert threading.active_count() < threads + 60 + 20  # reader threads of this test only
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 30
    while len(hub._subscriptions) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hub._subscriptions) == baseline  # each subscription closed with its client


def test_stopping_the_server_ends_open_streams(controller: CardController) -> None:
    server = ConsoleServer(controller).start()
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        stream = SseReader(client, "/api/events")
        stream.wait_for(lambda m: len(m) >= 1)
        server.stop()
        assert stream.ended.wait(30)
        stream.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/api/cards", headers=headers)


def _collect(stream: Any, count: int) -> list[str]:
    async def run() -> list[str]:
        out = []
        async for text in stream:
            out.append(text)
            if len(out) == count:
                break
        await stream.aclose()
        return out

    return asyncio.run(run())


def test_a_full_stream_queue_reports_what_it_dropped_and_keepalives_an_idle_one() -> None:
    hub = EventHub()
    subscription = hub.subscribe(maxsize=3)
    for number in range(10):
        hub.publish("exchange", "A", {"n": number})
    texts = _collect(event_stream(subscription, lambda: {"cards": []}, None, Streams()), 5)
    assert texts[0] == 'event: hello\ndata: {"cards": []}\n\n'
    assert texts[1] == 'event: dropped\ndata: {"count": 7}\n\n'
    assert [json.loads(t.split("data: ", 1)[1])["n"] for t in texts[2:]] == [7, 8, 9]
    assert texts[2].startswith("id: 8\nevent: exchange\n")
    assert subscription.closed  # the stream closes its subscription when it ends
    idle = hub.subscribe()
    texts = _collect(event_stream(idle, lambda: {}, None, Streams(), keepalive=0.01), 3)
    assert texts[1:] == [": keepalive\n\n", ": keepalive\n\n"]


# -- the trace download ------------------------------------------------------------------------


def test_the_trace_download_reads_back_masked(
    api: httpx.Client, controller: CardController, tmp_path: Path
) -> None:
    card = controller.card(0)
    answers = [card.transmit(command) for command in READ_THE_MY_NUMBER]
    assert b"314159265352" in answers[-1]
    api.post("/api/cards/0/glitch").raise_for_status()
    controller.card(1).transmit(SELECT_TEXT)  # the other reader's
    answer = api.get(f"/api/cards/{quote('Reader A 00')}/trace")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["content-disposition"] == 'attachment; filename="Reader_A_00.trace.jsonl"'
    path = tmp_path / "a.trace.jsonl"
    path.write_bytes(answer.content)
    trace = read_trace(path)
    assert trace.header["version"] == 2 and trace.header["reader"] == "Reader A 00"
    exchanges = trace.exchanges
    assert [x.meaning for x in exchanges] == [
        "SELECT 公的個人認証AP",
        "VERIFY 利用者証明用暗証番号 (JPKI 0018)",
        "SELECT 券面事項入力補助AP",
        "VERIFY 券面事項入力補助用暗証番号 (券面事項入力補助AP 0011)",
        "SELECT EF 0001 個人番号",
        "READ BINARY 0001 個人番号 @0x0000",
    ]
    assert [x.seq for x in exchanges] == [1, 2, 3, 4, 5, 6]
    assert exchanges[1].command == "00 20 00 98 04 XX XX XX XX"
    assert [x.response for x in exchanges] == ["90 00"] * 6  # the status word only
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert lines[6]["response_length"] == len(answers[-1]) - 2
    assert [e.event for e in trace.items if not hasattr(e, "command")] == ["power_off", "power_on"]
    assert {item.reader for item in trace.items} == {"Reader A 00"}
    for secret in SECRETS:
        for form in _forms(secret):
            assert form not in answer.text
    assert read_trace_text(api.get("/api/cards/1/trace").text, tmp_path)[0].meaning == (
        "SELECT 券面事項入力補助AP"
    )


def read_trace_text(text: str, folder: Path) -> list[Any]:
    path = folder / "other.trace.jsonl"
    path.write_text(text, "utf-8")
    return read_trace(path).exchanges


def test_the_trace_buffer_keeps_the_last_records_of_each_reader() -> None:
    assert TRACE_RECORDS == 10_000
    from apdu import TraceRecord

    buffer = TraceBuffer(size=3)
    for number in range(5):
        buffer.add(TraceRecord(float(number), SELECT_JPKI, b"\x90\x00", reader="A"), "select")
    buffer.add(TraceRecord.card_event("reset", reader="B"))
    assert [line["seq"] for line in buffer.lines("A")] == [3, 4, 5]
    assert [line["type"] for line in buffer.lines("B")] == ["event"]
    assert buffer.lines("C") == []


def test_response_text() -> None:
    assert response_text(b"\x90\x00") == "(0 bytes) 90 00"
    assert response_text(b"\x01\x90\x00") == "(1 byte) 90 00"
    assert response_text(bytes(12) + b"\x62\x82") == "(12 bytes) 62 82"
    assert response_text(b"\x90") == "(1 byte)"
    assert response_text(b"") == "(0 bytes)"


# -- ConsoleServer ---------------------------------------------------------------------------


def test_console_server_basics(controller: CardController) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    first = ConsoleServer(controller)
    with pytest.raises(RuntimeError):
        first.port  # noqa: B018 - not started
    with first, ConsoleServer(controller) as second:
        assert first.port != second.port and 0 < first.port < 65536
        assert first.token != second.token and len(first.token) >= 40
        assert first.url == f"http://127.0.0.1:{first.port}/?token={first.token}"
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        with pytest.raises(ConsoleServerError, match=f"console port {first.port}"):
            ConsoleServer(controller, port=first.port).start()
        page = httpx.get(first.url)
        assert page.status_code == 200 and "<html" in page.text
    with pytest.raises(ValueError, match="0-65535"):
        ConsoleServer(controller, port=70000)
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", first.port))


# -- over a real CardServer (pcscd + vpcd) ---------------------------------------------------


@pytest.mark.pcsc
def test_apdus_answer_right_while_the_api_is_hammered(myna_pcscd: Any) -> None:
    readers = myna_pcscd.readers[:1]
    name = readers[0].name
    controller = CardController.serve(
        [("demo", Card(personalize_shared(persona_module.load(demo_persona_path()))))],
        pki=pki_store(),
        endpoints=[Endpoint(r.host, r.port, r.name, r.netns) for r in readers],
    )
    with controller, ConsoleServer(controller) as server:
        myna_pcscd.wait_for_card(name, timeout=10)
        headers = {"Authorization": f"Bearer {server.token}"}
        answers: list[int] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def client() -> None:
            try:
                with PcscTransport(name) as transport:
                    while not stop.is_set() or len(answers) < 30:
                        for command in (
                            SELECT_JPKI,
                            VERIFY_AUTH,
                            builders.verify(None, sfi=0x18).to_bytes(),
                        ):
                            answers.append(sw(transport.transmit(command)))
            except BaseException as exc:  # reported below
                errors.append(exc)

        def call(number: int) -> int:
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as api:
                if number % 3 == 0:
                    return api.get("/api/cards").status_code
                body: dict[str, Any]
                if number % 3 == 1:
                    body = {"tries": number % 4}
                else:
                    body = {"action": "refill"}
                path = "/api/cards/0/credentials/text/text_pin"
                return api.post(path, json=body).status_code

        apdus = threading.Thread(target=client)
        apdus.start()
        try:
            with ThreadPoolExecutor(max_workers=50) as pool:
                statuses = list(pool.map(call, range(200)))
        finally:
            stop.set()
            apdus.join(60)
        assert not errors, errors
        assert len(statuses) == 200 and all(200 <= s < 300 for s in statuses), statuses
        assert len(answers) >= 30
        expected = [0x9000, 0x9000, 0x63C3] * (len(answers) // 3)
        assert answers == expected[: len(answers)]
        with httpx.Client(base_url=server.base_url, headers=headers) as api:
            state = api.get(f"/api/cards/{quote(name)}").json()
        assert state["inserted"] and state["reader"] == name
    myna_pcscd.wait_for_card(name, present=False, timeout=10)  # empty for the next test


# -- mynacard serve --console ------------------------------------------------------------------


def _console_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("console ")]
    assert len(lines) == 1, output
    return lines[0].split(" ", 1)[1]


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)  # the process this test started, by its PID
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


@pytest.mark.pcsc
@pytest.mark.slow
def test_serve_console_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, output, _, _ = start_serve("--console", cwd=tmp_path)
    try:
        url = _console_line(output)
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        base, token = url.split("/?token=")
        answer = httpx.get(f"{base}/api/cards", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert [card["holder"] for card in answer.json()["cards"]] == ["番号　花子"]
        assert answer.json()["pki"] is True
        assert httpx.get(f"{base}/api/cards").status_code == 401
        personas = httpx.get(f"{base}/api/personas", headers={"Authorization": f"Bearer {token}"})
        assert [p["name"] for p in personas.json()["personas"]] == ["demo"]
    finally:
        out = _stop(process)
    assert "stopped: cards removed, pcscd stopped." in out
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/api/cards")


@pytest.mark.pcsc
@pytest.mark.slow
def test_serve_console_from_the_config_file(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "bench.toml").write_text(f"[console]\nenabled = true\nport = {port}\n", "utf-8")
    process, output, _, _ = start_serve("--config", "bench.toml", cwd=tmp_path)
    try:
        url = _console_line(output)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        token = url.split("token=", 1)[1]
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/cards", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    finally:
        _stop(process)
    assert not os.environ.get("MYNACARD_CONSOLE")  # nothing leaked into this process


@pytest.mark.pcsc
@pytest.mark.slow
def test_serve_names_a_busy_console_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "serve",
                "--private-socket",
                "--console",
                "--console-port",
                str(port),
            ],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"},
                "PYTHONPATH": str(ROOT),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"mynacard: console port {port}: cannot listen on 127.0.0.1" in run.stderr
    assert "Traceback" not in run.stderr


def test_serve_refuses_a_busy_console_port_before_starting_pcscd(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import cli
    from harness.card_server import CardServer

    def started(*_: object) -> None:
        raise AssertionError("pcscd was started before the console's port was bound")

    monkeypatch.setattr(CardServer, "open_readers", started)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["serve", "--private-socket", "--console", "--console-port", str(port)])
    assert code == 2
    assert f"console port {port}: cannot listen" in capsys.readouterr().err


def test_the_switch_interval_is_given_back_when_the_console_stops() -> None:
    before = sys.getswitchinterval()
    with CardController([]) as controller, ConsoleServer(controller):
        assert sys.getswitchinterval() <= 0.0005  # a card thread waits less behind a request
    assert sys.getswitchinterval() == before
