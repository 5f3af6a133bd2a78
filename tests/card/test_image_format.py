"""Card images of another format: a clear ImageError naming the file, both formats and a remedy.

An image written by this version is opened as an image of a newer format (its stored format
field rewritten to ``mynacard-image/3``) and by a mynacard whose own format is newer (the
module's format constant bumped, so the image is of an older format), through ``Card.open`` and
through the ``mynacard`` command; the refused image is left exactly as it was. An image of the
previous format (``mynacard-image/1``, no integrity codes) is still upgraded on open.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import card_emulator.image as image_module
from apdu.version import version
from card_emulator import Card, ImageError
from tests.conftest import DEMO_PERSONA, ROOT, exchange

SELECT_JPKI = "00A4040C0AD392F000260100000001"


def _mynacard() -> list[str]:
    script = Path(sys.executable).with_name("mynacard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


def _written(tmp_path: Path) -> Path:
    image = tmp_path / "card.sqlite"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    return image


def _set_format(image: Path, value: str) -> None:
    db = sqlite3.connect(image)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (value,))
    db.commit()
    db.close()


def _digest(image: Path) -> str:
    return hashlib.sha256(image.read_bytes()).hexdigest()


def _run_cli(image: Path) -> subprocess.CompletedProcess[str]:
    argv = [*_mynacard(), "serve", "--persona", str(DEMO_PERSONA), "--image", str(image)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


NEWER = (
    r"card\.sqlite: card image format mynacard-image/3 is newer than mynacard {v} can open "
    r"\(it opens mynacard-image/2, and upgrades mynacard-image/1\): "
    r"upgrade mynacard to use this image"
)


def test_image_of_a_newer_format(tmp_path: Path) -> None:
    image = _written(tmp_path)
    _set_format(image, "mynacard-image/3")
    before = _digest(image)
    expected = NEWER.format(v=version().replace(".", r"\."))
    with pytest.raises(ImageError, match=expected) as info:
        Card.open(image)
    assert str(image) in str(info.value)
    assert _digest(image) == before

    result = _run_cli(image)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mynacard: {image}: ")
    assert re.search(expected, lines[0])
    assert _digest(image) == before


def test_image_of_an_older_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = _written(tmp_path)  # mynacard-image/2
    before = _digest(image)
    monkeypatch.setattr(image_module, "IMAGE_FORMAT", "mynacard-image/3")  # a later mynacard
    with pytest.raises(ImageError) as info:
        Card.open(image)
    assert str(info.value) == (
        f"{image}: card image format mynacard-image/2 is older than mynacard {version()} can "
        "open (it opens mynacard-image/3, and upgrades mynacard-image/1): personalize a new "
        "image from its persona (mynacard personalize --persona FILE --image NEW_IMAGE)"
    )
    assert _digest(image) == before


def test_cli_on_an_image_older_than_it_opens(tmp_path: Path) -> None:
    """The same through the command: a format below every one this version opens."""
    image = _written(tmp_path)
    _set_format(image, "mynacard-image/0")
    before = _digest(image)
    result = _run_cli(image)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"mynacard: {image}: card image format mynacard-image/0 is older than mynacard "
        f"{version()} can open (it opens mynacard-image/2, and upgrades mynacard-image/1): "
        "personalize a new image from its persona "
        "(mynacard personalize --persona FILE --image NEW_IMAGE)\n"
    )
    assert _digest(image) == before


def test_unknown_format_text(tmp_path: Path) -> None:
    image = _written(tmp_path)
    _set_format(image, "someone-else/7")
    with pytest.raises(ImageError, match=r"unknown card image format 'someone-else/7' \("):
        Card.open(image)


def test_image_of_format_1_is_upgraded_on_open(tmp_path: Path) -> None:
    """A format-1 image (no integrity codes) opens, keeps its state and is format 2 after."""
    image = tmp_path / "card.sqlite"
    with Card.from_persona(DEMO_PERSONA, image=image) as card:
        exchange(card, SELECT_JPKI)
        assert exchange(card, "002000980439393939")[1] == 0x63C2
    db = sqlite3.connect(image)  # the shape 0.1.0 wrote
    db.execute("ALTER TABLE credentials DROP COLUMN mac")
    db.execute("DELETE FROM meta WHERE key IN ('integrity_key', 'content_mac')")
    db.execute("UPDATE meta SET value = 'mynacard-image/1' WHERE key = 'format'")
    db.commit()
    db.close()
    with Card.open(image) as card:
        exchange(card, SELECT_JPKI)
        assert exchange(card, "00200098")[1] == 0x63C2
    db = sqlite3.connect(image)
    stored = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
    db.close()
    assert stored == "mynacard-image/2"
    Card.open(image).close()  # and its integrity codes hold
