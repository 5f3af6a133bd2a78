"""The kiosk scenario catalogue and the kiosk's outcome line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.conformance.catalogue import REASONS, load_catalogue, parse_catalogue, select
from harness.conformance.rules import RULES
from harness.conformance.runner import parse_outcome
from harness.faults import ScenarioError

ISSUE_SCENARIOS = {
    "normal",
    "wrong-then-right",
    "one-try-left",
    "pin-locked",
    "expired-certificate",
    "revoked-certificate",
    "certificate-on-hold",
    "removed-during-signing",
    "slow-card",
    "unusual-atr",
    "smartphone-token",
}

MINIMAL = """
[[scenario]]
name = "x"
expect = "accepted"
outcome_rule = "complete-valid-transaction"
"""


def test_the_built_in_catalogue_has_every_scenario_a_kiosk_must_survive() -> None:
    scenarios = load_catalogue()
    assert {s.name for s in scenarios} == ISSUE_SCENARIOS
    for s in scenarios:
        assert s.outcome_rule in RULES and s.title and s.story
        assert s.expect.reason in ("", *REASONS)
    by_name = {s.name: s for s in scenarios}
    assert by_name["pin-locked"].card.counters == {"jpki_auth": 0}
    assert by_name["one-try-left"].card.counters == {"jpki_auth": 1}
    assert by_name["revoked-certificate"].persona["certificates"]["auth_state"] == "revoked"
    assert by_name["certificate-on-hold"].persona["certificates"]["auth_state"] == "hold"
    assert [f.kind for f in by_name["removed-during-signing"].card.faults] == ["remove"]
    assert by_name["unusual-atr"].card.atr is not None
    assert by_name["smartphone-token"].persona["card"]["token"] == "JPKIAPGPSETOKEN"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1", "no [[scenario]] entries"),
        ("[[scenario]\n", "not valid TOML"),
        (MINIMAL.replace('"accepted"', '"refused:tired"'), "unknown reason 'tired'"),
        (MINIMAL.replace('"accepted"', '"maybe"'), "must start with one of accepted, refused"),
        (MINIMAL.replace('"complete-valid-transaction"', '"be-nice"'), "outcome_rule must be"),
        (MINIMAL + "colour = 1\n", "scenario 'x': unknown field(s) colour"),
        (MINIMAL + MINIMAL, "duplicate scenario name(s) x"),
        (MINIMAL + "[scenario.card]\natr = 'zz'\n", "scenario 'x': card: atr"),
        (MINIMAL + "pins = [1234]\n", "pins must be a list of strings"),
    ],
)
def test_a_bad_catalogue_is_refused_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        parse_catalogue(text, "cat.toml")


def test_select_keeps_catalogue_order_and_names_unknown_scenarios() -> None:
    scenarios = load_catalogue()
    assert [s.name for s in select(scenarios, ["slow-card", "normal"])] == ["normal", "slow-card"]
    assert len(select(scenarios, [])) == len(scenarios)
    with pytest.raises(ScenarioError, match=r"unknown scenario.*nope; known: "):
        select(scenarios, ["nope"])


def test_the_outcome_is_the_last_json_line_of_stdout() -> None:
    stdout = 'hello\n{"outcome": "refused", "reason": "pin-locked"}\n{"outcome": "accepted"}\n'
    assert str(parse_outcome(stdout, 0)) == "accepted"
    assert str(parse_outcome('{"outcome": "refused", "reason": "x"}\nbye\n', 3)) == "refused:x"


def test_no_outcome_line_is_a_crash_and_no_exit_is_a_timeout() -> None:
    crashed = parse_outcome("{not json\n[1]\n", 1, "Traceback …\nValueError: boom\n")
    assert (crashed.outcome, crashed.reported) == ("crashed", False)
    assert "exit status 1: ValueError: boom" in crashed.detail
    assert parse_outcome('{"outcome": "accepted"}', None).outcome == "timeout"


def test_conformance_run_refuses_bad_arguments_clearly(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "harness.cli", "conformance", "run", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    for args, message in (
        (["--kiosk-cmd", "/no/such/kiosk"], "'/no/such/kiosk' is not an executable program"),
        (["--kiosk-cmd", ""], "the kiosk command is empty"),
        (["--kiosk-cmd", "true", "--scenario", "nope"], "unknown scenario(s) nope"),
        (["--kiosk-cmd", "true", "--timeout", "0"], "--timeout must be > 0"),
    ):
        done = run(*args, "--out", str(tmp_path / "out"))
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()  # nothing written on a usage error
