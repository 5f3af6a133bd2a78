"""The fidelity document: generated from its table, checked against the code, examples that work."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from card_emulator import Card, PersonaError
from harness import cli
from harness.commands.fidelity import Behaviour, FidelityError, check, load, markdown
from tests.conftest import DEMO_PERSONA, ROOT, exchange

DOC = ROOT / "docs" / "fidelity.md"


def test_the_committed_document_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fidelity", "--check", str(DOC)]) == 0
    assert DOC.read_text(encoding="utf-8") == markdown()


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "fidelity.md"
    stale.write_text("old\n", encoding="utf-8")
    assert cli.main(["fidelity", "--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().out
    assert cli.main(["fidelity", "--write", str(stale)]) == 0
    assert cli.main(["fidelity", "--check", str(stale)]) == 0


def test_every_grade_is_known_and_every_choice_overridable() -> None:
    behaviours, sources = load()
    assert {b.grade for b in behaviours} == {"observed", "client", "choice", "GUESS"}
    assert all(b.override for b in behaviours if b.grade in ("choice", "GUESS"))
    assert {"myna-card", "OpenSC", "pyjpki"} <= set(sources)
    ids = {b.id for b in behaviours}
    assert {
        "reselect",
        "sm-protocol",
        "sm-errors",
        "mf-get-data",
        "set-session-key-elsewhere",
    } <= ids


def _first(behaviours: list[Behaviour], grade: str) -> int:
    return next(i for i, b in enumerate(behaviours) if b.grade == grade)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("policy.no_such_field", "no such policy field"),
        ("access.nowhere", "no such application"),
        ("access.text.read.0099", "no such rule"),
        ("access.text.write.0001", "expected access"),
        ("counters.nobody", "no such credential name"),
        ("card.colour", r"no such \[card\] field"),
    ],
)
def test_overrides_must_exist(override: str, message: str) -> None:
    behaviours, _ = load()
    i = _first(behaviours, "choice")
    broken = [*behaviours]
    broken[i] = replace(broken[i], override=behaviours[i].override + ", " + override)
    with pytest.raises(FidelityError, match=message):
        check(broken)


def test_a_choice_without_override_and_an_ungraded_policy_field_are_refused() -> None:
    behaviours, _ = load()
    i = _first(behaviours, "choice")
    with pytest.raises(FidelityError, match="must say how to override"):
        check([*behaviours[:i], replace(behaviours[i], override=""), *behaviours[i + 1 :]])
    without = [b for b in behaviours if "policy.reselect_clears_state" not in b.override]
    with pytest.raises(FidelityError, match="reselect_clears_state"):
        check(without)


def test_the_documented_persona_example_works(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    persona = tmp_path / "overrides.toml"
    persona.write_text(DEMO_PERSONA.read_text(encoding="utf-8") + "\n" + block.group(1), "utf-8")
    card = Card.from_persona(persona, strict=True)
    assert card.credential("jpki", 0x0010).remaining == 0
    assert exchange(card, "00B0000001")[1] == 0x6A82  # remapped from 6986
    exchange(card, "00A4040C0AD3921000310001010408")
    exchange(card, "00A4020C020011")
    assert exchange(card, "002000800431323334")[1] == 0x9000
    assert exchange(card, "00B0880001")[1] == 0x6982  # access.text.read.0008 = never


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ('[policy.remap]\n"ZZ 6986" = "6A82"', r'policy\.remap\."ZZ 6986"'),
        ('[policy.remap]\n"B0 1234" = "6A82"', r'policy\.remap\."B0 1234"'),
        ('[policy.remap]\n"B0 6986" = "9000"', r'policy\.remap\."B0 6986"'),
        ('[policy.set_session_key_sw]\nmoon = "6982"', r"policy\.set_session_key_sw\.moon"),
        ("[policy]\nselect_returns_fci = 1", r"policy\.select_returns_fci"),
    ],
)
def test_bad_policy_overrides_name_the_field(tmp_path: Path, policy: str, field: str) -> None:
    persona = tmp_path / "bad.toml"
    persona.write_text(DEMO_PERSONA.read_text(encoding="utf-8") + "\n" + policy + "\n", "utf-8")
    with pytest.raises(PersonaError, match=field):
        Card.from_persona(persona)
