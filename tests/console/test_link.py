"""The link between a card's process and its console process, both ends in this process.

A :class:`CardController` in process (cards driven through their proxies) forwards to a
:class:`CardLink`; a :class:`RemoteController` on the other end of a socket pair is what the
console's app would call. What crosses is checked: states, actions and refusals come back as
themselves, exchanges arrive decoded and masked, no secret ever crosses, and the card's end
never unpickles what the console's end sends.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apdu import TraceRecord, builders
from apdu.vocabulary import Jpki
from harness.console import CardController, ControlError
from harness.console import link as link_module
from harness.console.link import PICKLE_FRAME, CardLink, exchange_item, record_of, send_frame
from harness.console.remote import Coalesced, RemoteController
from jpki.pki_store import PkiStore
from tests.console.test_control import SECRETS, _forms, fresh_card, personalize_card

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
VERIFY_AUTH = builders.verify(b"1234", sfi=0x18).to_bytes()


@pytest.fixture(scope="module")
def memory_pki() -> PkiStore:
    return PkiStore.in_memory()


class Linked:
    """A controller, its link, and the remote stand-in on the other end."""

    def __init__(self, controller: CardController) -> None:
        self.controller = controller
        card_end, console_end = socket.socketpair()
        self.link = CardLink(controller, card_end, batch=0.01).start()
        self.remote = RemoteController(
            console_end, readers=controller.readers, has_pki=controller.has_pki
        ).start()
        self.remote.open()

    def transmit(self, reader: str, command: bytes) -> bytes:
        return self.controller.card(reader).transmit(command)

    def close(self) -> None:
        self.link.close()
        self.remote.close()
        self.controller.close()


@pytest.fixture
def linked(memory_pki: PkiStore) -> Iterator[Linked]:
    made = Linked(
        CardController([("A", fresh_card(memory_pki)), ("B", personalize_card())], pki=memory_pki)
    )
    yield made
    made.close()


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every frame body the card's end sends, recorded."""
    sent: list[bytes] = []
    real = link_module.send_frame

    def record(sock: socket.socket, kind: bytes, body: bytes) -> None:
        sent.append(kind + body)
        real(sock, kind, body)

    monkeypatch.setattr(link_module, "send_frame", record)
    return sent


def test_states_cross_as_themselves(linked: Linked) -> None:
    assert linked.remote.readers == ["A", "B"] and linked.remote.has_pki
    assert linked.remote.snapshot() == linked.controller.snapshot()
    assert linked.remote.state("B") == linked.controller.state("B")
    assert linked.remote.state(1).reader == "B"
    found = linked.remote.credential("A", "jpki", "0018")
    assert found == linked.controller.credential("A", "jpki", "0018")


def test_actions_change_the_card_and_refusals_keep_field_and_kind(linked: Linked) -> None:
    state = linked.remote.set_tries("A", "jpki_auth", 1)
    assert state.credential("jpki_auth").tries_left == 1
    assert linked.controller.state("A").credential("jpki_auth").tries_left == 1
    state = linked.remote.set_tries("A", ("jpki", 0x0018), 3)  # crosses as a list
    assert state.credential("jpki_auth").tries_left == 3
    with pytest.raises(ControlError) as bad:
        linked.remote.set_tries("A", "jpki_auth", 99)
    assert (bad.value.field, bad.value.kind) == ("tries", "invalid")
    with pytest.raises(ControlError) as unknown:
        linked.remote.state("nowhere")
    assert (unknown.value.field, unknown.value.kind) == ("reader", "not_found")
    assert linked.controller.state("A").credential("jpki_auth").tries_left == 3  # unchanged
    removed = linked.remote.remove("A")
    assert not removed.inserted and not linked.controller.state("A").inserted
    assert linked.remote.insert("A").inserted


def test_an_action_s_state_event_crosses_in_its_reply_s_frame_as_json(
    linked: Linked, frames: list[bytes]
) -> None:
    with linked.remote.subscribe() as events:
        before = len(frames)
        state = linked.remote.set_tries("A", "jpki_auth", 2)
        event = events.get(timeout=5)
    assert event is not None and event.kind == "state"
    assert event.body["action"] == "set_tries" and event.body["state"] == state.to_json()
    ours = [pickle.loads(frame[1:]) for frame in frames[before:] if frame[:1] == PICKLE_FRAME]
    with_reply = [items for items in ours if any(item[0] == "r" for item in items)]
    assert len(with_reply) == 1 and [item[0] for item in with_reply[0]] == ["e", "r"]


def test_exchanges_arrive_decoded_and_masked_and_no_secret_crosses(
    linked: Linked, frames: list[bytes]
) -> None:
    with linked.remote.subscribe() as events:
        assert linked.transmit("A", SELECT_JPKI)[-2:] == b"\x90\x00"
        assert linked.transmit("A", VERIFY_AUTH)[-2:] == b"\x90\x00"
        for command in (builders.select_ef(Jpki.EF_AUTH_CERT), builders.read_binary(0, 16)):
            linked.transmit("A", command.to_bytes())
        trace = linked.remote.trace("A")  # waits for every exchange before it to cross
        seen: list[Any] = []
        deadline = time.monotonic() + 5
        while len([e for e in seen if e.kind == "exchange"]) < 4 and time.monotonic() < deadline:
            event = events.get(timeout=0.5)
            if event is not None:
                seen.append(event)
    exchanges = [e.body for e in seen if e.kind == "exchange"]
    assert [e["command"][:11] for e in exchanges] == [
        "00 A4 04 0C",
        "00 20 00 98",
        "00 A4 02 0C",
        "00 B0 00 00",
    ]
    assert exchanges[1]["command"].endswith("XX XX XX XX")
    assert exchanges[1]["meaning"].startswith("VERIFY")
    assert exchanges[3]["response"] == "(16 bytes) 90 00"
    assert "XX XX XX XX" in trace and "VERIFY" in trace
    crossed = b"".join(frames)
    assert crossed, "nothing crossed the link"
    for secret in SECRETS:
        assert secret not in crossed
        for form in _forms(secret):
            assert form.encode() not in crossed, form


def test_a_crossing_exchange_keeps_its_shape_without_its_secrets() -> None:
    record = TraceRecord(1.5, VERIFY_AUTH, bytes.fromhex("0102039000"), 0.001, reader="A")
    item = exchange_item(record)
    assert b"1234" not in pickle.dumps(item)
    back = record_of(item)
    assert back.command_text() == record.command_text()
    assert (back.sw, len(back.response), back.reader, back.timestamp) == (0x9000, 5, "A", 1.5)
    event = record_of(exchange_item(TraceRecord.card_event("reset", reader="B", timestamp=2.0)))
    assert (event.event, event.reader, event.timestamp) == ("reset", "B", 2.0)


_UNPICKLED: list[str] = []


class _Tripwire:
    """Whoever unpickles this records it."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_UNPICKLED.append, ("unpickled",))


def test_the_card_end_refuses_a_pickle_and_runs_only_named_calls(linked: Linked) -> None:
    with pytest.raises(ControlError) as unknown:
        linked.remote._call("close")  # a controller method, but not a call of the link
    assert unknown.value.field == "method"
    sock = linked.remote._sock
    with linked.remote._send_lock:
        send_frame(sock, PICKLE_FRAME, pickle.dumps(_Tripwire()))
    assert linked.link.ended.wait(5)
    assert _UNPICKLED == []
    assert linked.controller.state("A").inserted  # the card is unaffected


def test_when_the_card_end_goes_pending_and_later_calls_are_refused(linked: Linked) -> None:
    linked.link.close()
    assert linked.remote.ended.wait(5)
    with pytest.raises(ControlError) as gone:
        linked.remote.snapshot()
    assert (gone.value.field, gone.value.kind) == ("reader", "conflict")
    assert linked.transmit("A", SELECT_JPKI)[-2:] == b"\x90\x00"  # the card serves on


def test_coalesced_calls_share_one_run_started_after_each_question() -> None:
    runs: list[float] = []
    gate = threading.Event()

    def run() -> float:
        began = time.monotonic()
        runs.append(began)
        gate.wait(0.2)
        return began

    shared = Coalesced(run, name="test-coalesced")
    asked: dict[int, float] = {}
    answers: dict[int, float] = {}

    def ask(index: int) -> None:
        asked[index] = time.monotonic()
        answers[index] = shared()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(answers) == 20
    assert len(runs) <= 3, runs  # one under way, then one for everyone who asked meanwhile
    assert all(answers[i] >= asked[i] - 0.001 for i in answers)
