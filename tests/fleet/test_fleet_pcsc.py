"""``mynacard fleet`` serving 8 simulated kiosks (a pcscd each), one restarted mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fleet.simulated import FleetProcess, KioskFarm
from tests.conftest import ROOT

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]

KIOSKS = 8
RESTARTED = 3


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KioskFarm]:
    with KioskFarm(KIOSKS, tmp_path_factory.mktemp("kiosks"), workers=4) as farm:
        yield farm


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _flows(farm: KioskFarm, repeat_for: float) -> subprocess.Popen[str]:
    pairs = [item for kiosk in farm.kiosks for item in (kiosk.socket_path, kiosk.reader)]
    options = ["--repeat-for", str(repeat_for), "--timeout", "60"]
    return subprocess.Popen(
        [sys.executable, "-m", "harness.fleet.kiosk_flow", *options, *pairs],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )


def test_fleet_serves_every_kiosk_and_a_restarted_one_reconnects(
    farm: KioskFarm, tmp_path: Path
) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(farm.fleet_toml("status_interval = 0\nreconnect_timeout = 60"))
    fleet = FleetProcess(config, _env(), ROOT)
    try:
        _, ready = fleet.wait_for(lambda line: line.startswith("fleet ready"), 60, "ready")
        assert ready == f"fleet ready: {KIOSKS}/{KIOSKS} kiosks connected"
        assert sum(": connected for" in line for _, line in fleet.lines) == KIOSKS

        flows = _flows(farm, repeat_for=3.0)
        time.sleep(1.0)  # every client is running the flow again and again
        restarted_at = time.monotonic()
        farm.restart(RESTARTED)
        name = farm.kiosks[RESTARTED].name
        stamp, line = fleet.wait_for(lambda line: "back in the reader" in line, 30, "reconnection")
        back = stamp - restarted_at
        lines = [text for _, text in fleet.lines]
        assert any(text.startswith(f"kiosk {name} (") and "reconnecting" in text for text in lines)
        assert line.startswith(f"kiosk {name} (")
        assert "1 reconnections" in line
        out, _ = flows.communicate(timeout=120)
        rows = [json.loads(line) for line in out.splitlines()]
        summary, kiosks = rows[-1], rows[:-1]
        assert summary["ok"] == KIOSKS and summary["failed"] == 0, kiosks
        hit = next(row for row in kiosks if row["kiosk"] == farm.kiosks[RESTARTED].reader)
        assert hit["started"] <= restarted_at <= hit["ended"]  # mid-run
        assert all(row["flows"] >= 1 for row in kiosks)
        assert back < 20

        seen = len(fleet.lines)
        fleet.proc.send_signal(signal.SIGUSR1)  # the status table: a summary, a line per kiosk
        fleet.wait_for(lambda line: line.startswith("fleet: "), 10, "status table", seen)
        summary_line = next(text for _, text in fleet.lines[seen:] if text.startswith("fleet: "))
        assert summary_line == f"fleet: {KIOSKS} kiosks: {KIOSKS} connected"
    finally:
        fleet.stop()
    assert fleet.proc.returncode == 0, fleet.errors
    assert fleet.lines[-1][1] == "stopped: cards removed from every kiosk."
    assert not any("cannot be reached" in text for text in fleet.errors)


def test_check_connects_every_kiosk_once(farm: KioskFarm, tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(farm.fleet_toml())
    done = subprocess.run(
        [sys.executable, "-m", "mynacard", "fleet", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"fleet ready: {KIOSKS}/{KIOSKS} kiosks connected" in done.stdout


def test_loopback_kiosks_where_there_are_no_namespaces(tmp_path: Path) -> None:
    """Without named namespaces (not root) each kiosk is a loopback port."""
    with KioskFarm(2, tmp_path / "kiosks", namespaces=False) as loopback:
        assert all(kiosk.netns is None for kiosk in loopback.kiosks)
        config = tmp_path / "fleet.toml"
        config.write_text(loopback.fleet_toml("status_interval = 0"))
        assert "netns" not in config.read_text()
        fleet = FleetProcess(config, _env(), ROOT)
        try:
            _, ready = fleet.wait_for(lambda line: line.startswith("fleet ready"), 60, "ready")
            assert ready == "fleet ready: 2/2 kiosks connected"
            out, _ = _flows(loopback, repeat_for=0.0).communicate(timeout=120)
            summary = json.loads(out.splitlines()[-1])
            assert summary["ok"] == 2 and summary["failed"] == 0
        finally:
            fleet.stop()
