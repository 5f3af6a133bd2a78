"""The fingerprint through pcscd + vpcd equals the in-process one, apart from timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.fingerprint import profile
from harness.fingerprint.diff import compare
from harness.plugin import ServedReader


@pytest.mark.pcsc
def test_through_pcsc_equals_in_process(
    myna_reader: ServedReader, demo_profile: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "served.json"
    assert main(["fingerprint", "--reader", myna_reader.name, "--out", str(out)]) == 0
    served = profile.load(out)
    assert served["complete"] is True
    assert served["timing"]["select"]["count"] > 0
    sent = sum(v["count"] for v in served["timing"].values())
    assert len(myna_reader.exchanges) >= sent  # every command went through pcscd + vpcd
    report = compare(demo_profile, served)
    assert report.equal, report.render()
