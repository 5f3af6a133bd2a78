"""The durable card image: reopening restores state; a failed VERIFY survives SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from card_emulator import Card, ImageError
from card_emulator import image as image_module
from card_emulator.image import SqliteImage
from tests.conftest import DEMO_PERSONA, ROOT, exchange

SELECT_JPKI = "00A4040C0AD392F000260100000001"


def test_reopen_restores_exact_state(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    with Card.from_persona(DEMO_PERSONA, image=image) as card:
        exchange(card, SELECT_JPKI)
        assert exchange(card, "002000980439393939")[1] == 0x63C2
        assert exchange(card, "0020009B06" + b"WRONG1".hex())[1] == 0x63C4
        exchange(card, "0020009B06" + b"ABC123".hex())
        exchange(card, "00A4020C02001B")
        assert exchange(card, "0024018007" + b"NEWPW99".hex())[1] == 0x9000
        cert_before = card.content.application("jpki").files[0x000A]
    with Card.from_persona(DEMO_PERSONA, image=image) as card:
        exchange(card, SELECT_JPKI)
        assert exchange(card, "00200098")[1] == 0x63C2
        assert exchange(card, "0020009B")[1] == 0x63C5
        assert exchange(card, "0020009B06" + b"ABC123".hex())[1] == 0x63C4
        assert exchange(card, "0020009B07" + b"NEWPW99".hex())[1] == 0x9000
        assert card.content.application("jpki").files[0x000A] == cert_before
        assert card.atr.hex().upper() == "3BE000FF8131FE4514"


def test_image_is_locked_while_open(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    card = Card.from_persona(DEMO_PERSONA, image=image)
    code = f"from card_emulator import Card; Card.open({str(image)!r})"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "another process" in result.stderr
    card.close()
    Card.open(image).close()


def test_image_of_another_persona_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    other = tmp_path / "other.toml"
    other.write_text(DEMO_PERSONA.read_text(encoding="utf-8").replace("2285", "1111"), "utf-8")
    with pytest.raises(ImageError, match="different persona"):
        Card.from_persona(other, image=image)


def test_garbage_file_is_not_an_image(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(ImageError):
        Card.open(junk)
    with pytest.raises(ImageError, match="no card image"):
        Card.open(tmp_path / "missing.sqlite")


def test_integrity_and_no_secret_in_plain_meta(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    store = SqliteImage.create(image, Card.from_persona(DEMO_PERSONA).content)
    assert store.integrity_check() == "ok"
    store.close()


KILL_CHILD = textwrap.dedent(
    """
    import sys, time
    from card_emulator import Card
    card = Card.open(sys.argv[1])
    card.transmit(bytes.fromhex("00A4040C0AD392F000260100000001"))
    response = card.transmit(bytes.fromhex("002000980439393939"))
    print(response.hex(), flush=True)
    time.sleep(60)
    """
)


def test_failed_verify_survives_sigkill(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    for expected in ("63c2", "63c1"):
        child = subprocess.Popen(
            [sys.executable, "-c", KILL_CHILD, str(image)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == expected  # the response was seen...
        os.kill(child.pid, signal.SIGKILL)  # ...then the process dies without any cleanup
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
    with Card.open(image) as card:
        exchange(card, SELECT_JPKI)
        assert exchange(card, "00200098") == (b"", 0x63C1)


def test_write_makes_an_image_without_opening_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SqliteImage.write`` (bulk issuance): the image ``create`` makes, not left open; 0600,
    in WAL mode as the card opens it, no temporary or journal file left; a failure leaves
    nothing."""
    with Card.from_persona(DEMO_PERSONA) as card:
        content = card.content
    path = tmp_path / "written.sqlite"
    SqliteImage.write(path, content)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["written.sqlite"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes()[18:20] == b"\x02\x02"  # the header's WAL mode
    with pytest.raises(ImageError, match="already exists"):
        SqliteImage.write(path, content)
    image, loaded = SqliteImage.open(path)  # checks every integrity code
    image.close()
    assert loaded.meta == content.meta and loaded.atr == content.atr
    assert [a.files for a in loaded.applications] == [a.files for a in content.applications]

    def broken(_tmp: Path, _content: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image_module, "_write_new", broken)
    with pytest.raises(ImageError, match=r"cannot write the card image \(No space left"):
        SqliteImage.write(tmp_path / "full.sqlite", content)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["written.sqlite"]
