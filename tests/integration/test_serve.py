"""`mynacard serve` as a user runs it: a process that serves cards until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.pcsc
def test_serve_until_sigterm(tmp_path: Path) -> None:
    trace = tmp_path / "apdus.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", "--private-socket", "--trace", str(trace)],
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
        assert "← demo: 番号\u3000花子, JPKIAPICCTOKEN2" in text, text
        export = next(line for line in lines if line.startswith("PC/SC clients must run with"))
        socket_path = export.rsplit("=", 1)[1].strip()
        pcscd_line = next(line for line in lines if line.startswith("pcscd (pid "))
        pcscd_pid = int(pcscd_line.split("(pid ", 1)[1].split(")", 1)[0])
        listed = subprocess.run(
            ["opensc-tool", "-l"],
            env={**env, "PCSCLITE_CSOCK_NAME": socket_path},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert "Yes" in listed.stdout  # a card is present
        certificates = subprocess.run(
            ["pkcs15-tool", "--list-certificates"],
            env={**env, "PCSCLITE_CSOCK_NAME": socket_path},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "User Authentication Certificate" in certificates.stdout
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=20)
    assert serve.returncode == 0
    assert "stopped: cards removed, pcscd stopped." in rest
    assert not os.path.exists(socket_path)  # our pcscd's socket is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pcscd_pid, 0)  # and the pcscd it started was stopped
    assert "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01" in trace.read_text("utf-8")
