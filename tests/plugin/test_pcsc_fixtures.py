"""The plugin's PC/SC fixtures: a card in a virtual reader, faults seen by a PC/SC client."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from apdu import builders
from harness.faults import FaultyCard, Scenario
from harness.personas import card_from_persona
from harness.plugin import ServedReader
from readers.host_side.pcsc import PcscTransport, PcscTransportError, Share

SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_W_REMOVED_CARD = 0x80100069
JPKI = builders.select_aid(bytes.fromhex("D392F000260100000001")).to_bytes()

pytestmark = pytest.mark.pcsc


def test_demo_card_in_a_reader(myna_reader: ServedReader) -> None:
    with PcscTransport(myna_reader.name) as transport:
        assert transport.transmit(JPKI) == b"\x90\x00"
    assert myna_reader.exchanges[-1] == (JPKI, b"\x90\x00")
    script = "from smartcard.System import readers; print([str(r) for r in readers()])"
    listed = subprocess.run(
        [sys.executable, "-c", script],
        env=myna_reader.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert myna_reader.name in listed


def test_latency_through_pcsc(myna_serve: Callable[..., ServedReader]) -> None:
    scenario = Scenario.from_mapping(
        {"fault": [{"kind": "latency", "match": "00 A4 04", "seconds": 0.05}]}
    )
    served = myna_serve(FaultyCard(card_from_persona(), scenario))
    with PcscTransport(served.name) as transport:
        t0 = time.perf_counter()
        assert transport.transmit(JPKI) == b"\x90\x00"
        assert time.perf_counter() - t0 >= 0.05


@pytest.mark.parametrize("when", ["after-answer", "after-processing"])
def test_removal_seen_by_the_pcsc_client(
    myna_serve: Callable[..., ServedReader], when: str
) -> None:
    scenario = Scenario.from_mapping(
        {"fault": [{"kind": "remove", "match": "00 20", "nth": 1, "when": when}]}
    )
    card = FaultyCard(card_from_persona(), scenario)
    served = myna_serve(card)
    wrong = builders.verify(b"9999", sfi=0x18).to_bytes()
    codes: list[int] = []
    with PcscTransport(served.name, share=Share.EXCLUSIVE) as transport:
        assert transport.transmit(JPKI) == b"\x90\x00"
        if when == "after-answer":
            assert transport.transmit(wrong) == b"\x63\xc2"
        try:
            transport.transmit(wrong)
        except PcscTransportError as exc:
            codes.append(exc.code)
        else:
            pytest.fail("the removal was not seen")
        with pytest.raises(PcscTransportError) as later:
            time.sleep(1.0)  # pcscd notices the empty slot on its next poll
            transport.transmit(JPKI)
        codes.append(later.value.code)
    assert codes[0] in (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD), hex(codes[0])
    assert codes[1] == SCARD_W_REMOVED_CARD, hex(codes[1])
    assert card.card.credential("jpki", 0x18).remaining == 2  # type: ignore[attr-defined]
