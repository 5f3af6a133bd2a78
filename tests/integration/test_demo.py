"""The README's first command: `mynacard demo` end to end through pcscd + vpcd + OpenSC."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.pcsc
def test_demo_reads_everything_back_through_pcsc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "in PC/SC reader" in out
    assert "verifies ✓" in out
    assert "314159265352" in out
    assert "card-face signature verified ✓" in out
    for label in (
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ):
        assert f"  {label}\n" in out
    assert "Stopped: card removed, pcscd stopped." in out
    assert "1234" not in out and "ABC123" not in out
