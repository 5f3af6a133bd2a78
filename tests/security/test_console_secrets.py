"""Nothing the console returns or streams holds a secret of the card.

A pyscard client runs a whole session with the demo persona through pcscd + vpcd (JPKI VERIFY
of both PINs, wrong ones first; signatures; the 券面事項入力補助AP read with the PIN and with
照合番号 A and B; the 券面AP with 照合番号 A and B and the birth-date key; the 住基AP) while a
subscriber reads ``/api/events``. Then every endpoint is read (cards, each card by index and
name, personas, scenarios, OpenAPI, the trace, each reader's event stream, the page), and
persona TOML holding the PINs is posted with faults in it. No secret may appear in any body or
event: not in ASCII, not in hex (spaced or not, upper or lower case), not as the card's
encodings of it (ASCII digits in hex, as the VERIFY data and the text AP's records carry them).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from apdu import MynacardError
from apdu.vocabulary import Jpki, Kenmen
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.card_server import Endpoint
from harness.console import CardController
from harness.console.web.server import ConsoleServer
from harness.personas import demo_persona_path
from jpki.pki_store import PkiStore
from readers.card_side.pcscd import PrivatePcscd
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import PcscTransport

pytestmark = pytest.mark.pcsc

MY_NUMBER = "314159265352"  # 個人番号 = 照合番号A
CHECK_CODE_B = "55021720352285"  # birth date (era YYMMDD) + expiry year + security code
WRONG = ("9876", "XYZ789", "987654321098", "99999999999999")
SECRETS = [
    "1234",  # 利用者証明用 暗証番号, 券面事項入力補助用 暗証番号, 住基 暗証番号
    "ABC123",  # 署名用 パスワード
    MY_NUMBER,
    CHECK_CODE_B,
    "550217",  # the 券面AP birth-date key
    "20352285",  # expiry year + security code
    "2285",  # セキュリティコード
    *WRONG,  # wrong values a holder typed are secrets too (near misses of the right ones)
]

VOLATILE = {"t", "duration_ms", "seq", "since", "not_after", "serial", "elapsed_ms", "time"}
"""Keys of clocks, counters and random serial numbers, which may hold any digits."""


def forms(secret: str) -> list[str]:
    """Every spelling of ``secret`` to look for: itself, and its ASCII bytes in hex."""
    raw = secret.encode("ascii")
    return [
        secret,
        raw.hex(),
        raw.hex().upper(),
        raw.hex(" "),
        raw.hex(" ").upper(),
        raw.hex(":"),
        raw.hex(":").upper(),
    ]


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def comparable(text: str) -> str:
    """``text`` with the volatile fields of JSON in it taken out (JSON, JSON Lines or SSE)."""
    try:
        return json.dumps(without_volatile(json.loads(text)), ensure_ascii=False)
    except ValueError:
        pass
    lines = []
    for line in text.splitlines():
        body = line.removeprefix("data:").strip()
        if line.startswith("id:"):
            continue
        try:
            lines.append(json.dumps(without_volatile(json.loads(body)), ensure_ascii=False))
        except ValueError:
            lines.append(line)
    return "\n".join(lines)


def leaks(text: str) -> list[str]:
    found = []
    cleaned = comparable(text)
    for secret in SECRETS:
        for form in forms(secret):
            where = cleaned.find(form)
            if where != -1:
                context = cleaned[max(0, where - 60) : where + len(form) + 60]
                found.append(f"{secret!r} as {form!r}: …{context}…")
    return found


@dataclass
class Subscriber:
    """Reads the raw text of an event stream on a thread of its own until told to stop."""

    url: str
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            timeout = httpx.Timeout(10.0, read=20.0)
            with (
                httpx.Client(timeout=timeout, trust_env=False) as http,
                http.stream("GET", self.url, headers=self.headers) as reply,
            ):
                assert reply.status_code == 200, reply.status_code
                for chunk in reply.iter_raw():
                    self.chunks.append(chunk)
                    self.started.set()
                    if self.stop.is_set():
                        return
        except httpx.ReadTimeout:
            if not self.stop.is_set():
                self.error.append(RuntimeError("the event stream went quiet before the end"))
        except BaseException as exc:
            self.error.append(exc)
        finally:
            self.started.set()

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


@pytest.fixture
def console(myna_pcscd: PrivatePcscd) -> Iterator[tuple[ConsoleServer, str]]:
    pki = PkiStore.in_memory()
    reader = myna_pcscd.readers[0]
    card = Card(personalize(persona_module.load(demo_persona_path()), store=pki))
    controller = CardController.serve(
        [(reader.name, card)],
        pki=pki,
        endpoints=[Endpoint(reader.host, reader.port, reader.name, reader.netns)],
    )
    try:
        myna_pcscd.wait_for_card(reader.name, timeout=10)
        with ConsoleServer(controller, personas=[demo_persona_path()]) as server:
            yield server, reader.name
    finally:
        controller.close()
        myna_pcscd.wait_for_card(reader.name, present=False, timeout=10)


def refused(action: Any) -> None:
    """Run ``action``, which a card refuses (a wrong PIN)."""
    with pytest.raises(MynacardError):
        action()


def session(reader: str) -> None:
    """What a kiosk and a holder do with the demo card, wrong secrets first."""
    with PcscTransport(reader) as transport:
        client = MynaClient(transport)
        client.select_jpki()
        client.token_info()
        client.certificate(Jpki.EF_AUTH_CERT)
        refused(lambda: client.verify(JpkiCredential.AUTH_PIN, WRONG[0]))
        client.verify(JpkiCredential.AUTH_PIN, "1234")
        client.sign(JpkiCredential.AUTH_PIN, b"kiosk login challenge")
        refused(lambda: client.verify(JpkiCredential.SIGN_PASSWORD, WRONG[1]))
        client.verify(JpkiCredential.SIGN_PASSWORD, "ABC123")
        client.certificate(Jpki.EF_SIGN_CERT)
        client.sign(JpkiCredential.SIGN_PASSWORD, b"a document")
        text = client.text
        refused(lambda: text.unlock_with_pin(WRONG[0]))
        text.unlock_with_pin("1234")
        assert text.my_number() == MY_NUMBER
        text.attributes()
        refused(lambda: text.unlock_with_check_code_a(WRONG[2]))
        text.unlock_with_check_code_a(MY_NUMBER)
        assert text.my_number() == MY_NUMBER
        refused(lambda: text.unlock_with_check_code_b(WRONG[3]))
        text.unlock_with_check_code_b(CHECK_CODE_B)
        text.attributes()
        kenmen = client.kenmen
        kenmen.unlock_with_check_code_a(MY_NUMBER)
        kenmen.face()
        client.read_ef(Kenmen.EF_MY_NUMBER_IMAGE)
        kenmen.unlock_with_check_code_b(CHECK_CODE_B)
        kenmen.face()
        kenmen.unlock_with_birth_date("550217")
        client.read_ef(Kenmen.EF_AGE)
        client.juki.unlock("1234")
        client.juki.resident_code()
        client.common.card_record()


BAD_PERSONAS = [
    # a TOML syntax error on the line of a PIN
    '[pins]\njpki_auth = "1234\njpki_sign = "ABC123"\n',
    # PINs of the wrong form
    '[pins]\njpki_auth = "12a4"\njpki_sign = "ABC123"\ntext = "1234"\njuki = "1234"\n',
    '[pins]\njpki_auth = "1234"\njpki_sign = "ABC123 "\ntext = "1234"\njuki = "1234"\n',
]


def test_the_search_finds_every_form() -> None:
    sample = {"command": "00 20 00 80 04 31 32 33 34", "t": 1751234567.1}
    assert leaks(json.dumps(sample)) and not leaks(json.dumps({"t": 1751234567.1}))
    assert leaks('data: {"x": "3331343135393236353335320a"}')  # hex of the My Number
    assert leaks("<td>abc 414243313233</td>") and leaks("55021720352285")


def test_no_secret_in_any_answer_or_event(console: tuple[ConsoleServer, str]) -> None:
    server, reader = console
    base = server.url.split("/?", 1)[0]
    headers = {"Authorization": f"Bearer {server.token}"}
    subscriber = Subscriber(f"{base}/api/events", headers)
    thread = threading.Thread(target=subscriber.run, daemon=True)
    thread.start()
    assert subscriber.started.wait(10), "no hello from /api/events"

    session(reader)

    bodies: dict[str, str] = {}
    demo_toml = demo_persona_path().read_text(encoding="utf-8")
    with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as http:
        paths = [
            "/api/cards",
            "/api/cards/0",
            f"/api/cards/{quote(reader, safe='')}",
            "/api/personas",
            "/api/scenarios",
            "/api/openapi.json",
            "/api/cards/0/trace",
        ]
        for path in paths:
            reply = http.get(path)
            assert reply.status_code == 200, (path, reply.status_code)
            bodies[f"GET {path}"] = reply.text
        page = http.get(f"/?token={server.token}")
        assert page.status_code == 200
        bodies["GET /"] = page.text.replace(server.token, "")  # the page may carry its token
        for index, toml in enumerate(BAD_PERSONAS):
            reply = http.post("/api/cards/0/persona", json={"toml": toml})
            assert reply.status_code == 400, (toml, reply.text)
            bodies[f"POST persona #{index}"] = reply.text
            assert "12a4" not in reply.text and "ABC123 " not in reply.text
        # the demo persona itself (every PIN in it): a switch, progress events and all
        reply = http.post("/api/cards/0/persona", json={"toml": demo_toml})
        assert reply.status_code == 200, reply.text
        bodies["POST persona demo"] = reply.text
        reply = http.post("/api/cards/0/credentials/jpki/0018", json={"tries": 1})
        bodies["POST tries"] = reply.text
        with http.stream("GET", "/api/cards/0/events", timeout=httpx.Timeout(10, read=1)) as one:
            chunks = []
            try:
                for chunk in one.iter_raw():
                    chunks.append(chunk)
                    if b"\n\n" in b"".join(chunks):
                        break
            except httpx.ReadTimeout:
                pass
            bodies["GET /api/cards/0/events"] = b"".join(chunks).decode()

    time.sleep(0.5)  # the last exchanges and state events reach the subscriber
    subscriber.stop.set()
    with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as http:
        wake = http.post("/api/cards/0/credentials/jpki/0018", json={"action": "refill"})
        assert wake.status_code == 200  # a last state event: the subscriber sees it and stops
    thread.join(timeout=15)
    assert not subscriber.error, subscriber.error
    events = subscriber.text
    assert "event: exchange" in events and "event: state" in events
    assert events.count("event: exchange") >= 40  # the whole session was seen
    bodies["/api/events"] = events

    found = {what: leaks(text) for what, text in bodies.items()}
    found = {what: hits for what, hits in found.items() if hits}
    assert not found, "secrets leaked:\n" + "\n".join(
        f"{what}: {hit}" for what, hits in found.items() for hit in hits[:5]
    )
    assert re.search(r"\(\d+ bytes\) 90 00", events), "responses are shown as length + SW"
