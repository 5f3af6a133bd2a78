"""The run stops at the first 6Fxx or transport failure, and says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.faults import FaultyCard, Scenario
from harness.fingerprint import cli as fingerprint_cli
from harness.fingerprint import profile
from harness.fingerprint.plan import build_plan
from harness.fingerprint.runner import Runner
from harness.personas import card_from_persona
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA

NO_DIAGNOSIS = {"fault": [{"kind": "status", "match": "00 B0", "nth": 3, "sw": "6F00"}]}


def _faulty() -> FaultyCard:
    return FaultyCard(card_from_persona(), Scenario.from_mapping(NO_DIAGNOSIS))


def test_stops_at_an_injected_6f00() -> None:
    card = _faulty()
    found = Runner(InProcessTransport(card), card.atr).run(build_plan())
    assert found.stopped is not None and "6F00" in found.stopped
    assert card.commands == found.sent  # the 6F00 was the last command sent
    data = profile.build(found)
    assert data["complete"] is False and "6F00" in data["stopped"]


def test_stops_at_a_removed_card() -> None:
    scenario = Scenario.from_mapping({"fault": [{"kind": "remove", "nth": 5}]})
    card = FaultyCard(card_from_persona(), scenario)
    found = Runner(InProcessTransport(card), card.atr).run(build_plan())
    assert found.stopped is not None and "transport failed" in found.stopped
    assert found.sent == 5  # removed after answering the 5th


def test_cli_exit_1_and_an_incomplete_file_only_with_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setattr(fingerprint_cli.Card, "from_persona", lambda _path: _faulty())
    assert main(["fingerprint", "--persona", str(DEMO_PERSONA)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "stopped after" in captured.err and "6F00" in captured.err
    out = tmp_path / "partial.json"
    assert main(["fingerprint", "--persona", str(DEMO_PERSONA), "--out", str(out)]) == 1
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["complete"] is False and "6F00" in data["stopped"]
    assert "incomplete profile written" in capsys.readouterr().err


def test_needs_a_card(capsys: Any) -> None:
    assert main(["fingerprint"]) == 2
    assert "--reader NAME or --persona FILE" in capsys.readouterr().err


def test_stops_after_a_slow_answer() -> None:
    scenario = Scenario.from_mapping(
        {"fault": [{"kind": "latency", "match": "00 CA", "nth": 2, "seconds": 0.3}]}
    )
    card = FaultyCard(card_from_persona(), scenario)
    found = Runner(InProcessTransport(card), card.atr, timeout=0.2).run(build_plan())
    assert found.stopped is not None and "more than 0.2 s" in found.stopped
    assert card.commands == found.sent
