"""The security state on its own, and the handlers' independence from the chip."""

from __future__ import annotations

import ast
from pathlib import Path

from card_emulator import Card
from card_emulator.access import AccessRules
from card_emulator.objects import Application
from card_emulator.security_state import NO_RULES, SecurityState, SmSession

COMMANDS = Path(__file__).resolve().parents[2] / "card_emulator" / "commands"
DEMO = Path(__file__).resolve().parents[2] / "vectors" / "personas" / "demo.toml"


def _state(*, reselect_clears_state: bool = True) -> tuple[SecurityState, Application, Application]:
    jpki, text = Application("jpki", b"\x01", "JPKI-AP"), Application("text", b"\x02", "text AP")
    rules = {"jpki": AccessRules(), "text": AccessRules()}
    return SecurityState(rules, reselect_clears_state=reselect_clears_state), jpki, text


def test_selecting_an_application_forgets_credentials_and_session() -> None:
    state, jpki, text = _state()
    state.select_application(jpki)
    state.select_file(0x18)
    state.mark_verified(0x18)
    state.open_session(b"k" * 16)
    state.select_file(0x1A)  # an EF inside the AP keeps them
    assert state.verified == {0x18}
    assert state.sm is not None
    state.select_application(text)
    assert (state.app, state.ef, set(state.verified)) == (text, None, set())
    assert state.sm is None
    assert state.ap_was_selected


def test_reselecting_the_same_application_follows_the_policy() -> None:
    state, jpki, _ = _state(reselect_clears_state=False)
    state.select_application(jpki)
    state.mark_verified(0x18)
    state.select_application(jpki)
    assert state.verified == {0x18}
    state, jpki, _ = _state(reselect_clears_state=True)
    state.select_application(jpki)
    state.mark_verified(0x18)
    state.select_application(jpki)
    assert not state.verified


def test_reset_returns_to_the_issuer_security_domain() -> None:
    state, jpki, _ = _state()
    verified = state.verified
    state.select_application(jpki)
    state.mark_verified(0x18)
    state.forget(0x18)
    state.mark_verified(0x19)
    state.reset()
    assert (state.app, state.rules, state.ef, state.sm, state.ap_was_selected) == (
        None,
        NO_RULES,
        None,
        None,
        False,
    )
    assert state.verified is verified and not verified


def test_sm_session_counts_and_breaks_without_showing_its_key() -> None:
    session = SmSession(b"secret-key-bytes")
    assert session.advance() == 1
    assert session.counter == 2
    session.destroy()
    assert session.broken
    assert "secret" not in repr(session)


def test_chip_exposes_its_state_read_only() -> None:
    card = Card.from_persona(DEMO)
    chip = card._chip
    assert card.transmit(bytes.fromhex("00A4040C0AD392F000260100000001")) == b"\x90\x00"
    assert chip.app is not None and chip.app.name == "jpki"
    assert chip.ap_was_selected and chip.ef is None and chip.sm is None
    assert not chip.verified and not chip.storage_failed
    card.reset()
    assert chip.app is None


def test_handlers_do_not_know_the_chip() -> None:
    for module in COMMANDS.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "card_emulator.chip", module.name
                assert "Chip" not in {alias.name for alias in node.names}, module.name
