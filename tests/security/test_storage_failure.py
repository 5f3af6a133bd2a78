"""Storage failures never give back a try and never tell a right PIN from a wrong one.

Three kinds of failure: a write refused at every write point of VERIFY and CHANGE REFERENCE
DATA (injected into a real SQLite image), a full filesystem and an unwritable image (a small
tmpfs mounted by the test where the machine allows it). Also: images are created ``0600`` and an
image edited behind the card's back is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from card_emulator import Card, ImageError
from card_emulator.image import SqliteImage, StorageError
from card_emulator.objects import Credential
from tests.conftest import DEMO_PERSONA

SELECT_JPKI = "00A4040C0AD392F000260100000001"
AUTH = ("jpki", 0x18)
SIGN = ("jpki", 0x1B)
MEMORY_FAILURE = 0x6581


class FailingStore:
    """A real image whose ``fail_at``-th credential write (and every later one) fails."""

    def __init__(self, image: SqliteImage, fail_at: int) -> None:
        self.image = image
        self.fail_at = fail_at
        self.writes = 0

    def save_credential(self, app: str, credential: Credential) -> None:
        self.writes += 1
        if self.writes >= self.fail_at:
            raise StorageError("injected: disk full")
        self.image.save_credential(app, credential)

    def close(self) -> None:
        self.image.close()


def sw(card: Card, hex_apdu: str) -> int:
    return int.from_bytes(card.transmit(bytes.fromhex(hex_apdu))[-2:], "big")


def counters(image: Path) -> dict[tuple[str, int], tuple[int, bytes]]:
    store, content = SqliteImage.open(image)
    store.close()
    return {
        key: (c.remaining, c.value)
        for key in (AUTH, SIGN)
        for c in [content.application(key[0]).credentials[key[1]]]
    }


# (command, is a credential command, answer without failure, writes it makes)
SCRIPT: list[tuple[str, str, int, int]] = [
    ("select JPKI", SELECT_JPKI, 0x9000, 0),
    ("select 0018", "00A4020C020018", 0x9000, 0),
    ("wrong PIN", "002000800439393939", 0x63C2, 1),
    ("right PIN", "002000800431323334", 0x9000, 2),
    ("change PIN", "002401800435363738", 0x9000, 1),
    ("new PIN", "002000800435363738", 0x9000, 2),
    ("select 001B", "00A4020C02001B", 0x9000, 0),
    ("wrong password", "0020008006414243313234", 0x63C4, 1),
]
WRITE_POINTS = sum(writes for *_, writes in SCRIPT)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = tmp_path_factory.mktemp("pristine") / "card.sqlite"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    return image


def failing_card(pristine: Path, tmp_path: Path, fail_at: int) -> tuple[Path, Card]:
    """A copy of the pristine image, served through a store whose ``fail_at``-th write fails."""
    image = tmp_path / "card.sqlite"
    shutil.copy(pristine, image)
    store, content = SqliteImage.open(image)
    return image, Card(content, FailingStore(store, fail_at), strict=True)


def _model(until: int) -> dict[tuple[str, int], tuple[int, bytes]]:
    """Counters and values after the first ``until`` script steps succeeded."""
    state = {AUTH: (3, b"1234"), SIGN: (5, b"ABC123")}
    effects = {
        "wrong PIN": (AUTH, 2, None),
        "right PIN": (AUTH, 3, None),
        "change PIN": (AUTH, 3, b"5678"),
        "new PIN": (AUTH, 3, None),
        "wrong password": (SIGN, 4, None),
    }
    for name, *_ in SCRIPT[:until]:
        if name in effects:
            key, left, value = effects[name]
            state[key] = (left, value or state[key][1])
    return state


@pytest.mark.parametrize("fail_at", range(1, WRITE_POINTS + 1))
def test_a_failed_write_at_every_point_spends_and_reveals_nothing(
    pristine: Path, tmp_path: Path, fail_at: int
) -> None:
    image, card = failing_card(pristine, tmp_path, fail_at)
    writes = 0
    for step, (name, apdu, answer, step_writes) in enumerate(SCRIPT):
        if writes + step_writes < fail_at:
            assert sw(card, apdu) == answer, name
            writes += step_writes
            continue
        # this step hits the failing write
        assert sw(card, apdu) == MEMORY_FAILURE, name
        failed_step, point_in_step = step, fail_at - writes
        break
    else:  # pragma: no cover - every fail_at lands in the script
        pytest.fail("no write failed")
    # every credential command is refused from now on, reads still work
    assert sw(card, "00200080") == MEMORY_FAILURE
    assert sw(card, "002000800431323334") == MEMORY_FAILURE
    assert sw(card, "002401800435363738") == MEMORY_FAILURE
    assert sw(card, "00A4020C02000A") == 0x9000
    assert sw(card, "00B0000004") == 0x9000
    card.reset()
    assert sw(card, SELECT_JPKI) == 0x9000
    assert sw(card, "00A4020C020018") == 0x9000
    assert sw(card, "00200080") == MEMORY_FAILURE  # a reset does not clear it; reopening does
    card.close()
    # on disk: the state before the failing step, or for a right VERIFY whose restore failed,
    # one try spent — never a try given back, never a change that was not stored
    on_disk = counters(image)
    before = _model(failed_step)
    name = SCRIPT[failed_step][0]
    if name in ("right PIN", "new PIN") and point_in_step == 2:
        key = AUTH
        before = {**before, key: (before[key][0] - 1, before[key][1])}
    assert on_disk == before, (name, point_in_step)
    with Card.open(image) as reopened:  # reopening the (now writable) image clears the refusal
        assert sw(reopened, SELECT_JPKI) == 0x9000
        assert sw(reopened, "00A4020C020018") == 0x9000
        assert sw(reopened, "00200080") == 0x63C0 | on_disk[AUTH][0]


@pytest.mark.parametrize("step", ["right PIN", "wrong PIN"])
def test_right_and_wrong_values_get_the_same_answer_when_storage_fails(
    pristine: Path, tmp_path: Path, step: str
) -> None:
    image, card = failing_card(pristine, tmp_path, 1)
    assert sw(card, SELECT_JPKI) == 0x9000
    assert sw(card, "00A4020C020018") == 0x9000
    value = "31323334" if step == "right PIN" else "39393939"
    assert sw(card, "0020008004" + value) == MEMORY_FAILURE
    card.close()
    assert counters(image)[AUTH] == (3, b"1234")  # nothing spent, nothing learned


# --- real filesystems ------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh directory, or a skip with the reason."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    where = tmp_path / f"fs-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    with contextlib.suppress(OSError), filler.open("ab") as out:
        while True:
            out.write(b"\0")
            out.flush()
    return filler


def test_a_full_filesystem_gives_back_no_try(pristine: Path, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "4m") as fs:
        image = fs / "card.sqlite"
        shutil.copy(pristine, image)
        for value in ("31323334", "39393939"):  # right, then wrong: the same answer
            with Card.open(image) as card:
                filler = fill(fs)
                assert sw(card, SELECT_JPKI) == 0x9000
                assert sw(card, "00A4020C020018") == 0x9000
                assert sw(card, "0020008004" + value) == MEMORY_FAILURE
                assert sw(card, "002000800431323334") == MEMORY_FAILURE
            filler.unlink()
            assert counters(image)[AUTH] == (3, b"1234")
        with Card.open(image) as card:  # with space again the card works and counts
            assert sw(card, SELECT_JPKI) == 0x9000
            assert sw(card, "00A4020C020018") == 0x9000
            assert sw(card, "002000800439393939") == 0x63C2
        fill(fs)
        with pytest.raises(ImageError, match="cannot be written"):
            Card.open(image)  # a full disk refuses at open too
        assert counters_readonly(image)[AUTH] == 2


def counters_readonly(image: Path) -> dict[tuple[str, int], int]:
    db = sqlite3.connect(f"file:{image}?immutable=1", uri=True)  # even on a read-only mount
    try:
        rows = db.execute("SELECT app, fid, remaining FROM credentials").fetchall()
    finally:
        db.close()
    return {(app, fid): left for app, fid, left in rows}


def test_an_unwritable_image_is_refused_with_a_clear_message(
    pristine: Path, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path, "4m") as fs:
        image = fs / "card.sqlite"
        shutil.copy(pristine, image)
        if subprocess.run(["chattr", "+i", str(image)], check=False).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        try:
            with pytest.raises(ImageError, match="cannot be written") as caught:
                Card.open(image)
            assert "another process" not in str(caught.value)
        finally:
            subprocess.run(["chattr", "-i", str(image)], check=False)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        with pytest.raises(ImageError, match="cannot be written") as caught:
            Card.open(image)
        assert "another process" not in str(caught.value)
        assert counters_readonly(image)[AUTH] == 3


# --- secrets at rest ---------------------------------------------------------------------------


def test_images_are_created_0600(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    old = os.umask(0)
    try:
        Card.from_persona(DEMO_PERSONA, image=image).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    with Card.open(image) as card:  # the WAL and shared-memory files too
        assert sw(card, SELECT_JPKI) == 0x9000
        for extra in tmp_path.glob("card.sqlite-*"):
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            "UPDATE credentials SET remaining = 3 WHERE app = 'jpki' AND fid = 24",
            "credential 0018 of jpki was modified",
        ),
        ("UPDATE credentials SET value = X'30303030' WHERE fid = 24", "credential 0018"),
        ("UPDATE applications SET rules = '{}' WHERE name = 'jpki'", "modified outside"),
        ("UPDATE files SET content = X'00' WHERE app = 'jpki' AND fid = 10", "modified outside"),
        ("UPDATE meta SET value = 'JPKIAPGPSETOKEN' WHERE key = 'token'", "modified outside"),
    ],
)
def test_an_image_edited_behind_the_cards_back_is_refused(
    pristine: Path, tmp_path: Path, edit: str, message: str
) -> None:
    image = tmp_path / "card.sqlite"
    shutil.copy(pristine, image)
    with Card.open(image) as card:  # spend a try the honest way first
        sw(card, SELECT_JPKI)
        sw(card, "00A4020C020018")
        assert sw(card, "002000800439393939") == 0x63C2
    db = sqlite3.connect(image)
    db.execute(edit)
    db.commit()
    db.close()
    with pytest.raises(ImageError, match=message):
        Card.open(image)
