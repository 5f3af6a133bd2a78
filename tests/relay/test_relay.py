"""``mynacard relay`` end to end: the demo card in one private pcscd's reader, relayed by a
subprocess into another private pcscd's vpcd reader, used there by pyscard and OpenSC."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from apdu import builders
from apdu.vocabulary import Jpki
from card_emulator import Card
from harness.cli import main
from readers.card_side.vpcd import Removal, VpcdClient
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport, PcscTransportError
from readers.scard import list_readers, wait_for_card
from tests.relay.conftest import (
    AUTH_PIN,
    DEMO_PERSONA,
    Relay,
    start_env,
    start_relay,
    stop_process,
    wait_present,
)

pytestmark = pytest.mark.pcsc

PKCS11_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
SLOT = re.compile(r"^Slot \d+ \((0x[0-9a-f]+)\): (.+?)\s*$", re.MULTILINE)


def _tool(relay: Relay, cwd: Path, *argv: str) -> str:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    done = subprocess.run(
        argv, env=relay.env, cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}\n{relay.log.read_text()}"
    return done.stdout


def test_pyscard_selects_and_reads_the_auth_certificate(relay: Relay) -> None:
    with PcscTransport(relay.reader) as transport:
        assert transport.atr == relay.card.atr
        client = MynaClient(transport)
        client.select_jpki()
        certificate = client.certificate(Jpki.EF_AUTH_CERT)
        raw = transport.transmit(builders.select_ef(Jpki.EF_AUTH_CERT).to_bytes())
        assert raw[-2:] == b"\x90\x00"
    expected = relay.card.content.application("jpki").files[Jpki.EF_AUTH_CERT]
    der = certificate.public_bytes(Encoding.DER)
    assert expected.startswith(der)
    out = relay.log.read_text()
    assert f"relaying {relay.inner_reader!r}" in out
    assert f"virtual reader: the one vpcd serves at 127.0.0.1:{relay.outer.readers[0].port}" in out
    assert f"trace (masked APDUs): {relay.trace}" in out


def test_opensc_lists_certificates_and_signs_with_the_demo_pin(
    relay: Relay, tmp_path: Path
) -> None:
    index = list_readers().index(relay.reader)
    listed = _tool(relay, tmp_path, "pkcs15-tool", "--reader", str(index), "--list-certificates")
    assert "User Authentication Certificate" in listed
    slots = _tool(relay, tmp_path, "pkcs11-tool", "--module", PKCS11_MODULE, "--list-slots")
    slot = next(
        m.group(1)
        for m in SLOT.finditer(slots)
        if m.group(2) == relay.reader
        and "token label        : JPKI (User Authentication PIN)"
        in slots[m.end() :].split("\nSlot ", 1)[0]
    )
    (tmp_path / "data").write_bytes(b"data to sign through the relay\n")
    _tool(
        relay,
        tmp_path,
        *("pkcs11-tool", "--module", PKCS11_MODULE, "--slot", slot, "--login", "--pin", AUTH_PIN),
        *("--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "-i", "data", "-o", "sig"),
    )
    assert (tmp_path / "sig").stat().st_size == 256
    if shutil.which("openssl") is None:
        return
    _tool(
        relay,
        tmp_path,
        *("pkcs15-tool", "--reader", str(index), "--read-certificate", "1", "-o", "auth.pem"),
    )
    _tool(relay, tmp_path, "openssl", "x509", "-in", "auth.pem", "-pubkey", "-noout", "-out", "pub")
    verified = _tool(
        relay, tmp_path, "openssl", "dgst", "-sha256", "-verify", "pub", "-signature", "sig", "data"
    )
    assert verified.strip() == "Verified OK"


def test_the_trace_masks_the_pin_and_replays_without_difference(
    relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    text = relay.trace.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    verifies = [
        r for r in lines if r.get("type") == "exchange" and r["command"].startswith("00 20 00 ")
    ]
    with_data = [r for r in verifies if len(r["command"].split()) > 4]
    assert with_data, "no VERIFY with a PIN recorded"
    assert all("XX" in r["command"] for r in with_data)
    assert AUTH_PIN.encode().hex() not in text.replace(" ", "").lower()
    # In this process: the stand-in card's certificates (random serial numbers) are made once
    # per process, so the replay card made from the persona here is the same card.
    argv = ["trace", str(relay.trace), "--replay", "--persona", str(DEMO_PERSONA)]
    assert main(argv) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.splitlines()[-1].endswith(": 0 difference(s)")


def test_removing_the_real_card_removes_the_virtual_one_and_back(relay: Relay) -> None:
    with PcscTransport(relay.reader) as transport:
        assert transport.transmit(builders.select_aid(Jpki.AID).to_bytes())[-2:] == b"\x90\x00"
        relay.inner_client.remove()
        assert wait_for_card(relay.reader, present=False, timeout=10) == b""
        with pytest.raises(PcscTransportError):
            transport.transmit(builders.select_aid(Jpki.AID).to_bytes())
    relay.inner_client.insert()
    assert wait_for_card(relay.reader, timeout=10) == relay.card.atr
    with PcscTransport(relay.reader) as transport:
        assert transport.transmit(builders.select_aid(Jpki.AID).to_bytes())[-2:] == b"\x90\x00"
    assert relay.process.poll() is None
    events = [
        json.loads(line).get("event")
        for line in relay.trace.read_text().splitlines()
        if json.loads(line).get("type") == "event"
    ]
    assert "remove" in events, events  # the removal and re-insertion are in the trace
    last_removal = len(events) - 1 - events[::-1].index("remove")
    assert "insert" in events[last_removal:], events


def test_a_card_pulled_during_an_apdu_fails_it_and_empties_the_virtual_reader(
    relay: Relay,
) -> None:
    select = builders.select_aid(Jpki.AID).to_bytes()
    with PcscTransport(relay.reader) as transport:
        assert transport.transmit(select)[-2:] == b"\x90\x00"
        relay.inner_client.remove_on_apdu(1, when=Removal.BEFORE_PROCESSING)
        with pytest.raises(PcscTransportError):
            transport.transmit(select)  # no answer from the real card: none from the relay
        assert wait_for_card(relay.reader, present=False, timeout=10) == b""
    # A real reader sees a pulled card at once; the vpcd reader standing in for it only at
    # pcscd's next presence poll (~400 ms). Put the card back after that, as a hand would: a
    # card out and in within one poll never left, as far as the inner pcscd knows.
    wait_present(relay.inner, relay.inner_reader, present=False)
    relay.inner_client.insert()
    assert wait_for_card(relay.reader, timeout=10) == relay.card.atr
    with PcscTransport(relay.reader) as transport:
        assert transport.transmit(select)[-2:] == b"\x90\x00"


def test_an_unknown_reader_is_named_with_the_readers_there_are(relay: Relay) -> None:
    env = start_env(relay.inner)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "relay", "--reader", "No Such Reader 00 00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no PC/SC reader 'No Such Reader 00 00'" in done.stderr
    assert repr(relay.inner_reader) in done.stderr


def test_private_socket_relay_prints_what_a_client_needs(relay: Relay, tmp_path: Path) -> None:
    reader = relay.inner.readers[1]
    card = Card.from_persona(DEMO_PERSONA)
    log = tmp_path / "relay.log"
    with VpcdClient(card, reader.port, netns=reader.netns):
        wait_present(relay.inner, reader.name)
        process = start_relay(relay.inner, ["--reader", "1", "--private-socket"], log)
        try:
            deadline = time.monotonic() + 20
            while "Ctrl-C" not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            out = log.read_text()
            exports = re.search(r"export PCSCLITE_CSOCK_NAME=(\S+)", out)
            name = re.search(r"^virtual reader: (.+)$", out, re.MULTILINE)
            assert exports and name, out
            env = {**os.environ, "PCSCLITE_CSOCK_NAME": exports.group(1)}
            listed = subprocess.run(
                ["opensc-tool", "--list-readers"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert name.group(1) in listed and "Yes" in listed, listed
            atr = subprocess.run(
                ["opensc-tool", "--reader", "0", "--atr"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert atr.strip().replace(":", "").lower() == card.atr.hex()
        finally:
            stop_process(process)
    wait_present(relay.inner, reader.name, present=False)  # the next test wants it empty
    assert process.returncode == 0, log.read_text()
    assert "stopped: relay ended." in log.read_text()


def test_a_relay_started_on_an_empty_reader_waits_for_the_card(
    relay: Relay, tmp_path: Path
) -> None:
    reader = relay.inner.readers[1]
    log = tmp_path / "relay.log"
    process = start_relay(relay.inner, ["--reader", reader.name, "--private-socket"], log)
    try:
        _wait_for_text(process, log, "waiting for a card in")
        card = Card.from_persona(DEMO_PERSONA)
        with VpcdClient(card, reader.port, netns=reader.netns):
            out = _wait_for_text(process, log, "Ctrl-C or SIGTERM stops.\n")
            assert f"relaying {reader.name!r}" in out and card.atr.hex(" ").upper() in out
    finally:
        stop_process(process)
    wait_present(relay.inner, reader.name, present=False)  # the next test wants it empty
    assert process.returncode == 0, log.read_text()


def test_an_empty_reader_without_a_card_stops_cleanly(relay: Relay, tmp_path: Path) -> None:
    reader = relay.inner.readers[1]
    log = tmp_path / "relay.log"
    process = start_relay(relay.inner, ["--reader", reader.name], log)
    try:
        _wait_for_text(process, log, "waiting for a card in")
    finally:
        stop_process(process)
    assert process.returncode == 0
    assert "stopped: no card came." in log.read_text()


def _wait_for_text(process: subprocess.Popen[str], log: Path, text: str) -> str:
    deadline = time.monotonic() + 20
    while text not in (out := log.read_text()):
        assert process.poll() is None, out
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    return out
