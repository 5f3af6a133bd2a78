"""The conformance runner's cards: personas built as data, written for the trace, no pcscd."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from apdu.vocabulary import resolve_atr
from card_emulator import persona as persona_module
from harness.conformance.catalogue import load_catalogue, load_full_catalogue, select
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


def test_matrix_cards_of_the_next_generation_keep_the_scenario_story(tmp_path: Path) -> None:
    """The next-generation column: a P-384 card of the ``next-generation`` profile, the counter
    preset on its (仮称)認証AP PIN, the certificate dates the scenario's ``on`` table gives."""
    catalogue = load_full_catalogue()
    generation = next(g for g in catalogue.generations if g.name == "next-generation")
    runner = ConformanceRunner("true", tmp_path / "out")
    store = PkiStore.open(tmp_path / "pki")
    chosen = select(catalogue.scenarios, ["one-try-left", "expired-certificate"])
    for scenario in chosen:
        card, path = runner._card(scenario, store, generation)
        assert path == tmp_path / "out" / "personas" / "next-generation" / f"{scenario.name}.toml"
        persona = persona_module.load(path)
        assert persona.profile == "next-generation"
        assert persona.label == f"kiosk-next-generation-{scenario.name}"
        assert card.content.meta["persona_digest"] == persona.digest
        assert isinstance(
            card.content.application("auth").keys[0x0017].private_key, ec.EllipticCurvePrivateKey
        )
        if scenario.name == "one-try-left":
            assert persona.counters == {"jpki_auth": 1}
            assert exchange(card, SELECT_JPKI)[1] == 0x9000
            assert exchange(card, "00200098")[1] == 0x63C1
        else:
            assert str(persona.certificates.auth_not_after) == "2026-06-30"
        assert scenario.card_on(generation).atr == resolve_atr("classic")
