"""``mynacard fingerprint diff`` and ``adopt``: one policy choice changed is named exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.fingerprint import profile
from harness.fingerprint.adopt import derive, fragment
from harness.fingerprint.diff import compare
from harness.personas import card_from_persona
from tests.fingerprint.conftest import fingerprint

APS = ("common", "jpki", "juki", "kenmen", "text")


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(profile.dumps(data), encoding="utf-8")
    return path


def test_unknown_ins_sw_changed_is_named_exactly(
    demo_profile: dict[str, Any], myna_persona: Any, tmp_path: Path, capsys: Any
) -> None:
    persona = myna_persona(policy={"unknown_ins_sw": "6E00"})
    out = tmp_path / "b.json"
    assert main(["fingerprint", "--persona", str(persona), "--out", str(out)]) == 0
    a = _write(tmp_path / "a.json", demo_profile)
    capsys.readouterr()
    assert main(["fingerprint", "diff", str(a), str(out)]) == 1
    text = capsys.readouterr().out
    assert "jpki/ins/02: sw 6D00 → 6E00" in text
    report = compare(demo_profile, profile.load(out))
    paths = {(d.path, d.field) for d in report.differences}
    expected = {
        (f"{scope}/ins/{ins}", "sw")
        for scope in ("mf", *APS)
        for ins in ("02", "3A", "7A", "B8", "EC")
    }
    assert paths == expected
    assert all((d.a, d.b) == ("6D00", "6E00") for d in report.differences)
    # timing is in b.json (no --no-timing) and ignored unless asked for
    assert main(["fingerprint", "diff", str(out), str(out), "--timing"]) == 0


def test_select_returns_fci_false_is_named_exactly(demo_profile: dict[str, Any]) -> None:
    changed = fingerprint(card_from_persona(None, policy={"select_returns_fci": False}))
    report = compare(demo_profile, changed)
    assert {(d.path, d.field) for d in report.differences} == {
        (f"{ap}/select/aid/p2=00", "fci") for ap in APS
    }
    assert all(d.b is None for d in report.differences)
    assert "jpki/select/aid/p2=00: fci 6F[12]{84=D392F000260100000001} → absent" in report.render()
    tables = derive(changed)
    assert tables["policy"] == {"select_returns_fci": False}


def test_diff_formats_and_equal(demo_profile: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    a = _write(tmp_path / "a.json", demo_profile)
    other = json.loads(json.dumps(demo_profile))
    other["probes"]["jpki"]["select/000A/p2=0C"]["sw"] = "6A82"
    other["tool"] = "9.9.9"
    b = _write(tmp_path / "b.json", other)
    assert main(["fingerprint", "diff", str(a), str(a)]) == 0
    assert "no behaviour differs" in capsys.readouterr().out
    assert main(["fingerprint", "diff", str(a), str(b), "--format", "markdown"]) == 1
    md = capsys.readouterr().out
    assert "| `jpki/select/000A/p2=0C` | sw | 9000 | 6A82 |" in md
    assert "different tool versions" in md
    assert main(["fingerprint", "diff", str(a), str(b), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["differences"] == [
        {"path": "jpki/select/000A/p2=0C", "field": "sw", "a": "9000", "b": "6A82"}
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "a profile is a JSON object"),
        ('{"schema": 7}', "field schema: expected 1"),
        ('{"schema": 1, "tool": "x", "atr": "3B", "complete": true}', "field probes"),
        (
            '{"schema": 1, "tool": "x", "atr": "3B", "complete": true, "probes": {"jpki": 3}}',
            "field probes.jpki",
        ),
    ],
)
def test_diff_bad_input_names_file_and_field(
    content: str, message: str, demo_profile: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    a = _write(tmp_path / "a.json", demo_profile)
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    assert main(["fingerprint", "diff", str(a), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err
    assert main(["fingerprint", "diff", str(a), str(tmp_path / "missing.json")]) == 2


def test_adopt_reproduces_a_policy_change(tmp_path: Path, capsys: Any) -> None:
    changed = fingerprint(card_from_persona(None, policy={"unknown_ins_sw": "6E00"}))
    path = _write(tmp_path / "changed.json", changed)
    assert main(["fingerprint", "adopt", str(path)]) == 0
    out = capsys.readouterr().out
    assert '[policy]\nunknown_ins_sw = "6E00"' in out
    assert 'atr = "classic"' in out
    assert "every observation is reproduced" in out


def test_adopt_lists_what_it_cannot_express(demo_profile: dict[str, Any]) -> None:
    other = json.loads(json.dumps(demo_profile))
    other["probes"]["jpki"]["ef/0008"]["size"] = 4
    other["probes"]["jpki"]["verify/0018/current"]["sw"] = "63C2"
    other["probes"]["jpki"]["verify/0018/p2=80|fid"]["sw"] = "63C2"
    text = fragment(other)
    assert "[counters]\njpki_auth = 2" in text
    assert "#   jpki/ef/0008: size 3 → 4" in text
    assert "verify/0018" not in text.split("cannot express")[1]
