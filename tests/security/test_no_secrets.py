"""Logs and traces never contain a PIN; network listeners bind loopback by default.

The ``mynacard serve -v --trace FILE`` code path runs in-process: a CardServer with an
``on_exchange`` observer printing ``TraceRecord.text()`` (as the CLI's ``-v`` does) and a JSON Lines
trace (``TraceRecord.to_json()``), driven over a real TCP socket by a minimal vpcd stand-in that
sends every demo credential in every VERIFY / CHANGE form, including malformed ones. Then the
audit runs with ``-v --trace`` and VERIFYs of the demo PINs. Every byte of output is searched
for every secret in ASCII and in hex.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from pathlib import Path

import pytest

from apdu import CommandApdu, TraceRecord, builders
from card_emulator import Card
from harness.audit import cli as audit_cli
from harness.card_server import CardServer, Endpoint, parse_endpoint
from harness.default_pki import pki_store
from jpki import service
from readers.card_side import vpcd
from readers.card_side.netns import isolation_available
from readers.card_side.pcscd import PrivatePcscd
from tests.conftest import DEMO_PERSONA, listening_ports
from tests.security.facts import AIDS, DEMO_SECRETS

NEW_PIN = b"5678"
SECRETS = [*DEMO_SECRETS, NEW_PIN]


def _forms(secret: bytes) -> list[str]:
    return [
        secret.decode(),
        secret.hex(),
        secret.hex().upper(),
        secret.hex(" ").upper(),
        secret.hex(" "),
    ]


def _assert_clean(text: str, what: str) -> None:
    for secret in SECRETS:
        for form in _forms(secret):
            assert form not in text, f"{what} contains {secret!r} as {form!r}"


def _json_without_clock(line: str) -> str:
    record = json.loads(line)
    record.pop("t", None)  # a timestamp may contain any digits
    record.pop("duration_ms", None)
    return json.dumps(record)


def _secret_commands() -> list[bytes]:
    cmds: list[CommandApdu | bytes] = [builders.select_aid(AIDS["jpki"]), builders.select_ef(0x18)]
    cmds += [builders.verify(b"1234"), builders.verify(b"ABC123", sfi=0x1B)]
    cmds += [builders.verify(b"abc123", sfi=0x1B), builders.verify(b"1234", sfi=0x18)]
    cmds += [builders.select_ef(0x18), builders.change_reference_data(NEW_PIN)]
    cmds += [CommandApdu(0x00, 0x20, 0x00, 0x98, NEW_PIN, extended=True)]
    cmds += [bytes.fromhex("0020009805") + b"1234", bytes.fromhex("00200098") + b"1234"]
    cmds += [bytes.fromhex("00200098040000") + b"1234"]  # malformed extended-looking
    cmds += [builders.select_aid(AIDS["text"])]
    cmds += [builders.verify(b"1234", sfi=0x11), builders.verify(b"314159265352", sfi=0x14)]
    cmds += [builders.verify(b"55021720352285", sfi=0x15)]
    cmds += [builders.select_aid(AIDS["kenmen"]), builders.verify(b"550217", sfi=0x11)]
    cmds += [builders.verify(b"55021720352285", sfi=0x12)]
    cmds += [builders.verify(b"314159265352", sfi=0x13)]
    cmds += [builders.select_aid(AIDS["common"]), builders.select_ef(0x1C)]
    cmds += [builders.verify(b"1234"), builders.change_key(NEW_PIN)]
    cmds += [bytes.fromhex("80320080") + b"\x04" + NEW_PIN + b"\x00\x00"]  # malformed CHANGE KEY
    return [c if isinstance(c, bytes) else c.to_bytes() for c in cmds]


def _fake_vpcd(listener: socket.socket, commands: list[bytes], answers: list[bytes]) -> None:
    conn, _ = listener.accept()
    with conn:

        def frame(payload: bytes) -> None:
            conn.sendall(struct.pack(">H", len(payload)) + payload)

        def reply() -> bytes:
            size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
            return conn.recv(size, socket.MSG_WAITALL)

        frame(b"\x01")  # power on
        frame(b"\x04")  # ATR
        reply()
        for command in commands:
            frame(command)
            answers.append(reply())


def test_serve_verbose_and_trace_never_show_a_pin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    trace = tmp_path / "trace.jsonl"
    printed: list[str] = []
    commands = _secret_commands()
    answers: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    vpcd_thread = threading.Thread(target=_fake_vpcd, args=(listener, commands, answers))
    vpcd_thread.start()
    server = CardServer(
        [("demo", Card.from_persona(DEMO_PERSONA))],
        endpoints=[Endpoint("127.0.0.1", port, "Test Reader 00 00")],
        trace=trace,
        on_exchange=lambda record: printed.append(f"[{record.reader}] {record.text()}"),
    )
    with server:
        vpcd_thread.join(timeout=20)
    listener.close()
    assert len(answers) == len(commands)
    assert answers[2] == b"\x90\x00" and answers[3] == b"\x90\x00"  # the PINs were right
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert sum('"type": "exchange"' in line for line in lines) == len(commands)
    exchanges = [line for line in printed if "] -- " not in line]  # card events print one line
    assert len(exchanges) == len(commands)
    assert "XX XX XX XX" in exchanges[2]
    _assert_clean("\n".join(printed), "-v output")
    _assert_clean("\n".join(_json_without_clock(x) for x in lines), "trace file")
    _assert_clean(caplog.text, "log")
    for command, answer in zip(commands, answers, strict=True):  # the record helpers too
        record = TraceRecord(0.0, command, answer)
        _assert_clean(record.text() + _json_without_clock(json.dumps(record.to_json())), "record")
        if len(command) >= 4 and command[1] in (0x20, 0x24, 0x32):
            _assert_clean(repr(CommandApdu.parse(command)) if _parses(command) else "", "repr")


def _parses(raw: bytes) -> bool:
    try:
        CommandApdu.parse(raw)
    except Exception:
        return False
    return True


def test_audit_output_and_trace_never_show_a_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    trace = tmp_path / "audit.jsonl"
    creds = tmp_path / "creds.toml"
    creds.write_text(
        'jpki_auth = "1234"\njpki_sign = "ABC123"\ntext_pin = "1234"\n'
        'text_check_a = "314159265352"\ntext_check_b = "55021720352285"\n'
        'kenmen_birth = "550217"\n',
        encoding="utf-8",
    )
    for fmt in ("text", "json", "markdown", "html"):
        code = audit_cli.main(
            [
                "audit",
                "--persona",
                str(DEMO_PERSONA),
                "--credentials",
                str(creds),
                "--allow-destructive",
                "--format",
                fmt,
                "-v",
                "--trace",
                str(trace),
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, out
        assert "XX XX XX XX XX XX" in err  # the VERIFYs were printed, masked
        _assert_clean(out, f"audit {fmt} report")
        _assert_clean(err, "audit -v output")
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert sum('"command": "00 20 00 80 06 XX XX XX XX XX XX"' in x for x in lines) >= 4
    _assert_clean("\n".join(_json_without_clock(x) for x in lines), "audit trace")
    _assert_clean(caplog.text, "log")


def test_network_listeners_bind_loopback_unless_configured() -> None:
    assert service.DEFAULT_HOST == "127.0.0.1"
    store = pki_store()
    server = service.PkiServer(store)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.server_close()
    configured = service.PkiServer(store, host="127.0.0.2")  # told otherwise: honoured
    try:
        assert configured.server_address[0] == "127.0.0.2"
    finally:
        configured.server_close()
    # the card side connects (never listens), to loopback by default
    assert vpcd.DEFAULT_HOST == "127.0.0.1"
    assert parse_endpoint("35963").host == "127.0.0.1"


@pytest.mark.skipif(not isolation_available(), reason="network isolation needs root and unshare")
def test_pcscd_vpcd_listeners_are_not_on_this_hosts_network(myna_pcscd: PrivatePcscd) -> None:
    """Debian's vpcd listens on 0.0.0.0; ours does so only inside pcscd's own namespace."""
    assert myna_pcscd.isolated
    ports = {reader.port for reader in myna_pcscd.readers}
    assert ports and not ports & listening_ports()
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
