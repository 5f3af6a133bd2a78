"""Decoded JSON Lines traces: names, state across records, masking, pretty-print, replay."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from apdu import TraceRecord, builders
from card_emulator import Card
from harness.commands import trace as trace_cli
from harness.faults import FaultyCard, Scenario, traced
from harness.personas import demo_persona_path
from harness.traces.decoder import Decoder
from harness.traces.replay import replay
from harness.traces.trace_file import Exchange, TraceWriter, read_trace

JPKI = bytes.fromhex("D392F000260100000001")
TEXT = bytes.fromhex("D3921000310001010408")


def _kiosk_flow(card: object) -> None:
    send: Callable[[bytes], bytes] = card.transmit  # type: ignore[attr-defined]
    send(builders.select_aid(TEXT).to_bytes())
    send(builders.select_aid(JPKI).to_bytes())
    send(builders.select_ef(0x000A).to_bytes())
    send(builders.read_binary(0x000F, 16).to_bytes())  # the random serial number: differs
    send(builders.select_ef(0x0018).to_bytes())
    send(builders.verify(sfi=None).to_bytes())
    send(builders.verify(b"1234").to_bytes())
    send(builders.read_binary_sfi(0x0B, 0, 4).to_bytes())
    card.reset()  # type: ignore[attr-defined]
    send(builders.select_aid(JPKI).to_bytes())
    send(builders.verify(b"0000", sfi=0x18).to_bytes())


def record(path: Path, persona: Path | None = None) -> Path:
    with TraceWriter(path, persona=persona) as recorder:
        card = Card.from_persona(persona) if persona else Card.from_persona(demo_persona_path())
        _kiosk_flow(traced(card, recorder))
    return path


def test_decoder_names_as_the_spec_does() -> None:
    decoder = Decoder()
    assert decoder.command(builders.select_aid(TEXT).to_bytes()) == "SELECT 券面事項入力補助AP"
    decoder.command(builders.select_aid(JPKI).to_bytes())
    assert (
        decoder.command(builders.verify(b"1234", sfi=0x18).to_bytes())
        == "VERIFY 利用者証明用暗証番号 (JPKI 0018)"
    )
    decoder.command(builders.select_ef(0x000A).to_bytes(), b"\x90\x00")
    assert (
        decoder.command(builders.read_binary(0x0100).to_bytes())
        == "READ BINARY 000A 利用者証明用電子証明書 @0x0100"
    )
    # a failed SELECT does not change the current EF
    decoder.command(builders.select_ef(0x0001).to_bytes(), b"\x6a\x82")
    assert decoder.command(builders.read_binary(0).to_bytes()).startswith("READ BINARY 000A")


def test_trace_lines_are_decoded_and_masked(tmp_path: Path) -> None:
    path = record(tmp_path / "t.jsonl")
    text = path.read_text(encoding="utf-8")
    assert "31 32 33 34" not in text and "30 30 30 30" not in text
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows[0]["type"] == "header"
    assert rows[0]["version"] == 2
    commands = [r for r in rows if r["type"] == "exchange"]
    assert len(commands) == 10
    assert [r["seq"] for r in commands] == list(range(1, 11))
    assert all(isinstance(r["t"], float) and r["duration_ms"] >= 0 for r in commands)
    meanings = [r["meaning"] for r in commands]
    assert meanings[:4] == [
        "SELECT 券面事項入力補助AP",
        "SELECT 公的個人認証AP",
        "SELECT EF 000A 利用者証明用電子証明書",
        "READ BINARY 000A 利用者証明用電子証明書 @0x000F",
    ]
    assert meanings[5] == "VERIFY 利用者証明用暗証番号 (JPKI 0018) (retries query)"
    assert meanings[6] == "VERIFY 利用者証明用暗証番号 (JPKI 0018)"
    assert commands[6]["command"] == "00 20 00 80 04 XX XX XX XX"
    assert commands[6]["response"] == "90 00" and commands[6]["sw"] == "9000"
    assert meanings[7] == "READ BINARY 000B 利用者証明用CA証明書 @0x0000"
    assert [r["event"] for r in rows if r["type"] == "event"] == ["reset"]
    assert rows[-3]["type"] == "event"  # after the 8th exchange, in order


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mynacard")
    trace_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_pretty_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = record(tmp_path / "t.jsonl")
    assert _cli(["trace", str(path)]) == 0
    out = capsys.readouterr().out
    assert ">> 00 20 00 80 04 XX XX XX XX  # VERIFY 利用者証明用暗証番号 (JPKI 0018)" in out
    assert "-- reset" in out and "<< 90 00" in out


def test_replay_against_the_same_card_matches(tmp_path: Path) -> None:
    path = record(tmp_path / "t.jsonl", demo_persona_path())
    trace = read_trace(path)
    secrets = Card.from_persona(demo_persona_path())
    assert replay(trace, Card.from_persona(demo_persona_path()), secrets=secrets) == []


def test_replay_reports_a_different_pin(
    tmp_path: Path,
    myna_persona: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = record(tmp_path / "t.jsonl", demo_persona_path())
    other = myna_persona(pins={"jpki_auth": "5678"})
    assert _cli(["trace", str(path), "--replay", "--persona", str(other)]) == 1
    out = capsys.readouterr().out
    assert "VERIFY 利用者証明用暗証番号 (JPKI 0018): recorded 90 00, replayed 63 C2" in out
    # the certificate differs too (another persona, another key), and the later wrong VERIFY
    # finds one try fewer
    assert "#10 VERIFY 利用者証明用暗証番号 (JPKI 0018): recorded 63 C2, replayed 63 C1" in out
    assert out.splitlines()[-1].endswith(": 3 difference(s)")
    argv = ["trace", str(path), "--replay", "--sw-only", "--persona", str(other)]
    assert _cli(argv) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith(": 2 difference(s)")
    assert _cli(["trace", str(path), "--replay", "--persona", str(demo_persona_path())]) == 0


def test_replay_with_a_fault_scenario_reports_it(tmp_path: Path) -> None:
    path = record(tmp_path / "t.jsonl", demo_persona_path())
    scenario = Scenario.from_mapping(
        {"fault": [{"kind": "status", "match": "00 B0", "nth": 1, "sw": "6281"}]}
    )
    card = FaultyCard(Card.from_persona(demo_persona_path()), scenario)
    diffs = replay(read_trace(path), card, secrets=Card.from_persona(demo_persona_path()))
    assert [d.meaning for d in diffs] == ["READ BINARY 000A 利用者証明用電子証明書 @0x000F"]
    assert diffs[0].actual == "62 81"


def test_one_writer_decodes_each_reader_on_its_own(tmp_path: Path) -> None:
    """Interleaved readers (as ``mynacard serve --trace`` writes them) keep their own state."""
    select_jpki = builders.select_aid(JPKI).to_bytes()
    select_text = builders.select_aid(TEXT).to_bytes()
    read = builders.read_binary(0).to_bytes()
    with TraceWriter(tmp_path / "serve.jsonl", append=True) as writer:
        writer(TraceRecord.card_event("insert", reader="A"))
        writer(TraceRecord(1.0, select_jpki, b"\x90\x00", 0.001, reader="A"))
        writer(TraceRecord(1.1, select_text, b"\x90\x00", 0.001, reader="B"))
        writer(TraceRecord(1.2, builders.select_ef(0x000A).to_bytes(), b"\x90\x00", reader="A"))
        writer(TraceRecord(1.3, read, b"\x6a\x82", reader="A"))
        writer(TraceRecord.card_event("remove", reader="B"))
    trace = read_trace(tmp_path / "serve.jsonl")
    assert [(e.reader, e.meaning) for e in trace.exchanges] == [
        ("A", "SELECT 公的個人認証AP"),
        ("B", "SELECT 券面事項入力補助AP"),
        ("A", "SELECT EF 000A 利用者証明用電子証明書"),
        ("A", "READ BINARY 000A 利用者証明用電子証明書 @0x0000"),
    ]
    events = [(i.reader, i.event) for i in trace.items if not isinstance(i, Exchange)]
    assert events == [("A", "insert"), ("B", "remove")]
