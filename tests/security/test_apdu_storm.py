"""A seeded storm of >= 50,000 real and mutated APDUs against a strict card: no exception."""

from __future__ import annotations

import random

from apdu.status import is_valid
from card_emulator import Card
from harness.faults.apdu_storm import storm
from tests.conftest import DEMO_PERSONA
from tests.security.test_access_fuzz import _key_windows

COUNT = 50_000
FRESH_CARD_EVERY = 5_000  # wrong VERIFYs block the PINs; a fresh card keeps VERIFY paths alive


def test_mutated_apdu_storm_never_raises() -> None:
    windows = _key_windows()
    rng = random.Random(7)
    card = Card.from_persona(DEMO_PERSONA, strict=True)  # internal errors raise, not 6F00
    sws: set[int] = set()
    for n, command in enumerate(storm(20260401)):
        if n == COUNT:
            break
        if n % FRESH_CARD_EVERY == 0:
            card = Card.from_persona(DEMO_PERSONA, strict=True)
        if rng.random() < 0.01:
            rng.choice([card.reset, card.power_on])()
        try:
            response = card.transmit(command)
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"APDU #{n} {command.hex().upper()} raised {exc!r}") from exc
        assert len(response) >= 2, command.hex()
        sw = int.from_bytes(response[-2:], "big")
        assert is_valid(sw), f"#{n} {command.hex().upper()} -> {sw:04X}"
        assert sw != 0x6F00, f"#{n} {command.hex().upper()} -> 6F00"
        sws.add(sw)
        if len(response) > 17:
            data = response[:-2]
            assert not any(data[i : i + 16] in windows for i in range(len(data) - 15)), command
    # the storm reached deep paths, not just the class/length filters
    assert {0x9000, 0x6982, 0x6984, 0x6700, 0x6A86, 0x6E00, 0x6D00} <= sws, sorted(sws)
