"""The console's control engine: snapshots, actions, events, thread safety, no secrets.

In process first (cards driven through their proxies, no pcscd), then through a CardServer and
a stand-in vpcd on a TCP socket (the server path without pcscd), then with a real private pcscd
and a pyscard client.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from apdu import CommandApdu, builders
from apdu.vocabulary import CREDENTIALS, Jpki
from card_emulator import Card, CounterError
from card_emulator import persona as persona_module
from card_emulator.image import StorageError
from card_emulator.mynumber import check_digit
from card_emulator.objects import Credential
from card_emulator.personalize import personalize
from harness.card_server import Endpoint
from harness.console import CardController, ControlError, ControlledCard, Event
from harness.console.control import SWITCH_STEPS
from harness.default_pki import personalize_shared, pki_store
from harness.faults import CardRemovedError, Scenario
from harness.personas import demo_persona_path, merge, persona_data
from jpki.pki_store import PkiStore
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport, PcscTransportError

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
SELECT_TEXT = builders.select_aid(bytes.fromhex("D3921000310001010408")).to_bytes()
SELECT_KENMEN = builders.select_aid(bytes.fromhex("D3921000310001010402")).to_bytes()
SELECT_COMMON = builders.select_aid(bytes.fromhex("D3921000310001010100")).to_bytes()
VERIFY_AUTH = builders.verify(b"1234", sfi=0x18).to_bytes()
RETRIES_AUTH = builders.verify(None, sfi=0x18).to_bytes()

#: The demo persona's secrets (vectors/personas/demo.toml): PINs, password, 照合番号 A and B,
#: the 生年月日 key, the セキュリティコード, and the PIN a test changes to.
SECRETS = [
    b"1234",
    b"ABC123",
    b"314159265352",
    b"55021720352285",
    b"550217",
    b"2285",
    b"5678",
]
OTHER_NAME = "試験　太郎"
OTHER_NUMBER = "98765432101" + str(check_digit("98765432101"))


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def other_persona() -> dict[str, Any]:
    """The demo persona's tables with another label, holder name and 個人番号."""
    return merge(
        persona_data(),
        {"label": "other", "holder": {"name": OTHER_NAME, "my_number": OTHER_NUMBER}},
    )


@pytest.fixture(scope="module")
def memory_pki() -> PkiStore:
    """A PKI of this module only: revoking here touches no other test's certificates."""
    return PkiStore.in_memory()


def fresh_card(pki: PkiStore, card_type: type[Card] = Card) -> Card:
    """A demo card with certificates of its own, issued and recorded by ``pki``."""
    return card_type(personalize(persona_module.load(demo_persona_path()), store=pki))


@pytest.fixture
def controller(memory_pki: PkiStore) -> Iterator[CardController]:
    """Two demo cards in process, readers "A" and "B", certificates in ``memory_pki``."""
    with CardController(
        [("A", fresh_card(memory_pki)), ("B", personalize_card())], pki=memory_pki
    ) as made:
        yield made


def personalize_card() -> Card:
    """A demo card of the shared test PKI (never revoked by these tests)."""
    return Card(personalize_shared(persona_module.load(demo_persona_path())))


def snapshot_json(controller: CardController) -> list[dict[str, Any]]:
    return [state.to_json() for state in controller.snapshot()]


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_names_each_reader_its_card_and_counters(controller: CardController) -> None:
    first, second = controller.snapshot()
    assert (first.index, first.reader, second.reader) == (0, "A", "B")
    assert first.inserted and first.powered
    assert (first.persona, first.holder) == ("demo", "番号　花子")
    assert first.application is None and first.verified == ()
    assert first.atr == "3B E0 00 FF 81 31 FE 45 14"
    names = {c.name for c in first.credentials if c.name is not None}
    assert names == set(CREDENTIALS)
    auth = first.credential("jpki_auth")
    assert (auth.tries_left, auth.max_tries, auth.blocked, auth.fid) == (3, 3, False, 0x18)
    assert first.credential("jpki_sign").max_tries == 5
    assert [(c.tree, c.state) for c in first.certificates] == [("auth", "valid"), ("sign", "valid")]
    assert first.faults is None
    # the second card's certificates were issued by the shared PKI, not the attached one
    assert [c.state for c in second.certificates] == ["unrecorded", "unrecorded"]
    as_json = first.to_json()
    assert as_json["application_label"] is None
    assert as_json["credentials"][1]["fid"] == "0018"
    json.dumps([s.to_json() for s in (first, second)])  # JSON-ready


def test_snapshot_follows_the_selected_application_and_verified_credentials(
    controller: CardController,
) -> None:
    card = controller.card("A")
    assert sw(card.transmit(SELECT_JPKI)) == 0x9000
    assert sw(card.transmit(VERIFY_AUTH)) == 0x9000
    state = controller.state("A")
    assert (state.application, state.verified) == ("jpki", ("jpki_auth",))
    assert state.to_json()["application_label"] == "公的個人認証AP"
    assert controller.state(1).application is None  # the other reader is untouched


def test_glitch_and_reset_lose_the_volatile_state(controller: CardController) -> None:
    card = controller.card("A")
    for action in (controller.glitch, controller.reset):
        card.transmit(SELECT_JPKI)
        card.transmit(VERIFY_AUTH)
        assert controller.state("A").verified == ("jpki_auth",)
        state = action("A")
        assert (state.application, state.verified, state.powered) == (None, (), True)
        assert state.credential("jpki_auth").tries_left == 3  # counters are not volatile
        # the host is not told: its next command finds the card at the ISD
        assert sw(card.transmit(builders.select_ef(0x000A).to_bytes())) != 0x9000


# -- the reader ------------------------------------------------------------------------------


def test_remove_and_insert_in_process(controller: CardController) -> None:
    card = controller.card("A")
    card.transmit(SELECT_JPKI)
    with controller.subscribe() as events:
        state = controller.remove("A")
        assert not state.inserted and not state.powered
        with pytest.raises(CardRemovedError):
            card.transmit(SELECT_JPKI)
        assert controller.remove("A") == controller.state("A")  # already out: nothing happens
        with pytest.raises(ControlError) as refused:
            controller.glitch("A")
        assert refused.value.field == "reader"
        state = controller.insert("A")
        assert state.inserted and state.powered and state.application is None
        assert sw(card.transmit(SELECT_JPKI)) == 0x9000
        seen = [(e.kind, e.body.get("event") or e.body.get("action")) for e in events.drain()]
    assert seen == [
        ("card", "remove"),
        ("state", "remove"),
        ("card", "insert"),
        ("card", "power_on"),
        ("state", "insert"),
        ("exchange", None),
    ]


def test_a_removal_fault_takes_the_card_out_in_process(controller: CardController) -> None:
    controller.apply_faults("A", {"fault": [{"kind": "remove", "nth": 1}]})
    card = controller.card("A")
    assert sw(card.transmit(SELECT_JPKI)) == 0x9000  # the answer arrives, then the card is out
    assert not controller.state("A").inserted
    with pytest.raises(CardRemovedError):
        card.transmit(SELECT_JPKI)
    assert controller.insert("A").inserted
    assert sw(card.transmit(SELECT_JPKI)) == 0x9000


# -- counters --------------------------------------------------------------------------------


def test_set_tries_blocks_and_refills(controller: CardController) -> None:
    card = controller.card("A")
    state = controller.set_tries("A", "jpki_auth", 0)
    assert state.credential("jpki_auth").blocked
    card.transmit(SELECT_JPKI)
    assert sw(card.transmit(VERIFY_AUTH)) == 0x6984  # reference data blocked
    assert sw(card.transmit(RETRIES_AUTH)) == 0x63C0
    state = controller.set_tries("A", "jpki_auth", 3)
    assert not state.credential("jpki_auth").blocked
    assert sw(card.transmit(VERIFY_AUTH)) == 0x9000
    controller.set_tries("A", "jpki_sign", 1)
    assert sw(card.transmit(builders.verify(None, sfi=0x1B).to_bytes())) == 0x63C1
    assert controller.state("B").credential("jpki_sign").tries_left == 5


def test_set_tries_is_written_to_the_card_image(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    card = Card.from_persona(demo_persona_path(), image)
    with CardController([("A", card)]) as controller:
        controller.set_tries("A", "text_pin", 1)
        controller.card("A").close()
    with Card.open(image) as reopened:
        assert reopened.credential("text", 0x11).remaining == 1


class _BrokenStore:
    def save_credential(self, app: str, credential: Credential) -> None:
        raise StorageError("disk full")

    def close(self) -> None:
        pass


def test_card_set_tries_refuses_bad_values_and_keeps_memory_as_stored() -> None:
    card = personalize_card()
    for bad in (-1, 4, True, 1.0):
        with pytest.raises(CounterError, match="0-3"):
            card.set_tries("jpki", 0x18, bad)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        card.set_tries("jpki", 0x77, 1)
    assert card.set_tries("jpki", 0x18, 2).remaining == 2
    broken = Card(personalize_shared(persona_module.load(demo_persona_path())), _BrokenStore())
    with pytest.raises(StorageError):
        broken.set_tries("jpki", 0x18, 0)
    assert broken.credential("jpki", 0x18).remaining == 3  # not stored, so not changed


# -- bad input -------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, tuple[Any, ...], str, str]] = [
    ("insert", ("nope",), "reader", "no reader 'nope'"),
    ("insert", (7,), "reader", "no reader 7"),
    ("remove", (True,), "reader", "expected a reader name or index"),
    ("set_tries", ("A", "jpki_pin", 1), "credential", "unknown credential 'jpki_pin'"),
    ("set_tries", ("A", "jpki_auth", 4), "tries", "0-3"),
    ("set_tries", ("A", "jpki_sign", -1), "tries", "0-5"),
    ("set_tries", ("A", "jpki_auth", "2"), "tries", "got '2'"),
    ("set_tries", ("A", "jpki_auth", True), "tries", "got True"),
    ("switch_persona", ("A", {"label": "x"}), "persona", "holder"),
    (
        "switch_persona",
        ("A", merge(persona_data(), {"holder": {"my_number": "314159265353"}})),
        "persona",
        "holder.my_number: check digit should be 2, not 3",
    ),
    ("switch_persona", ("A", "/nonexistent/persona.toml"), "persona", "cannot read persona"),
    ("switch_persona", ("A", 42), "persona", "expected a persona file"),
    ("apply_faults", ("A", {"fault": [{"kind": "bogus"}]}), "scenario", "fault[0].kind"),
    ("apply_faults", ("A", {"counters": {"jpki_auth": 9}}), "scenario", "counters.jpki_auth"),
    ("apply_faults", ("A", "no-such-scenario"), "scenario", "neither a kiosk scenario"),
    ("apply_faults", ("A", "revoked-certificate"), "scenario", "changes the persona"),
    ("apply_faults", ("A", ""), "scenario", "empty"),
    ("apply_faults", ("A", 3.5), "scenario", "expected a scenario"),
    ("revoke", ("A", "neither"), "tree", "expected auth, sign or both"),
    ("revoke", ("A", "both", "certificateHold"), "reason", "set with 'hold'"),
    ("revoke", ("A", "auth", "lost"), "reason", "unknown revocation reason"),
    ("release", ("A", "auth"), "tree", "not on hold"),
    ("release", ("B", "auth"), "pki", "no record of this card's auth certificate"),
    ("subscribe", (0,), "maxsize", "1-"),
]


@pytest.mark.parametrize(
    ("action", "args", "field", "message"),
    BAD_INPUTS,
    ids=[f"{a}-{f}" for a, _, f, _ in BAD_INPUTS],
)
def test_bad_input_names_the_field_and_changes_nothing(
    controller: CardController, action: str, args: tuple[Any, ...], field: str, message: str
) -> None:
    controller.card("A").transmit(SELECT_JPKI)
    before = snapshot_json(controller)
    with controller.subscribe() as events:
        with pytest.raises(ControlError) as refused:
            getattr(controller, action)(*args)
        assert events.drain() == []  # no state event
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert message in str(refused.value)
    assert snapshot_json(controller) == before


def test_certificate_actions_need_a_pki() -> None:
    with CardController([("A", personalize_card())]) as controller:
        assert [c.state for c in controller.state("A").certificates] == [None, None]
        with pytest.raises(ControlError) as refused:
            controller.hold("A")
    assert refused.value.field == "pki"


# -- persona switch --------------------------------------------------------------------------


def test_switch_persona_puts_a_new_card_in_the_reader(
    controller: CardController, tmp_path: Path
) -> None:
    before = controller.state("A")
    controller.apply_faults("A", "slow-card")
    controller.set_tries("A", "jpki_auth", 1)
    old = controller.card("A").card
    with controller.subscribe() as events:
        state = controller.switch_persona("A", other_persona())
        seen = events.drain()
    assert (state.persona, state.holder) == ("other", OTHER_NAME)
    assert state.inserted and state.faults is None
    assert state.credential("jpki_auth").tries_left == 3
    assert {c.serial for c in state.certificates}.isdisjoint(c.serial for c in before.certificates)
    assert [c.state for c in state.certificates] == ["valid", "valid"]  # the attached PKI's
    assert controller.card("A").card is not old
    assert [
        (e.kind, e.body.get("event") or e.body.get("step") or e.body.get("action")) for e in seen
    ] == [
        ("progress", 1),
        ("progress", 2),
        ("progress", 3),
        ("card", "remove"),
        ("progress", 4),
        ("card", "insert"),
        ("card", "power_on"),
        ("progress", 5),
        ("state", "switch_persona"),
    ]
    progress = [e.body for e in seen if e.kind == "progress"]
    assert [p["label"] for p in progress] == list(SWITCH_STEPS)
    assert {(p["action"], p["steps"], p["reader"]) for p in progress} == {
        ("switch_persona", 5, "A")
    }
    assert seen[-1].body["detail"] == {"persona": "other"}
    # a persona file works too, and a removed card stays removed
    controller.remove("A")
    path = tmp_path / "demo.toml"
    path.write_bytes(demo_persona_path().read_bytes())
    state = controller.switch_persona("A", path)
    assert (state.holder, state.inserted) == ("番号　花子", False)


# -- faults ----------------------------------------------------------------------------------


def test_faults_fire_and_clear(controller: CardController) -> None:
    card = controller.card("A")
    state = controller.apply_faults(
        "A", {"name": "flaky", "fault": [{"kind": "status", "match": "00 A4 04", "sw": "6581"}]}
    )
    assert state.faults is not None and state.faults.scenario == "flaky"
    assert state.faults.faults == ("status @ 00 A4 04",)
    assert sw(card.transmit(SELECT_JPKI)) == 0x6581
    faults = controller.state("A").faults
    assert faults is not None and faults.fired == 1
    assert controller.clear_faults("A").faults is None
    assert sw(card.transmit(SELECT_JPKI)) == 0x9000


def test_a_catalogue_scenario_presets_counters_and_atr(controller: CardController) -> None:
    state = controller.apply_faults("A", "pin-locked")
    assert state.faults is not None and state.faults.scenario == "pin-locked"
    assert state.credential("jpki_auth").blocked
    state = controller.apply_faults("A", "unusual-atr")  # replaces the scenario before
    assert state.faults is not None and state.faults.scenario == "unusual-atr"
    assert state.atr != "3B E0 00 FF 81 31 FE 45 14"
    state = controller.clear_faults("A")
    assert state.atr == "3B E0 00 FF 81 31 FE 45 14"
    assert state.credential("jpki_auth").blocked  # presets stay
    toml = '[[fault]]\nkind = "latency"\nseconds = 0.01\n'
    faults = controller.apply_faults("A", toml).faults
    assert faults is not None and faults.faults == ("latency",)
    given = Scenario.from_mapping({"fault": [{"kind": "extended"}]}, "as object")
    faults = controller.apply_faults("A", given).faults
    assert faults is not None and faults.scenario == "as object"


# -- certificates ----------------------------------------------------------------------------


def test_hold_release_and_revoke_change_only_this_cards_certificates(
    controller: CardController, memory_pki: PkiStore
) -> None:
    other = fresh_card(memory_pki)  # the same persona label, another card
    with CardController([("other", other)], pki=memory_pki) as bystander:
        state = controller.hold("A", "auth")
        states = [(c.tree, c.state) for c in state.certificates]
        assert states == [("auth", "hold"), ("sign", "valid")]
        assert controller.release("A").certificates[0].state == "valid"
        state = controller.revoke("A", "both", "記載内容変更")
        assert [(c.state, c.reason) for c in state.certificates] == [
            ("revoked", "affiliationChanged"),
            ("revoked", "affiliationChanged"),
        ]
        assert [c.state for c in bystander.state("other").certificates] == ["valid", "valid"]
    before = snapshot_json(controller)
    with pytest.raises(ControlError, match="already revoked") as refused:
        controller.hold("A", "sign")
    assert refused.value.field == "tree"
    assert snapshot_json(controller) == before


# -- events ----------------------------------------------------------------------------------


def test_events_are_decoded_masked_and_timed(controller: CardController) -> None:
    with controller.subscribe() as events:
        card = controller.card("A")
        card.transmit(SELECT_JPKI)
        card.transmit(VERIFY_AUTH)
        card.transmit(builders.select_ef(0x000A).to_bytes())
        card.transmit(builders.read_binary(0, 4).to_bytes())
        controller.card("B").transmit(SELECT_TEXT)
        controller.set_tries("A", "jpki_sign", 4)
        seen = events.drain()
    exchanges = [e.to_json() for e in seen if e.kind == "exchange"]
    assert [(x["reader"], x["meaning"]) for x in exchanges] == [
        ("A", "SELECT 公的個人認証AP"),
        ("A", "VERIFY 利用者証明用暗証番号 (JPKI 0018)"),
        ("A", "SELECT EF 000A 利用者証明用電子証明書"),
        ("A", "READ BINARY 000A 利用者証明用電子証明書 @0x0000"),
        ("B", "SELECT 券面事項入力補助AP"),
    ]
    assert exchanges[1]["command"] == "00 20 00 98 04 XX XX XX XX"
    assert all(isinstance(x["duration_ms"], float) for x in exchanges)
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    state = seen[-1].to_json()
    assert (state["kind"], state["action"], state["reader"]) == ("state", "set_tries", "A")
    assert state["detail"] == {"credential": "jpki_sign", "tries": 4}
    assert state["state"]["credentials"][2]["tries_left"] == 4


def test_a_slow_subscriber_loses_the_oldest_events_and_never_blocks_the_card(
    controller: CardController,
) -> None:
    slow = controller.subscribe(maxsize=5)
    waiting = controller.subscribe(maxsize=5)
    got: list[Event | None] = []
    reader = threading.Thread(target=lambda: got.append(waiting.get(timeout=10)))
    reader.start()
    card = controller.card("A")
    card.transmit(SELECT_JPKI)
    reader.join(timeout=10)
    assert got and got[0] is not None and got[0].seq == 1  # a waiting get() wakes up
    start = time.perf_counter()
    for _ in range(199):
        card.transmit(SELECT_JPKI)
    elapsed = time.perf_counter() - start
    assert elapsed < 5
    assert slow.dropped == 195
    kept = slow.drain()
    assert [e.seq for e in kept] == list(range(196, 201))
    assert waiting.dropped == 194 and len(waiting.drain()) == 5
    slow.close()
    assert slow.get(timeout=0) is None
    controller.card("A").transmit(SELECT_JPKI)
    assert slow.drain() == []  # closed: nothing more arrives


# -- thread safety ---------------------------------------------------------------------------


class WatchedCard(Card):
    """A card that notes when two threads are inside it at once (its methods linger a bit)."""

    overlaps = 0

    def _watch(self, method: str, *args: Any) -> Any:
        probe = self.__dict__.setdefault("_probe", threading.Lock())
        inside = probe.acquire(blocking=False)
        if not inside:
            type(self).overlaps += 1
        try:
            time.sleep(0.0002)
            return getattr(super(), method)(*args)
        finally:
            if inside:
                probe.release()

    def transmit(self, command: bytes) -> bytes:
        return self._watch("transmit", command)  # type: ignore[no-any-return]

    def set_tries(self, application: str, fid: int, tries: int) -> Credential:
        return self._watch("set_tries", application, fid, tries)  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._watch("reset")

    def power_on(self) -> None:
        self._watch("power_on")

    def power_off(self) -> None:
        self._watch("power_off")


def _hammer(transmit: Any, stop: threading.Event, answers: list[int]) -> None:
    while not stop.is_set():
        for command in (SELECT_JPKI, VERIFY_AUTH, RETRIES_AUTH):
            answers.append(sw(transmit(command)))


def test_actions_and_apdus_never_meet_inside_the_card(memory_pki: PkiStore) -> None:
    card = fresh_card(memory_pki, WatchedCard)
    answers: list[int] = []
    with CardController([("A", card)], pki=memory_pki) as controller:
        stop = threading.Event()
        hammer = threading.Thread(
            target=_hammer, args=(controller.card("A").transmit, stop, answers)
        )
        WatchedCard.overlaps = 0
        hammer.start()
        try:
            for round_ in range(30):
                controller.set_tries("A", "jpki_auth", 3 - round_ % 2)
                controller.glitch("A")
                controller.reset("A")
                controller.snapshot()
        finally:
            stop.set()
            hammer.join(timeout=10)
        assert WatchedCard.overlaps == 0
        assert answers and 0x6F00 not in answers
    # the same calls without the proxy's lock do meet: the check above can fail
    stop = threading.Event()
    hammer = threading.Thread(target=_hammer, args=(card.transmit, stop, answers))
    hammer.start()
    try:
        for _ in range(30):
            card.set_tries("jpki", 0x18, 3)
            card.reset()
    finally:
        stop.set()
        hammer.join(timeout=10)
    assert WatchedCard.overlaps > 0


# -- secrets ---------------------------------------------------------------------------------


def _forms(secret: bytes) -> list[str]:
    return [secret.decode(), secret.hex(), secret.hex().upper(), secret.hex(" ").upper()]


_VARYING = {"t", "duration_ms", "since", "not_after", "serial"}  # clocks and random serials


def _without_varying(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_varying(v) for k, v in value.items() if k not in _VARYING}
    if isinstance(value, list):
        return [_without_varying(v) for v in value]
    return value


def _assert_no_secret(documents: list[dict[str, Any]], what: str) -> None:
    cleaned = _without_varying(documents)
    for text in (json.dumps(cleaned, ensure_ascii=False), json.dumps(cleaned)):
        for secret in SECRETS:
            for form in _forms(secret):
                assert form not in text, f"{what} contains {secret!r} as {form!r}"


def _secret_commands() -> list[bytes]:
    """Every demo secret, right and wrong, in VERIFY / CHANGE forms, on every application."""
    new = b"5678"
    commands: list[CommandApdu | bytes] = [
        SELECT_JPKI,
        builders.verify(b"1234", sfi=0x18),
        builders.verify(b"ABC123", sfi=0x1B),
        builders.verify(b"abc123", sfi=0x1B),
        builders.select_ef(0x18),
        builders.verify(b"1234"),
        builders.change_reference_data(new),
        builders.verify(new),
        SELECT_TEXT,
        builders.verify(b"1234", sfi=0x11),
        builders.verify(b"314159265352", sfi=0x14),
        builders.verify(b"55021720352285", sfi=0x15),
        SELECT_KENMEN,
        builders.verify(b"550217", sfi=0x11),
        builders.verify(b"55021720352285", sfi=0x12),
        builders.verify(b"314159265352", sfi=0x13),
        SELECT_COMMON,
        builders.select_ef(0x1C),
        builders.verify(b"1234"),
        builders.change_key(new),
        bytes.fromhex("0020009805") + b"12345",  # malformed
    ]
    return [c if isinstance(c, bytes) else c.to_bytes() for c in commands]


def test_snapshots_and_events_never_hold_a_secret(memory_pki: PkiStore) -> None:
    with CardController([("demo", fresh_card(memory_pki))], pki=memory_pki) as controller:
        events = controller.subscribe(maxsize=10_000)
        card = controller.card("demo")
        answers = [card.transmit(command) for command in _secret_commands()]
        assert sw(answers[1]) == sw(answers[2]) == 0x9000  # the secrets were right
        documents = [controller.state("demo").to_json()]  # verified, selected, mid-session
        for name, place in CREDENTIALS.items():
            controller.set_tries("demo", name, place.max_tries - 1)
        controller.glitch("demo")
        controller.reset("demo")
        controller.apply_faults("demo", "one-try-left")
        controller.clear_faults("demo")
        controller.hold("demo", "both")
        controller.release("demo", "both")
        controller.remove("demo")
        controller.insert("demo")
        controller.switch_persona("demo", persona_data())  # tables holding every PIN
        card.transmit(SELECT_JPKI)
        card.transmit(VERIFY_AUTH)
        bad = merge(persona_data(), {"pins": {"jpki_auth": "99999"}})
        with pytest.raises(ControlError) as refused:
            controller.switch_persona("demo", bad)
        assert "99999" not in str(refused.value)
        documents += [state.to_json() for state in controller.snapshot()]
        seen = events.drain()
    assert {e.kind for e in seen} == {"exchange", "card", "state", "progress"}
    assert len([e for e in seen if e.kind == "exchange"]) == len(_secret_commands()) + 2
    _assert_no_secret(documents, "snapshot")
    _assert_no_secret([e.to_json() for e in seen], "events")


# -- through a CardServer and a stand-in vpcd (no pcscd) -------------------------------------


class StandInVpcd:
    """vpcd's side of the socket: accepts the card's connection and sends it frames."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connection: socket.socket | None = None

    def accept(self) -> None:
        self.listener.settimeout(10)
        self.connection, _ = self.listener.accept()
        self.connection.settimeout(10)

    def _send(self, payload: bytes) -> None:
        assert self.connection is not None
        self.connection.sendall(struct.pack(">H", len(payload)) + payload)

    def power_on(self) -> None:
        self._send(b"\x01")

    def exchange(self, command: bytes) -> bytes:
        self._send(command)
        assert self.connection is not None
        (size,) = struct.unpack(">H", self._read(2))
        return self._read(size)

    def _read(self, size: int) -> bytes:
        assert self.connection is not None
        data = b""
        while len(data) < size:
            chunk = self.connection.recv(size - len(data))
            if not chunk:
                raise EOFError("the card closed the connection")
            data += chunk
        return data

    def card_left(self) -> bool:
        """The card closed its connection (it was removed)."""
        assert self.connection is not None
        return self.connection.recv(1) == b""

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.listener.close()


def test_the_controller_over_a_card_server(memory_pki: PkiStore) -> None:
    vpcd = StandInVpcd()
    name = "Stand-in Reader 00 00"
    try:
        controller = CardController.serve(
            [("demo", fresh_card(memory_pki))],
            pki=memory_pki,
            endpoints=[Endpoint("127.0.0.1", vpcd.port, name)],
            min_out=0.0,  # no pcscd to notice the removal
        )
        with controller:
            assert controller.readers == [name]
            events = controller.subscribe()
            vpcd.accept()
            vpcd.power_on()
            assert sw(vpcd.exchange(SELECT_JPKI)) == 0x9000
            assert controller.state(name).application == "jpki"
            controller.set_tries(name, "jpki_auth", 0)
            assert sw(vpcd.exchange(VERIFY_AUTH)) == 0x6984
            controller.remove(name)
            assert vpcd.card_left()
            assert not controller.state(name).inserted
            controller.insert(name)
            vpcd.accept()
            assert controller.state(name).inserted
            controller.switch_persona(name, other_persona())
            assert vpcd.card_left()
            vpcd.accept()
            assert controller.state(name).holder == OTHER_NAME
            assert sw(vpcd.exchange(SELECT_JPKI)) == 0x9000
            time.sleep(0.1)  # the last records come from the serving thread
            seen = events.drain()
    finally:
        vpcd.close()

    def of(kind: str, key: str) -> list[str]:
        return [e.body[key] for e in seen if e.kind == kind]

    # the client reports insertions on its own thread: only the order within a kind is fixed
    assert of("card", "event") == ["power_on", "remove", "insert", "remove", "insert"]
    assert of("state", "action") == ["set_tries", "remove", "insert", "switch_persona"]
    assert of("exchange", "meaning") == [
        "SELECT 公的個人認証AP",
        "VERIFY 利用者証明用暗証番号 (JPKI 0018)",
        "SELECT 公的個人認証AP",
    ]
    assert {e.reader for e in seen} == {name}


def test_for_server_wants_controlled_cards() -> None:
    class Server:
        def __init__(self) -> None:
            self.served = [type("Served", (), {"label": "x", "card": object(), "client": None})]
            self.on_exchange = None

    with pytest.raises(TypeError, match="ControlledCard"):
        CardController.for_server(Server())  # type: ignore[arg-type]
    assert isinstance(CardController.controlled([("x", personalize_card())])[0][1], ControlledCard)


# -- with a real pcscd -----------------------------------------------------------------------


def _auth_certificate(reader: str) -> bytes:
    with PcscTransport(reader) as transport:
        client = MynaClient(transport)
        client.select_jpki()
        return client.certificate(Jpki.EF_AUTH_CERT).public_bytes(Encoding.DER)


def _answers(reader: str, *commands: bytes) -> list[int]:
    with PcscTransport(reader) as transport:
        return [sw(transport.transmit(command)) for command in commands]


def test_the_console_drives_cards_a_pcsc_client_sees(myna_pcscd: Any) -> None:
    readers = myna_pcscd.readers[:2]
    a, b = (reader.name for reader in readers)
    controller = CardController.serve(
        [("a", personalize_card()), ("b", personalize_card())],
        pki=pki_store(),
        endpoints=[Endpoint(r.host, r.port, r.name, r.netns) for r in readers],
    )
    with controller:
        events = controller.subscribe(maxsize=10_000)
        for name in (a, b):
            myna_pcscd.wait_for_card(name, timeout=10)
        original = _auth_certificate(a)
        state = controller.state(a)
        assert (state.reader, state.holder) == (a, "番号　花子")
        assert [c.state for c in state.certificates] == ["valid", "valid"]

        controller.remove(a)
        myna_pcscd.wait_for_card(a, present=False, timeout=10)
        with pytest.raises(PcscTransportError):
            PcscTransport(a).connect()
        assert not controller.state(a).inserted
        controller.insert(a)
        myna_pcscd.wait_for_card(a, timeout=10)
        assert _auth_certificate(a) == original

        controller.set_tries(a, "jpki_auth", 0)
        assert _answers(a, SELECT_JPKI, VERIFY_AUTH, RETRIES_AUTH) == [0x9000, 0x6984, 0x63C0]
        assert controller.state(a).credential("jpki_auth").blocked
        controller.set_tries(a, "jpki_auth", 3)
        assert _answers(a, SELECT_JPKI, VERIFY_AUTH) == [0x9000, 0x9000]

        controller.switch_persona(a, other_persona())
        myna_pcscd.wait_for_card(a, timeout=10)
        assert controller.state(a).holder == OTHER_NAME
        switched = _auth_certificate(a)
        assert switched != original

        controller.apply_faults(
            b, {"fault": [{"kind": "status", "match": "00 A4 04", "nth": 1, "sw": "6A82"}]}
        )
        assert _answers(b, SELECT_JPKI, SELECT_JPKI) == [0x6A82, 0x9000]
        faults = controller.state(b).faults
        assert faults is not None and faults.fired == 1

        before = controller.state(b).credentials
        with pytest.raises(ControlError) as refused:
            controller.set_tries(b, "jpki_auth", 7)
        assert refused.value.field == "tries"
        assert controller.state(b).credentials == before

        time.sleep(0.2)  # the last records come from the serving threads
        seen = events.drain()
    assert events.dropped == 0
    by_reader = {e.reader for e in seen}
    assert by_reader == {a, b}
    meanings = [e.body.get("meaning") for e in seen if e.kind == "exchange" and e.reader == a]
    assert "VERIFY 利用者証明用暗証番号 (JPKI 0018)" in meanings
    plugged = [e.body["event"] for e in seen if e.kind == "card" and e.reader == a]
    assert [name for name in plugged if name in ("insert", "remove")][:2] == ["remove", "insert"]
    assert "power_on" in plugged  # pcscd powers the card up
    actions = [e.body["action"] for e in seen if e.kind == "state"]
    assert actions == [
        "remove",
        "insert",
        "set_tries",
        "set_tries",
        "switch_persona",
        "apply_faults",
    ]
    _assert_no_secret([e.to_json() for e in seen], "events over PC/SC")
