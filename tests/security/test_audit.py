"""``mynacard audit``: the demo card's matrix equals the spec's tables; drift is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apdu import CommandApdu
from card_emulator import Card
from harness.audit import cli as audit_cli
from harness.audit.engine import run_audit
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA, ROOT
from tests.security.facts import DEMO_SECRETS, READ, USE, opens

RULES_FILE = Path(__file__).resolve().parents[2] / "card_emulator" / "access_rules.toml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = audit_cli.main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _state_set(label: str) -> set[int]:
    return set() if label == "none" else {int(x, 16) for x in label.split("+")}


def test_demo_matrix_equals_the_declared_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--format", "json")
    report = json.loads(out)
    assert code == 0, report["differences"] + report["problems"]
    apps = {a["name"]: a for a in report["applications"]}
    assert set(apps) == set(READ)
    for name, app in apps.items():
        creds = {c for cond in [*READ[name].values(), *USE[name].values()] if cond for c in cond}
        singles = {f"{c:04X}" for c in creds}
        assert singles <= set(app["states"]), (name, app["states"])
        assert "none" in app["states"]
        for table, facts in (("read", READ[name]), ("use", USE[name])):
            assert {int(f, 16) for f in app[table]} == set(facts), (name, table)
            for fid_text, row in app[table].items():
                rule = facts[int(fid_text, 16)]
                assert set(row) == set(app["states"])
                for state, sw in row.items():
                    want = "9000" if opens(rule, _state_set(state)) else "6982"
                    assert sw == want, f"{name} {table} {fid_text} under {state}: {sw}"
    # every pair of credentials of the text and kenmen APs is probed
    assert {"0011+0014", "0011+0015", "0014+0015"} <= set(apps["text"]["states"])
    assert {"0011+0012", "0011+0013", "0012+0013"} <= set(apps["kenmen"]["states"])
    before = {(c["application"], c["fid"]): c["sw"] for c in report["counters_before"]}
    after = {(c["application"], c["fid"]): c["sw"] for c in report["counters_after"]}
    assert before == after
    assert before[("text", "0012")] == "63C0"  # blocked at issue, reported, never verified
    assert before[("jpki", "001B")] == "63C5"


def test_altered_persona_rule_is_detected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    persona = tmp_path / "altered.toml"
    persona.write_text(
        DEMO_PERSONA.read_text(encoding="utf-8") + '\n[access.text.read]\n"0002" = ["0011"]\n',
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "--persona", str(persona))
    assert code == 1
    assert "DIFFERENCE: text read 0002 under 0015: expected open (declared rules)" in out
    assert "6982!" in out  # the cell is marked in the matrix
    assert "DOES NOT match" in out


def test_altered_rules_file_is_detected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    same = tmp_path / "same.toml"
    same.write_text(RULES_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    code, _, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--rules", str(same))
    assert code == 0
    altered = tmp_path / "altered.toml"
    altered.write_text(
        RULES_FILE.read_text(encoding="utf-8").replace(
            '"0005" = ["0013"]', '"0005" = ["0012", "0013"]'
        ),
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--rules", str(altered))
    assert code == 1
    assert "kenmen read 0005 under 0012: expected open (declared rules), card answered 6982" in out


def test_every_format_renders_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("text", "markdown", "html", "json"):
        code, out, err = _run(capsys, "--persona", str(DEMO_PERSONA), "--format", fmt)
        assert code == 0, out
        assert "0011+0014" in out
        for secret in DEMO_SECRETS[1:]:  # "1234" is checked with the traces (test_no_secrets)
            assert secret.decode() not in out + err
            assert secret.hex() not in (out + err).lower().replace(" ", "")
    _, out, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--format", "html")
    assert out.startswith("<!DOCTYPE html>")


def test_wrong_supplied_credential_costs_one_try_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    creds = tmp_path / "creds.toml"
    creds.write_text('text_pin = "9876"\n', encoding="utf-8")
    code, out, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--credentials", str(creds))
    assert code == 1
    assert "text 0011: supplied credential rejected (SW 63C2); not tried again" in out
    assert "text 0011 text_pin (券面事項入力補助用暗証番号): 3 tries left -> 2 tries left" in out
    assert "9876" not in out


def test_bad_credentials_file_and_missing_reader_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    creds = tmp_path / "creds.toml"
    creds.write_text('no_such_pin = "SECRET99"\n', encoding="utf-8")
    code, _, err = _run(capsys, "--persona", str(DEMO_PERSONA), "--credentials", str(creds))
    assert code == 2
    assert "unknown credential" in err
    assert "SECRET99" not in err
    # in a child process: libpcsclite fixes its pcscd socket at the first PC/SC call
    done = subprocess.run(
        [sys.executable, "-m", "harness.audit.cli", "audit", "--reader", "No Such Reader 00 00"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.sock")},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mynacard audit:")


@pytest.mark.pcsc
def test_audit_over_pcsc_reader_matches_and_is_non_destructive(tmp_path: Path) -> None:
    creds = tmp_path / "creds.toml"
    creds.write_text('jpki_auth = "1234"\ntext_check_b = "55021720352285"\n', encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.security.pcsc_audit_helper",
            str(DEMO_PERSONA),
            str(creds),
            "--format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    if done.returncode == 77:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    states = {a["name"]: a["states"] for a in report["applications"]}
    assert states["jpki"] == ["none", "0018"]
    assert states["text"] == ["none", "0015"]
    assert report["counters_before"] == report["counters_after"]
    assert "31 32 33 34" not in done.stdout and "ABC123" not in done.stdout


class _Recorder:
    def __init__(self, card: Card) -> None:
        self.inner = InProcessTransport(card)
        self.commands: list[CommandApdu] = []

    def transmit(self, command: bytes) -> bytes:
        self.commands.append(CommandApdu.parse(command))
        return self.inner.transmit(command)


def _verifies(rec: _Recorder) -> list[bytes]:
    return [c.data for c in rec.commands if c.ins == 0x20]


def test_real_card_mode_sends_only_empty_or_supplied_verifies() -> None:
    card = Card.from_persona(DEMO_PERSONA)
    rec = _Recorder(card)
    supplied = {("jpki", 0x18): b"1234", ("kenmen", 0x13): b"314159265352"}
    report = run_audit(rec, credentials=supplied, source="reader-like")
    assert report.ok, [d.text() for d in report.differences] + report.problems
    assert {d for d in _verifies(rec) if d} == {b"1234", b"314159265352"}
    jpki = next(m for m in report.applications if m.name == "jpki")
    assert [s.label for s in jpki.states] == ["none", "0018"]
    for app in card.content.applications:
        for c in app.credentials.values():
            assert c.remaining == c.max_tries or c.fid == 0x12


def test_one_try_left_is_never_verified_without_allow_destructive(tmp_path: Path) -> None:
    persona = tmp_path / "low.toml"
    persona.write_text(
        DEMO_PERSONA.read_text(encoding="utf-8") + "\n[counters]\njpki_auth = 1\n",
        encoding="utf-8",
    )
    card = Card.from_persona(persona)
    rec = _Recorder(card)
    report = run_audit(rec, credentials={("jpki", 0x18): b"0000"})  # wrong: must not be sent
    assert b"0000" not in _verifies(rec)
    assert any("one try left" in n for n in report.notes)
    assert card.credential("jpki", 0x18).remaining == 1


def test_allow_destructive_makes_one_wrong_attempt_and_restores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "--persona", str(DEMO_PERSONA), "--allow-destructive")
    assert code == 0, out
    assert "jpki 0018: one wrong attempt made (then the right one)" in out
    assert "jpki 0018 jpki_auth (利用者証明用暗証番号): 3 tries left -> 3 tries left" in out


def test_smartphone_token_selects_the_overlay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    persona = tmp_path / "phone.toml"
    persona.write_text(
        DEMO_PERSONA.read_text(encoding="utf-8").replace(
            'token = "JPKIAPICCTOKEN2"', 'token = "JPKIAPGPSETOKEN"'
        ),
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "--persona", str(persona), "--format", "json")
    report = json.loads(out)
    assert code == 0, report["differences"]
    assert report["overlays"] == ["smartphone"]
    jpki = next(a for a in report["applications"] if a["name"] == "jpki")
    assert jpki["read"]["000A"] == {"none": "6982", "0018": "9000", "001B": "6982"} | {
        "0018+001B": "9000"
    }
