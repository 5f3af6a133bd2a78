"""The conformance runner's cards: personas built as data, written for the trace, no pcscd."""

from __future__ import annotations

from pathlib import Path

from card_emulator import persona as persona_module
from harness.conformance.catalogue import load_catalogue, select
from harness.conformance.runner import ConformanceRunner
from jpki.pki_store import PkiStore
from tests.conftest import exchange

SELECT_JPKI = "00A4040C0AD392F000260100000001"


def test_scenario_cards_match_the_persona_files_beside_their_traces(tmp_path: Path) -> None:
    runner = ConformanceRunner("true", tmp_path / "out")
    (tmp_path / "out" / "personas").mkdir(parents=True)
    store = PkiStore.open(tmp_path / "pki")
    for scenario in select(load_catalogue(), ["one-try-left", "revoked-certificate"]):
        card, path = runner._card(scenario, store)
        persona = persona_module.load(path)
        assert persona.label == f"kiosk-{scenario.name}"
        assert card.content.meta["persona_digest"] == persona.digest
        if scenario.name == "one-try-left":
            assert persona.counters == {"jpki_auth": 1}
            assert exchange(card, SELECT_JPKI)[1] == 0x9000
            assert exchange(card, "00200098")[1] == 0x63C1
        else:
            assert persona.certificates.auth_state == "revoked"
