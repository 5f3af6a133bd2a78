"""harness.control against the real console: a ConsoleServer over a CardServer whose cards sit
in the readers of a private pcscd (vpcd), seen by a pyscard client as a kiosk sees them.

Also the pytest plugin's ``myna_console``: with ``--myna-console URL`` and
``$MYNACARD_CONSOLE`` (a pytest run in a subprocess driving the console this test serves) and
without either (the plugin serves one itself).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apdu import builders
from apdu.vocabulary import Jpki
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.card_server import Endpoint
from harness.console import CardController
from harness.console.web.server import ConsoleServer
from harness.control import ConsoleClient, ConsoleError
from harness.personas import demo_persona_path, merge, persona_data, to_toml
from harness.plugin import ConsoleReader
from harness.traces.trace_file import read_trace
from jpki.pki_store import PkiStore
from readers.card_side.pcscd import PrivatePcscd
from readers.host_side.pcsc import PcscTransport, PcscTransportError

pytestmark = pytest.mark.pcsc

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
VERIFY_AUTH = builders.verify(b"1234", sfi=0x18).to_bytes()
RETRIES_AUTH = builders.verify(None, sfi=0x18).to_bytes()
SELECT_CERT = builders.select_ef(0x000A).to_bytes()


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


@dataclass
class Bench:
    """A console over two demo cards in two readers of the shared private pcscd."""

    client: ConsoleClient
    server: ConsoleServer
    controller: CardController
    pcscd: PrivatePcscd
    readers: list[str]

    def connect(self, reader: int = 0, timeout: float = 10.0) -> PcscTransport:
        """A pyscard connection to the card (waiting for pcscd to see a card just put in)."""
        name = self.readers[reader]
        self.pcscd.wait_for_card(name, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            transport = PcscTransport(name)
            try:
                transport.connect()
                return transport
            except PcscTransportError:
                transport.disconnect()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture(scope="module")
def memory_pki() -> PkiStore:
    return PkiStore.in_memory()


def fresh_card(pki: PkiStore) -> Card:
    return Card(personalize(persona_module.load(demo_persona_path()), store=pki))


@pytest.fixture
def bench(myna_pcscd: PrivatePcscd, memory_pki: PkiStore) -> Iterator[Bench]:
    readers = myna_pcscd.readers[:2]
    controller = CardController.serve(
        [(r.name, fresh_card(memory_pki)) for r in readers],
        pki=memory_pki,
        endpoints=[Endpoint(r.host, r.port, r.name, r.netns) for r in readers],
    )
    try:
        for reader in readers:
            myna_pcscd.wait_for_card(reader.name, timeout=10)
        with (
            ConsoleServer(controller, personas=[demo_persona_path()]) as server,
            ConsoleClient(server.url) as client,
        ):
            yield Bench(client, server, controller, myna_pcscd, [r.name for r in readers])
    finally:
        controller.close()
        for reader in readers:
            myna_pcscd.wait_for_card(reader.name, present=False, timeout=10)


def credential(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in state["credentials"] if c["name"] == name)


# -- reading ----------------------------------------------------------------------------------


def test_reading_the_console(bench: Bench) -> None:
    client = bench.client
    answer = client.cards()
    assert answer["pki"] is True
    assert [c["reader"] for c in answer["cards"]] == bench.readers
    first = client.card(0)
    assert first == client.card(bench.readers[0])  # by index or by name
    assert (first["index"], first["holder"], first["inserted"]) == (0, "番号　花子", True)
    assert client.card(1)["reader"] == bench.readers[1]
    assert [p["name"] for p in client.personas()["personas"]] == ["demo"]
    scenarios = {s["name"]: s for s in client.scenarios()["scenarios"]}
    assert scenarios["one-try-left"]["applicable"] is True
    openapi = client.openapi()
    assert openapi["openapi"].startswith("3.")
    assert "/api/cards/{reader}/insert" in openapi["paths"]
    assert "token=…" in repr(client) and bench.server.token not in repr(client)


# -- the reader -------------------------------------------------------------------------------


def test_remove_at_an_exact_moment(bench: Bench) -> None:
    client = bench.client
    transport = bench.connect(0)
    try:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
        state = client.remove(0)
        assert (state["inserted"], state["powered"]) == (False, False)
        with pytest.raises(PcscTransportError):  # the very next APDU finds no card
            transport.transmit(SELECT_JPKI)
    finally:
        transport.disconnect()
    assert client.remove(0)["inserted"] is False  # already out: nothing happens
    with pytest.raises(ConsoleError) as refused:
        client.glitch(0)  # no card to glitch
    assert (refused.value.status, refused.value.field) == (409, "reader")
    assert client.insert(0)["inserted"] is True
    transport = bench.connect(0)
    try:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
    finally:
        transport.disconnect()
    powered = client.wait_for(0, lambda s: s["powered"], timeout=10)
    assert powered["inserted"]


def test_glitch_and_reset_lose_what_was_verified(bench: Bench) -> None:
    client = bench.client
    for action in (client.glitch, client.reset):
        transport = bench.connect(0)
        try:
            assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
            assert sw(transport.transmit(VERIFY_AUTH)) == 0x9000
            assert client.card(0)["verified"] == ["jpki_auth"]
            state = action(0)
            assert (state["application"], state["verified"]) == (None, [])
            # the host was not told: the card answers from the issuer security domain
            assert sw(transport.transmit(SELECT_CERT)) != 0x9000
        finally:
            transport.disconnect()


# -- the card ---------------------------------------------------------------------------------


def test_tries_lock_and_unlock(bench: Bench) -> None:
    client = bench.client
    state = client.set_tries(0, "jpki", 0x18, 1)
    assert credential(state, "jpki_auth")["tries_left"] == 1
    transport = bench.connect(0)
    try:
        transport.transmit(SELECT_JPKI)
        assert sw(transport.transmit(RETRIES_AUTH)) == 0x63C1
        assert credential(client.lock(0, "jpki", "jpki_auth"), "jpki_auth")["blocked"] is True
        assert sw(transport.transmit(VERIFY_AUTH)) == 0x6984
        state = client.unlock(0, "jpki", "0018")
        assert credential(state, "jpki_auth")["tries_left"] == 3
        assert sw(transport.transmit(VERIFY_AUTH)) == 0x9000
        state = client.set_tries(bench.readers[0], "text", "text_pin", 2)
        assert credential(state, "text_pin")["tries_left"] == 2
        assert credential(client.refill(0, "text", 0x11), "text_pin")["tries_left"] == 3
    finally:
        transport.disconnect()
    assert credential(client.card(1), "jpki_auth")["tries_left"] == 3  # the other reader


def test_switch_persona_by_name_and_by_toml(bench: Bench) -> None:
    client = bench.client
    other = merge(persona_data(), {"label": "other", "holder": {"name": "試験　太郎"}})
    with client.events(0, timeout=60) as events:
        state = client.switch_persona(0, toml=to_toml(other))
        assert (state["persona"], state["holder"]) == ("other", "試験　太郎")
        seen = []
        for event in events:
            seen.append(event)
            if event["kind"] == "state":
                break
    steps = [e["step"] for e in seen if e["kind"] == "progress"]
    assert steps and steps == sorted(steps)
    assert seen[0]["kind"] == "hello"
    transport = bench.connect(0)
    try:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
    finally:
        transport.disconnect()
    assert client.switch_persona(0, name="demo")["holder"] == "番号　花子"


def test_faults_by_scenario_and_by_toml(bench: Bench) -> None:
    client = bench.client
    state = client.apply_faults(0, scenario="one-try-left")
    assert state["faults"]["scenario"] == "one-try-left"
    assert credential(state, "jpki_auth")["tries_left"] == 1
    assert client.clear_faults(0)["faults"] is None
    refusal = '[[fault]]\nkind = "status"\nmatch = "00 A4 04"\nnth = 1\nsw = "6A82"\n'
    assert client.apply_faults(0, toml=refusal)["faults"] is not None
    transport = bench.connect(0)
    try:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x6A82
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
    finally:
        transport.disconnect()
    assert client.card(0)["faults"]["fired"] == 1
    assert client.clear_faults(0)["faults"] is None


def test_hold_release_and_revoke(bench: Bench) -> None:
    client = bench.client

    def states(state: dict[str, Any]) -> list[str]:
        return [c["state"] for c in state["certificates"]]

    assert states(client.card(0)) == ["valid", "valid"]
    assert states(client.hold(0, "both")) == ["hold", "hold"]
    assert states(client.release(0, "both")) == ["valid", "valid"]
    revoked = client.revoke(0, "auth", "keyCompromise")
    assert states(revoked) == ["revoked", "valid"]
    assert revoked["certificates"][0]["reason"] == "keyCompromise"
    with pytest.raises(ConsoleError) as again:
        client.hold(0)  # a revoked certificate cannot go on hold
    assert again.value.status in (400, 409) and again.value.field == "tree"
    assert states(client.card(1)) == ["valid", "valid"]  # only this card's certificates


# -- events and the trace ---------------------------------------------------------------------


def test_events_and_the_trace_follow_the_exchanges_in_order(bench: Bench, tmp_path: Path) -> None:
    client = bench.client
    transport = bench.connect(0)
    try:
        with client.events(timeout=20) as events:
            hello = next(events)
            assert hello["kind"] == "hello"
            assert [c["reader"] for c in hello["cards"]] == bench.readers
            for command in (SELECT_JPKI, RETRIES_AUTH, SELECT_CERT):
                transport.transmit(command)
            exchanges = []
            for event in events:
                if event["kind"] == "exchange" and event["reader"] == bench.readers[0]:
                    exchanges.append(event)
                if len(exchanges) == 3:
                    break
    finally:
        transport.disconnect()
    assert [e["meaning"].split(" ")[0] for e in exchanges] == ["SELECT", "VERIFY", "SELECT"]
    assert exchanges[0]["meaning"] == "SELECT 公的個人認証AP"
    seqs = [e["seq"] for e in exchanges]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [e["sw"] for e in exchanges][:2] in (["9000", "63C3"], ["90 00", "63 C3"])
    trace = client.trace(0)
    records = [json.loads(line) for line in trace.splitlines() if line.strip()]
    assert records
    (tmp_path / "reader.trace.jsonl").write_text(trace, encoding="utf-8")
    parsed = read_trace(tmp_path / "reader.trace.jsonl")
    assert len(parsed.items) >= 3


def test_wait_for_sees_a_change_made_meanwhile(bench: Bench) -> None:
    client = bench.client
    timer = threading.Timer(0.5, lambda: bench.controller.set_tries(1, "jpki_sign", 2))
    timer.start()
    try:
        state = client.wait_for(
            1, lambda s: credential(s, "jpki_sign")["tries_left"] == 2, timeout=10
        )
    finally:
        timer.join()
    assert state["reader"] == bench.readers[1]
    assert client.wait_for(1, lambda s: s["inserted"], timeout=5)["inserted"]  # already true


# -- errors -----------------------------------------------------------------------------------


def test_errors_name_the_status_and_the_field(bench: Bench) -> None:
    client = bench.client
    with ConsoleClient(client.base_url, "not-the-token") as wrong:
        with pytest.raises(ConsoleError) as unauthorized:
            wrong.cards()
        assert (unauthorized.value.status, unauthorized.value.field) == (401, "authorization")
        assert bench.server.token not in str(unauthorized.value)
    with pytest.raises(ConsoleError) as missing:
        client.card(99)
    assert (missing.value.status, missing.value.field) == (404, "reader")
    with pytest.raises(ConsoleError) as missing_name:
        client.insert("no such reader")
    assert (missing_name.value.status, missing_name.value.field) == (404, "reader")
    before = client.card(0)
    with pytest.raises(ConsoleError) as tries:
        client.set_tries(0, "jpki", "jpki_auth", 99)
    assert (tries.value.status, tries.value.field) == (400, "tries")
    assert "tries" in str(tries.value) and "HTTP 400" in str(tries.value)
    with pytest.raises(ConsoleError) as typed:
        client.set_tries(0, "jpki", "jpki_auth", "three")  # type: ignore[arg-type]
    assert (typed.value.status, typed.value.field) == (400, "tries")
    with pytest.raises(ConsoleError) as persona:
        client.switch_persona(0, name="nobody")
    assert persona.value.status == 400 and persona.value.field == "persona"
    assert client.card(0)["credentials"] == before["credentials"]  # nothing half-applied


# -- the plugin ---------------------------------------------------------------------------------

KIOSK_TEST = """
from smartcard.System import readers

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


def test_kiosk_sees_the_card_leave(myna_console, myna_console_reader):
    name = myna_console_reader.name
    assert myna_console.card(myna_console_reader.index)["reader"] == name
    connection = next(r for r in readers() if str(r) == name).createConnection()
    connection.connect()
    assert connection.transmit(list(SELECT_JPKI))[1:] == (0x90, 0x00)
    myna_console.set_tries(name, "jpki", "jpki_sign", 4)
    assert [c["tries_left"] for c in myna_console.card(name)["credentials"]
            if c["name"] == "jpki_sign"] == [4]
    myna_console.set_tries(name, "jpki", "jpki_sign", 5)
    print("SERVED", myna_console_reader.served)
"""


def test_the_plugin_drives_a_console_given_by_option_or_environment(
    bench: Bench, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_kiosk=KIOSK_TEST)
    url = bench.server.url
    given = pytester.runpytest_subprocess("-s", "--myna-console", url, "-p", "no:cacheprovider")
    given.assert_outcomes(passed=1)
    given.stdout.fnmatch_lines(["*SERVED False*"])
    monkeypatch.setenv("MYNACARD_CONSOLE", url)
    monkeypatch.setenv("MYNACARD_CONSOLE_READER", bench.readers[1])
    from_env = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    from_env.assert_outcomes(passed=1)
    assert bench.server.token not in from_env.stdout.str() + from_env.stderr.str()
    monkeypatch.setenv("MYNACARD_CONSOLE", url.replace(bench.server.token, "wrong"))
    refused = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*HTTP 401*authorization*"])


def test_the_plugin_serves_a_console_when_none_is_given(
    myna_console: ConsoleClient, myna_console_reader: ConsoleReader
) -> None:
    if not myna_console_reader.served:
        pytest.skip("a console URL is given ($MYNACARD_CONSOLE): the plugin serves none")
    assert myna_console_reader.index == 0
    assert "PCSCLITE_CSOCK_NAME" in myna_console_reader.env
    state = myna_console.card(myna_console_reader.name)
    assert (state["holder"], state["inserted"]) == ("番号　花子", True)
    transport = PcscTransport(myna_console_reader.name)
    transport.connect()
    try:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
        myna_console.remove(0)
        with pytest.raises(PcscTransportError):
            transport.transmit(SELECT_JPKI)
    finally:
        transport.disconnect()
    assert myna_console.insert(0)["inserted"]
    assert myna_console.cards()["pki"] is True
