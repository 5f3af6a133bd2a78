"""`mynacard serve` as a user runs it: a process that serves cards until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import ROOT


def start_serve(
    *args: str,
    cwd: Path,
    command: Sequence[str] = (sys.executable, "-m", "harness.cli"),
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[str], str, str, dict[str, str]]:
    """``COMMAND serve --private-socket ARGS``, once ready: the process, what it printed, the
    pcscd socket its clients need, and the environment without that socket.

    ``command`` defaults to this checkout's ``mynacard`` (``PYTHONPATH`` set to it); with
    another ``command`` (an installed ``mynacard``), ``env`` is its environment as given.
    """
    given = os.environ if env is None else env
    clean = {k: v for k, v in given.items() if k != "PCSCLITE_CSOCK_NAME"}
    serve = subprocess.Popen(
        [*command, "serve", "--private-socket", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT)} if env is None else clean,
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
        exports = [line for line in lines if line.startswith("PC/SC clients must run with")]
        assert exports, f"mynacard serve did not get ready:\n{''.join(lines)}"
    except BaseException:
        serve.kill()  # the process this test started, by its PID
        serve.communicate(timeout=20)
        raise
    return serve, "".join(lines), exports[0].rsplit("=", 1)[1].strip(), clean


def pcsc_tool(socket_path: str, env: dict[str, str], *argv: str, check: bool = True) -> str:
    """What a PC/SC tool prints when run against the pcscd at ``socket_path``."""
    return subprocess.run(
        argv,
        env={**env, "PCSCLITE_CSOCK_NAME": socket_path},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    ).stdout


def opensc_list(socket_path: str, env: dict[str, str], *, check: bool = True) -> str:
    """What ``opensc-tool -l`` prints for the readers of the pcscd at ``socket_path``."""
    return pcsc_tool(socket_path, env, "opensc-tool", "-l", check=check)


@pytest.mark.pcsc
def test_serve_until_sigterm(tmp_path: Path) -> None:
    trace = tmp_path / "apdus.jsonl"
    serve, text, socket_path, env = start_serve("--trace", str(trace), cwd=ROOT)
    try:
        assert "← demo: 番号\u3000花子, JPKIAPICCTOKEN2" in text, text
        pcscd_line = next(line for line in text.splitlines() if line.startswith("pcscd (pid "))
        pcscd_pid = int(pcscd_line.split("(pid ", 1)[1].split(")", 1)[0])
        assert "Yes" in opensc_list(socket_path, env)  # a card is present
        certificates = pcsc_tool(socket_path, env, "pkcs15-tool", "--list-certificates")
        assert "User Authentication Certificate" in certificates
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=20)
    assert serve.returncode == 0
    assert "stopped: cards removed, pcscd stopped." in rest
    assert not os.path.exists(socket_path)  # our pcscd's socket is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pcscd_pid, 0)  # and the pcscd it started was stopped
    assert "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01" in trace.read_text("utf-8")


PROBE = """
from smartcard.System import readers
connection = readers()[0].createConnection()
connection.connect()
print(bytes(connection.getATR()).hex())
for apdu in ("00A4040C0AD392F000260100000001", "00A4020C020018", "00200080"):
    data, sw1, sw2 = connection.transmit(list(bytes.fromhex(apdu)))
print(f"{sw1:02X}{sw2:02X}")
"""


@pytest.mark.pcsc
@pytest.mark.parametrize(
    ("scenario", "atr", "sw"),
    [
        ("pin-locked", "3be000ff8131fe4514", "63C0"),  # a kiosk scenario: counters preset
        ("faults.toml", "3bda13ff8131fb468012392f31c173c601c03b", "6581"),  # a fault file
    ],
)
def test_serve_with_a_scenario(tmp_path: Path, scenario: str, atr: str, sw: str) -> None:
    (tmp_path / "faults.toml").write_text(
        'atr = "jpki2"\n[[fault]]\nkind = "status"\nmatch = "00 20"\nsw = "6581"\n'
    )
    serve, text, socket_path, env = start_serve("--scenario", scenario, cwd=tmp_path)
    try:
        assert "faults of" in text, text
        probe = subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**env, "PCSCLITE_CSOCK_NAME": socket_path},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert probe.stdout.split() == [atr, sw]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=20)
    assert serve.returncode == 0


def test_serve_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "serve", "--scenario", "no-such"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--scenario 'no-such' is neither a file nor a kiosk scenario" in done.stderr
    assert "Traceback" not in done.stderr
