"""``mynacard conformance run`` end to end: the example kiosks against every scenario, through
a real pcscd + vpcd and the test PKI's OCSP responder, and the HTML report in headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
KIOSKS = ROOT / "examples" / "kiosk"
pytestmark = pytest.mark.pcsc

CC, NSC = "check-counter-before-verify", "no-signing-certificate"
#: Every (scenario, rule) the careless kiosk breaks — and nothing else.
CARELESS_FAILURES = {
    ("normal", CC),
    ("normal", NSC),
    ("wrong-then-right", CC),
    ("wrong-then-right", NSC),
    ("one-try-left", CC),
    ("one-try-left", NSC),
    ("pin-locked", CC),
    ("pin-locked", NSC),
    ("pin-locked", "never-verify-blocked-pin"),
    ("pin-locked", "stop-on-6984"),
    ("pin-locked", "sign-after-verify"),
    ("pin-locked", "report-locked-pin"),
    ("expired-certificate", CC),
    ("expired-certificate", NSC),
    ("expired-certificate", "reject-expired-certificate"),
    ("revoked-certificate", CC),
    ("revoked-certificate", NSC),
    ("revoked-certificate", "reject-revoked-certificate"),
    ("certificate-on-hold", CC),
    ("certificate-on-hold", NSC),
    ("certificate-on-hold", "reject-revoked-certificate"),
    ("removed-during-signing", CC),
    ("removed-during-signing", NSC),
    ("removed-during-signing", "finish-cleanly"),
    ("removed-during-signing", "report-removed-card"),
    ("slow-card", CC),
    ("slow-card", NSC),
    ("slow-card", "complete-valid-transaction"),
    ("unusual-atr", "complete-valid-transaction"),
    ("smartphone-token", NSC),
    ("smartphone-token", "finish-cleanly"),
    ("smartphone-token", "complete-valid-transaction"),
}
SCENARIOS = 11
GENERAL_RULES = 6


@dataclass
class Run:
    out: Path
    returncode: int
    stdout: str
    stderr: str

    def junit(self) -> ET.Element:
        return ET.parse(self.out / "junit.xml").getroot()

    def failures(self) -> dict[tuple[str, str], str]:
        """(scenario, rule) → the failure message, from the JUnit XML."""
        found = {}
        for case in self.junit().iter("testcase"):
            failure = case.find("failure")
            if failure is not None:
                scenario = case.attrib["classname"].removeprefix("kiosk.")
                found[scenario, case.attrib["name"]] = failure.attrib["message"]
        return found


def run_conformance(out: Path, kiosk: str, *options: str, timeout: float = 300) -> Run:
    """``mynacard conformance run`` of ``kiosk`` (with ``options``, e.g. ``--matrix``) into
    ``out``, in a process of its own (it starts its own pcscd)."""
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "conformance",
        "run",
        *options,
        "--kiosk-cmd",
        f"{sys.executable} {KIOSKS / kiosk}",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=timeout
    )
    return Run(out, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_conformance(tmp_path_factory.mktemp("reference"), "reference_kiosk.py")


@pytest.fixture(scope="module")
def careless(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_conformance(tmp_path_factory.mktemp("careless"), "careless_kiosk.py")


def test_the_reference_kiosk_passes_every_scenario(reference: Run) -> None:
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert f"{SCENARIOS}/{SCENARIOS} scenarios passed" in reference.stdout
    suite = reference.junit().find("testsuite")
    assert suite is not None
    assert suite.attrib["tests"] == str(SCENARIOS * (GENERAL_RULES + 1))
    assert suite.attrib["failures"] == "0"
    assert reference.failures() == {}


def test_the_careless_kiosk_fails_exactly_the_rules_it_breaks(careless: Run) -> None:
    assert careless.returncode == 1, careless.stderr
    assert set(careless.failures()) == CARELESS_FAILURES


def test_the_report_names_the_command_that_broke_each_rule(careless: Run) -> None:
    failures = careless.failures()
    assert "SELECT EF 0001 署名用電子証明書" in failures["normal", NSC]
    assert "VERIFY 利用者証明用暗証番号 (JPKI 0018) → 6984" in failures["pin-locked", CC]
    stop = failures["pin-locked", "stop-on-6984"]
    assert "COMPUTE DIGITAL SIGNATURE 0017" in stop and "6984 at #" in stop
    assert "reported accepted" in failures["revoked-certificate", "reject-revoked-certificate"]
    assert "crashed (exit status 1" in failures["removed-during-signing", "finish-cleanly"]
    assert "FAIL pin-locked / never-verify-blocked-pin: #" in careless.stdout


def test_traces_and_reports_never_hold_a_pin(careless: Run, reference: Run) -> None:
    for run in (careless, reference):
        traces = sorted((run.out / "traces").glob("*.jsonl"))
        assert len(traces) == SCENARIOS
        for path in [*traces, run.out / "report.html", run.out / "junit.xml"]:
            text = path.read_text(encoding="utf-8")
            assert "31 32 33 34" not in text and "39 39 39 39" not in text, path
        verify_lines = [
            line
            for line in (run.out / "traces" / "normal.jsonl").read_text().splitlines()
            if '"command": "00 20 00 80 04' in line
        ]
        assert verify_lines and all("XX XX XX XX" in line for line in verify_lines)


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/dev.sh test installs it)")
        pytest.skip("chromium is not installed (apt install chromium)")
    return found


def _headless(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def _colours(png: Path) -> tuple[int, int]:
    """Pixels in the report's pass green and fail red."""
    image = Image.open(png).convert("RGB")
    counts = {colour: n for n, colour in image.getcolors(image.width * image.height) or []}
    return counts.get((0xD9, 0xF2, 0xDD), 0), counts.get((0xFB, 0xD5, 0xD5), 0)


def test_the_html_report_renders_in_headless_chromium(
    careless: Run, reference: Run, tmp_path: Path
) -> None:
    for run, verdict in ((careless, "DOES NOT CONFORM"), (reference, "CONFORMS")):
        page = (run.out / "report.html").as_uri()
        dom = _headless(tmp_path, "--dump-dom", page)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert f'id="verdict">{verdict}:' in dom.stdout
        assert dom.stdout.count("<tr><td>") >= SCENARIOS  # the verdict matrix rows
        shot = tmp_path / f"{run.out.name}.png"
        done = _headless(tmp_path, f"--screenshot={shot}", "--window-size=1400,1800", page)
        assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
        assert Image.open(shot).size == (1400, 1800)
        green, red = _colours(shot)
        if run is careless:
            assert red > 5_000 and green > 5_000, (green, red)
        else:
            assert red == 0 and green > 5_000, (green, red)
    dom = _headless(tmp_path, "--dump-dom", (careless.out / "report.html").as_uri()).stdout
    for scenario, rule in CARELESS_FAILURES:
        assert f'id="s-{scenario}"' in dom and rule in dom
