"""Tearing: SIGKILL the process holding a durable card image at random moments (>= 200 kills).

After every kill the image must hold the counters of the last exchange whose answer could have
been seen (or of the one in flight); a failed VERIFY is never given back, a blocked credential
never comes back, and SQLite's integrity check says ``ok``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from card_emulator import Card
from tests.conftest import DEMO_PERSONA, ROOT

KILLS = 220


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_storm_never_gives_back_a_try(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.tearing_worker", str(image), str(KILLS), "4242"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["violations"] == []
    assert result["kills"] >= 200
    assert result["kills_mid_storm"] >= 100, result  # most kills land among the VERIFYs
    assert result["final"]["common 001C"] == 0  # blocked early, stayed blocked through kills
    with Card.open(image) as card:  # the image still works as a card
        assert card.credential("common", 0x1C).remaining == 0
        assert card._store.integrity_check() == "ok"  # type: ignore[attr-defined]
