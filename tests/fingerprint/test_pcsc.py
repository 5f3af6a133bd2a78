"""The fingerprint through pcscd + vpcd equals the in-process one, apart from timing."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fingerprint import profile
from harness.fingerprint.diff import compare
from harness.fingerprint.plan import build_plan
from harness.fingerprint.runner import Runner
from harness.plugin import ServedReader
from readers.host_side.pcsc import PcscTransport


@pytest.mark.pcsc
def test_through_pcsc_equals_in_process(
    myna_reader: ServedReader, demo_profile: dict[str, Any]
) -> None:
    with PcscTransport(myna_reader.name) as pcsc:
        found = Runner(pcsc, pcsc.atr, reset=lambda: pcsc.reconnect(reset=True)).run(build_plan())
    assert found.stopped is None
    assert len(myna_reader.exchanges) >= found.sent  # every command went through pcscd + vpcd
    served = profile.build(found)
    assert served["timing"]["select"]["count"] > 0
    report = compare(demo_profile, served)
    assert report.equal, report.render()
