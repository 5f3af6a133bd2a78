"""The plugin as a user sees it: pytest in a throwaway directory, only the package installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.plugin import pcsc_missing

EXAMPLE = """
import pytest
from smartcard.System import readers

from harness.faults import FaultyCard, Scenario
from harness.personas import card_from_persona

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
VERIFY_AUTH_PIN = bytes.fromhex("00200098")  # retries of 利用者証明用暗証番号 (JPKI 0018)


def test_in_process_card(myna_card):
    assert myna_card.transmit(SELECT_JPKI) == b"\\x90\\x00"


def test_one_try_left(myna_persona):
    from card_emulator import Card

    card = Card.from_persona(myna_persona(counters={"jpki_auth": 1}, card={"atr": "jpki2"}))
    assert card.atr.hex().upper().startswith("3BDA13")
    card.transmit(SELECT_JPKI)
    assert card.transmit(VERIFY_AUTH_PIN) == b"\\x63\\xc1"


def test_revoked_certificate_seen_through_ocsp(myna_persona, myna_pki):
    from cryptography.x509 import ReasonFlags, ocsp
    from readers.host_side.client import MynaClient
    from readers.host_side.transport import InProcessTransport

    revoked = myna_persona(
        label="revoked", certificates={"auth_state": "revoked", "auth_reason": "keyCompromise"}
    )
    client = MynaClient(InProcessTransport(myna_pki.card(revoked)))
    client.select_jpki()
    certificate, issuer = client.certificate(0x000A), client.certificate(0x000B)
    answer = myna_pki.ocsp(certificate, issuer)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == ReasonFlags.key_compromise
    good = MynaClient(InProcessTransport(myna_pki.card(myna_persona(label="good"))))
    good.select_jpki()
    status = myna_pki.ocsp(good.certificate(0x000A), good.certificate(0x000B)).certificate_status
    assert status == ocsp.OCSPCertStatus.GOOD
    assert myna_pki.url.startswith("http://127.0.0.1:")


@pytest.mark.pcsc
def test_kiosk_sees_the_card(myna_reader):
    reader = next(r for r in readers() if str(r) == myna_reader.name)
    connection = reader.createConnection()
    connection.connect()
    data, sw1, sw2 = connection.transmit(list(SELECT_JPKI))
    assert (sw1, sw2) == (0x90, 0x00)


@pytest.mark.pcsc
def test_select_refused_once(myna_serve):
    scenario = Scenario.from_mapping(
        {"fault": [{"kind": "status", "match": "00 A4 04", "nth": 1, "sw": "6A82"}]}
    )
    served = myna_serve(FaultyCard(card_from_persona(), scenario))
    connection = next(r for r in readers() if str(r) == served.name).createConnection()
    connection.connect()
    assert connection.transmit(list(SELECT_JPKI))[1:] == (0x6A, 0x82)
    assert connection.transmit(list(SELECT_JPKI))[1:] == (0x90, 0x00)
"""


def test_fixtures_in_a_throwaway_directory(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(EXAMPLE, encoding="utf-8")
    output = _run(tmp_path)
    if pcsc_missing() is None:
        assert "5 passed" in output, output
    else:
        assert "3 passed, 2 skipped" in output and "PC/SC test skipped: " in output, output


def test_pcsc_marker_skips_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import harness.plugin\n"
        "harness.plugin.pcsc_missing = lambda: 'pcscd not found (simulated)'\n",
        encoding="utf-8",
    )
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.pcsc\ndef test_x():\n    pass\n\n"
        "def test_y(myna_reader):\n    pass\n",
        encoding="utf-8",
    )
    output = _run(tmp_path)
    assert "2 skipped" in output, output
    assert "SKIPPED [2] " in output, output
    assert "PC/SC test skipped: pcscd not found (simulated)" in output, output


def _run(directory: Path) -> str:
    """``python -m pytest -ra`` in ``directory`` (its own pcscd socket); the output."""
    drop = ("PCSCLITE_CSOCK_NAME", "PYTEST_ADDOPTS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra"]
    done = subprocess.run(
        [*argv, "--rootdir", str(directory)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output
