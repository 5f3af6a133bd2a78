"""The demo card's fingerprint, made once for the package (in-process, without timing)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fingerprint import profile
from harness.fingerprint.plan import build_plan
from harness.fingerprint.runner import Runner
from harness.personas import card_from_persona
from readers.host_side.transport import InProcessTransport


def fingerprint(card: Any) -> dict[str, Any]:
    """The profile of ``card`` (any object with ``transmit`` and ``atr``), no timing."""
    reset = getattr(card, "reset", None)
    found = Runner(InProcessTransport(card), card.atr, reset=reset).run(build_plan())
    return profile.build(found, timing=False)


@pytest.fixture(scope="package")
def demo_profile() -> dict[str, Any]:
    return fingerprint(card_from_persona())
