"""The committed demo profile, what the profile holds and never holds, the plan's allow-list."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography import x509

from apdu import CommandApdu, builders
from harness.cli import main
from harness.fingerprint import profile
from harness.fingerprint.plan import (
    MeasureEf,
    Probe,
    UnsafeCommandError,
    build_plan,
    check_allowed,
)
from harness.fingerprint.runner import Runner
from harness.personas import DEMO, card_from_persona
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA, ROOT

VECTOR = ROOT / "vectors" / "profiles" / "demo.json"
REGENERATE = (
    "mynacard fingerprint --persona vectors/personas/demo.toml --out vectors/profiles/demo.json "
    "--no-timing"
)


def _behaviour(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("tool", profile.TIMING)}


def test_committed_vector_equals_the_code(demo_profile: dict[str, Any]) -> None:
    committed = profile.load(VECTOR)
    assert profile.TIMING not in committed
    assert _behaviour(committed) == _behaviour(demo_profile), f"out of date: run {REGENERATE}"
    text = VECTOR.read_text(encoding="utf-8")
    assert text == profile.dumps(committed), "not in the canonical form (sort_keys, indent 2)"


def test_profile_shape(demo_profile: dict[str, Any]) -> None:
    assert demo_profile["schema"] == profile.SCHEMA
    assert demo_profile["complete"] is True
    assert demo_profile["atr"] == "3BE000FF8131FE4514"
    jpki = demo_profile["probes"]["jpki"]
    assert jpki["select/aid/p2=00"] == {"sw": "9000", "fci": "6F[12]{84=D392F000260100000001}"}
    assert jpki["select/aid/p2=0C"] == {"sw": "9000"}
    assert jpki["verify/0018/current"] == {"sw": "63C3"}
    assert jpki["verify/001B/current"] == {"sw": "63C5"}
    assert jpki["ef/0001"] == {"read": "6982"}  # the signature certificate needs the password
    auth = jpki["ef/000A"]
    assert auth["certificate"]["key_bits"] == 2048
    assert auth["certificate"]["public_key"] == "rsa"
    assert "2.5.29.15" in auth["certificate"]["extensions"]
    assert auth["past_end"] == "6B00"
    assert auth["extended_le"] == {"sw": "9000", "returned": 1}
    assert "size" not in auth  # a certificate's length follows its serial number
    assert jpki["ef/0008"]["size"] == 3
    mf = demo_profile["probes"]["mf"]
    assert mf["get_data/5F51/short"] == {"sw": "9000", "length": 8}
    assert mf["get_data/7F21/short"] == {"sw": "6700"}
    assert mf["select/mf/fresh"] == {"sw": "6A86"}
    assert mf["select/mf/after_ap"] == {"sw": "9000"}


def test_timing_in_its_own_section() -> None:
    card = card_from_persona()
    found = Runner(InProcessTransport(card), card.atr, reset=card.reset).run(build_plan())
    data = profile.build(found)
    assert set(data[profile.TIMING]) >= {"select", "read_binary", "get_data", "verify"}
    assert all(set(v) == {"median_ms", "count"} for v in data[profile.TIMING].values())
    assert sum(v["count"] for v in data[profile.TIMING].values()) == found.sent
    assert "median_ms" not in json.dumps(data["probes"])
    assert profile.TIMING not in profile.build(found, timing=False)


def _secrets() -> dict[str, str]:
    """Every value of the demo persona and card that identifies the holder or the card."""
    holder, card_table, pins = DEMO["holder"], DEMO["card"], DEMO["pins"]
    values = {
        "my_number": holder["my_number"],
        "name": holder["name"],
        "family name": holder["name"].split("　")[0],
        "given name": holder["name"].split("　")[1],
        "address": holder["address"],
        "resident_code": holder["resident_code"],
        "birth date": holder["birth_date"].strftime("%Y%m%d"),
        "serial": card_table["serial"],
        "token": card_table["token"],
        "security code": card_table["security_code"],
        "sign password": pins["jpki_sign"],
    }
    for name, value in list(values.items()):
        values[f"{name} (ASCII hex)"] = value.encode("utf-8").hex().upper()
    for name in ("jpki_auth", "text", "juki"):
        values[f"PIN {name}"] = pins[name]
        values[f"PIN {name} (ASCII hex)"] = pins[name].encode().hex().upper()
    card = card_from_persona()
    for fid in (0x0001, 0x0002, 0x000A, 0x000B):
        der = card.content.application("jpki").files[fid]
        cert = x509.load_der_x509_certificate(der)
        values[f"cert {fid:04X} serial (decimal)"] = str(cert.serial_number)
        values[f"cert {fid:04X} serial (hex)"] = f"{cert.serial_number:X}"
        values[f"cert {fid:04X} head (hex)"] = der[:64].hex().upper()
    for tag, value in card.content.data_objects.items():
        if tag != 0x5F51 and len(value) >= 4:
            values[f"GET DATA {tag:04X} (hex)"] = value.hex().upper()
    return values


@pytest.mark.parametrize("source", ["committed", "fresh"])
def test_no_identifying_value(source: str, demo_profile: dict[str, Any]) -> None:
    text = VECTOR.read_text("utf-8") if source == "committed" else profile.dumps(demo_profile)
    compact = re.sub(r"\s", "", text).upper()
    found = {n: v for n, v in _secrets().items() if v.upper() in compact or v in text}
    assert not found, f"identifying values in the profile: {sorted(found)}"


def test_every_command_is_on_the_allow_list() -> None:
    steps = build_plan()
    probes = [s for s in steps if isinstance(s, Probe)]
    assert {s.command.ins for s in probes} >= {0xA4, 0xB0, 0xCA, 0x20}
    for probe in probes:
        check_allowed(probe.command)
        if probe.command.ins == 0x20:
            assert probe.command.data == b""
    assert any(isinstance(s, MeasureEf) for s in steps)
    keys = [(s.scope, s.key) for s in probes if s.key]
    assert len(keys) == len(set(keys)), "two probes kept under one key"
    for forbidden in (
        builders.verify(b"1234"),
        builders.compute_signature(bytes(51)),
        builders.get_challenge(8),
        builders.change_reference_data(b"9999"),
        CommandApdu(0x00, 0xD6, 0x00, 0x00, b"\x00"),  # UPDATE BINARY
        CommandApdu(0x00, 0x02, 0x00, 0x00, b"\x00"),  # unknown INS with data
    ):
        with pytest.raises(UnsafeCommandError):
            check_allowed(forbidden)


def test_dry_run_sends_nothing(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from card_emulator import Card

    sent: list[bytes] = []
    original = Card.transmit
    monkeypatch.setattr(Card, "transmit", lambda self, c: sent.append(c) or original(self, c))
    assert main(["fingerprint", "--persona", str(DEMO_PERSONA), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sent == []
    lines = [line for line in out.splitlines() if not line.startswith(("#", "(*) "))]
    assert len(lines) == len(build_plan())
    assert any(line.startswith("00 20 00 80 ") for line in lines)  # the empty VERIFY
    assert "jpki/select/aid/p2=00: SELECT AP asking for the FCI" in out
    for line in lines:
        header = line.split()[:2]
        assert header[1] not in ("2A", "24", "84", "88", "D6", "AE", "32"), line
