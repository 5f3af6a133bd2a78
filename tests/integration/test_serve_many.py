"""`mynacard serve` past pcsc-lite's 16 readers: one pcscd per 16 readers, each on a socket of
its own, every card served by the one card loop of the serve process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
CARDS = 20

PROBE = """
import json
from smartcard.System import readers
out = {}
for reader in readers():
    connection = reader.createConnection()
    try:
        connection.connect()
    except Exception:
        out[str(reader)] = None
        continue
    data, sw1, sw2 = connection.transmit(list(bytes.fromhex("00A4040C0AD392F000260100000001")))
    out[str(reader)] = f"{sw1:02X}{sw2:02X}"
    connection.disconnect()
print(json.dumps(out))
"""


@pytest.mark.pcsc
def test_serve_twenty_cards_across_two_pcscd() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    env["PYTHONPATH"] = str(ROOT)
    personas = [arg for _ in range(CARDS) for arg in ("--persona", str(PERSONA))]
    serve = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", "--private-socket", *personas],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert serve.stdout is not None
    lines: list[str] = []
    try:
        for line in serve.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        sockets = [
            line.rsplit("=", 1)[1].strip()
            for line in lines
            if line.strip().startswith("its clients run with: export PCSCLITE_CSOCK_NAME=")
        ]
        assert len(sockets) == 2 and len(set(sockets)) == 2, text
        answers: dict[str, str | None] = {}
        for socket_path in sockets:
            listed = subprocess.run(
                [sys.executable, "-c", PROBE],
                env={**env, "PCSCLITE_CSOCK_NAME": socket_path},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            seen = json.loads(listed.stdout)
            assert len(seen) == 16 if socket_path == sockets[0] else len(seen) == 4, seen
            answers.update({f"{socket_path} {k}": v for k, v in seen.items()})
        assert list(answers.values()) == ["9000"] * CARDS, answers
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, rest
    assert "stopped: cards removed, pcscd stopped." in rest
    for socket_path in sockets:
        assert not os.path.exists(socket_path)
