"""FaultyCard in-process: latency, SW override, removal, glitch, truncation, 6700, ATR, counters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apdu import builders
from apdu.vocabulary import KNOWN_ATRS
from card_emulator import Card
from harness.faults import CardRemovedError, FaultyCard, Pattern, Scenario, ScenarioError

JPKI = bytes.fromhex("D392F000260100000001")
SELECT_JPKI = builders.select_aid(JPKI).to_bytes()
VERIFY_AUTH = builders.verify(b"1234", sfi=0x18).to_bytes()
WRONG_AUTH = builders.verify(b"9999", sfi=0x18).to_bytes()
SIGN = builders.compute_signature(bytes(51), key_sfi=0x17).to_bytes()


def faulty(myna_card: Card, **scenario: object) -> FaultyCard:
    return FaultyCard(myna_card, Scenario.from_mapping(scenario))


def test_latency_only_on_matching_commands(myna_card: Card) -> None:
    card = faulty(myna_card, fault=[{"kind": "latency", "match": "80 2A", "seconds": 0.05}])
    t0 = time.perf_counter()
    assert card.transmit(SELECT_JPKI)[-2:] == b"\x90\x00"
    fast = time.perf_counter() - t0
    assert card.transmit(VERIFY_AUTH)[-2:] == b"\x90\x00"
    t0 = time.perf_counter()
    assert card.transmit(SIGN)[-2:] == b"\x90\x00"
    slow = time.perf_counter() - t0
    assert fast < 0.04
    assert 0.05 <= slow < 0.5
    assert card.fired == [(3, "latency")]


def test_latency_jitter_is_reproducible_with_the_seed(myna_card: Card) -> None:
    delays: list[list[float]] = []
    for _ in range(2):
        slept: list[float] = []
        card = FaultyCard(
            myna_card,
            Scenario.from_mapping(
                {"seed": 7, "fault": [{"kind": "latency", "seconds": 1.5, "jitter": 0.5}]}
            ),
            sleep=slept.append,
        )
        for _ in range(3):
            card.transmit(SELECT_JPKI)
        delays.append(slept)
    assert delays[0] == delays[1]
    assert all(1.0 <= d <= 2.0 for d in delays[0]) and len(set(delays[0])) == 3


def test_status_word_override_on_the_nth_matching_command(myna_card: Card) -> None:
    card = faulty(
        myna_card, fault=[{"kind": "status", "match": "00 20 ?? 98", "nth": 2, "sw": "6581"}]
    )
    card.transmit(SELECT_JPKI)
    assert card.transmit(WRONG_AUTH) == b"\x63\xc2"
    assert card.transmit(WRONG_AUTH) == b"\x65\x81"  # the card never saw it
    assert card.transmit(WRONG_AUTH) == b"\x63\xc1"
    assert myna_card.credential("jpki", 0x18).remaining == 1


@pytest.mark.parametrize(
    ("when", "tries_left"),
    [("before-processing", 3), ("after-processing", 2), ("after-answer", 2)],
)
def test_removal_in_process(myna_card: Card, when: str, tries_left: int) -> None:
    card = faulty(myna_card, fault=[{"kind": "remove", "nth": 2, "when": when}])
    card.transmit(SELECT_JPKI)
    if when == "after-answer":
        assert card.transmit(WRONG_AUTH) == b"\x63\xc2"
    else:
        with pytest.raises(CardRemovedError):
            card.transmit(WRONG_AUTH)
    with pytest.raises(CardRemovedError):
        card.transmit(SELECT_JPKI)
    assert myna_card.credential("jpki", 0x18).remaining == tries_left
    card.insert()
    assert card.transmit(SELECT_JPKI)[-2:] == b"\x90\x00"


def test_power_glitch_loses_the_security_state(myna_card: Card) -> None:
    card = faulty(myna_card, fault=[{"kind": "glitch", "match": "80 2A"}])
    events: list[str] = []
    card.on_exchange = lambda record: events.append(record.event) if record.event else None
    card.transmit(SELECT_JPKI)
    assert card.transmit(VERIFY_AUTH) == b"\x90\x00"
    assert card.transmit(SIGN) == b"\x69\x86"  # back at power-on: no AP, nothing verified
    assert events == ["reset"]
    card.transmit(SELECT_JPKI)
    assert card.transmit(builders.verify(sfi=0x18).to_bytes()) == b"\x63\xc3"


def test_truncated_response(myna_card: Card) -> None:
    card = faulty(myna_card, fault=[{"kind": "truncate", "match": "00 B0", "keep": 10}])
    card.transmit(SELECT_JPKI)
    card.transmit(builders.select_ef(0x000A).to_bytes())
    assert len(myna_card.transmit(builders.read_binary(0, 256).to_bytes())) == 258
    assert len(card.transmit(builders.read_binary(0, 256).to_bytes())) == 10


def test_extended_length_refused(myna_card: Card) -> None:
    card = faulty(myna_card, fault=[{"kind": "extended"}])
    card.transmit(SELECT_JPKI)
    card.transmit(builders.select_ef(0x000A).to_bytes())
    extended = bytes.fromhex("00B00000000000")
    assert myna_card.transmit(extended)[-2:] == b"\x90\x00"
    assert card.transmit(extended) == b"\x67\x00"
    assert card.transmit(builders.read_binary(0, 16).to_bytes())[-2:] == b"\x90\x00"


@pytest.mark.parametrize("name", sorted(KNOWN_ATRS))
def test_any_known_atr(myna_card: Card, name: str) -> None:
    assert faulty(myna_card, atr=name).atr == KNOWN_ATRS[name]


def test_scenario_file_with_counters(tmp_path: Path) -> None:
    path = tmp_path / "one-try.toml"
    path.write_text(
        'name = "one try left"\nseed = 3\natr = "jpki2"\n[counters]\njpki_auth = 1\n'
        '[[fault]]\nkind = "latency"\nmatch = "802A"\nseconds = 0.01\n',
        encoding="utf-8",
    )
    scenario = Scenario.load(path)
    assert scenario.name == "one try left" and scenario.faults[0].match == Pattern((0x80, 0x2A))
    card = FaultyCard.for_persona(scenario)
    assert card.atr == KNOWN_ATRS["jpki2"]
    card.transmit(SELECT_JPKI)
    assert card.transmit(builders.verify(sfi=0x18).to_bytes()) == b"\x63\xc1"
    assert card.transmit(WRONG_AUTH) == b"\x63\xc0"
    assert card.transmit(VERIFY_AUTH) == b"\x69\x84"


def test_blocked_counter_preset() -> None:
    card = FaultyCard.for_persona(Scenario.from_mapping({"counters": {"jpki_sign": 0}}))
    card.transmit(SELECT_JPKI)
    assert card.transmit(builders.verify(b"ABC123", sfi=0x1B).to_bytes()) == b"\x69\x84"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"fault": [{"kind": "explode"}]}, r"fault\[0\]\.kind"),
        ({"fault": [{"kind": "status"}]}, "sw: required"),
        ({"fault": [{"kind": "latency", "match": "80 2A 00 00 00"}]}, "at most"),
        ({"fault": [{"kind": "latency", "nth": 0}]}, "nth"),
        ({"fault": [{"kind": "remove", "when": "later"}]}, "later"),
        ({"atr": "nope"}, "atr"),
        ({"counters": {"jpki_auth": 4}}, "0-3"),
        ({"typo": 1}, "typo"),
    ],
)
def test_bad_scenarios_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_mapping(data)
