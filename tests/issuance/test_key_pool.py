"""``mynacard key-pool`` and ``mynacard issue --key-pool``: keys generated ahead, each used once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apdu.vocabulary import Jpki, Text
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.default_pki import pki_store
from harness.issuance import cli as issue_cli
from harness.issuance import engine as issuance
from harness.issuance import keypool
from harness.issuance.personas import IssueError
from tests.conftest import ROOT

MASTER_KEYS = 130
"""Keys generated once for the module; each test copies the ones it needs into its own pool."""


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = issue_cli.main(list(argv))
    return status, out.getvalue(), err.getvalue()


def _public(der: bytes) -> bytes:
    key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )


def _card_public(card: Card, application: str, fid: int) -> bytes:
    key = card.content.application(application).keys[fid].public_key
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _pool_publics(pool: Path) -> dict[str, bytes]:
    return {path.name: _public(path.read_bytes()) for path in keypool.pool_keys(pool)}


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pool = tmp_path_factory.mktemp("master") / "pool"
    keypool.generate(pool, MASTER_KEYS, jobs=2)
    return pool


def _pool(master: Path, directory: Path, count: int, skip: int = 0) -> Path:
    """A private pool with ``count`` of the master's keys (from the ``skip``-th one)."""
    directory.mkdir(mode=0o700)
    for path in sorted(master.iterdir())[skip : skip + count]:
        shutil.copy(path, directory / path.name)
    return directory


def _issued_jpki_keys(out: Path) -> list[bytes]:
    index = json.loads((out / "index.json").read_text("utf-8"))
    keys: list[bytes] = []
    for entry in index["cards"]:
        with Card.from_persona(out / entry["persona"], image=out / entry["image"]) as card:
            keys.append(_card_public(card, "jpki", Jpki.KEY_AUTH))
            keys.append(_card_public(card, "jpki", Jpki.KEY_SIGN))
    return keys


def test_key_pool_files_modes_and_top_up(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    status, out, err = _cli("key-pool", "--out", str(pool), "--count", "4", "--jobs", "2")
    assert status == 0, err
    assert "generated 4 key(s)" in out and "keys/s" in out and "holds 4 key(s)" in out
    assert err == ""  # not a terminal: no progress bar
    assert stat.S_IMODE(pool.stat().st_mode) == 0o700
    files = sorted(pool.iterdir())
    assert len(files) == 4
    for path in files:
        assert keypool.KEY_NAME.fullmatch(path.name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = serialization.load_der_private_key(path.read_bytes(), None)  # full OpenSSL check
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
        assert keypool.load_key(path)[0].key_size == 2048
    (pool / ".tmp-0123").write_bytes(b"half a key")  # left by a killed run: removed, never used
    os.utime(pool / ".tmp-0123", (0, 0))
    (pool / ".tmp-4567").write_bytes(b"being written")  # by a run writing now: left alone
    stale = pool / ".reserved-999999999-ab12"  # a killed run's reservation (no such process)
    stale.mkdir(mode=0o700)
    files[0].rename(stale / files[0].name)
    assert keypool.count_keys(pool) == 3
    status, out, _ = _cli("key-pool", "--out", str(pool), "--count", "2", "--jobs", "1")
    assert status == 0 and "holds 6 key(s)" in out  # 3 + 2 new + 1 put back
    assert len(set(_pool_publics(pool).values())) == 6
    assert not (pool / ".tmp-0123").exists() and not stale.exists()
    assert (pool / ".tmp-4567").exists()


def test_key_pool_refuses_a_shared_directory(tmp_path: Path) -> None:
    pool = tmp_path / "open"
    pool.mkdir(mode=0o755)
    pool.chmod(0o755)
    status, _, err = _cli("key-pool", "--out", str(pool), "--count", "1")
    assert status == 2 and "accessible to other users (mode 0755)" in err
    assert list(pool.iterdir()) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar() -> None:
    terminal = _Terminal()
    bar = issue_cli.Progress(10, terminal, verb="generating", unit="keys")
    bar.update(3)
    bar.update(10)
    bar.close()
    text = terminal.getvalue()
    assert "generating [" in text and "3/10" in text and "10/10" in text
    assert "keys/s" in text and "ETA" in text and text.endswith("\r\x1b[K")
    quiet = _Terminal()
    bar = issue_cli.Progress(10, quiet, quiet=True)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""
    pipe = io.StringIO()
    bar = issue_cli.Progress(10, pipe)
    bar.update(10)
    assert pipe.getvalue() == ""


def test_issue_from_a_pool_uses_each_key_once(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 110)
    before = _pool_publics(pool)
    out = tmp_path / "cards"
    argv = ["issue", "--count", "50", "--out", str(out), "--jobs", "2", "--key-pool", str(pool)]
    status, stdout, err = _cli(*argv)
    assert status == 0, err
    assert "100 key(s) taken from" in stdout
    after = _pool_publics(pool)
    assert len(after) == 10 and sorted(p.name for p in pool.iterdir()) == sorted(after)
    used = _issued_jpki_keys(out)
    assert len(used) == 100 and len(set(used)) == 100  # no two cards (or card keys) share one
    consumed = {before[name] for name in before.keys() - after.keys()}
    assert set(used) == consumed  # the cards hold exactly the keys that left the pool


def test_unique_keys_take_all_six_from_the_pool(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 12)
    before = set(_pool_publics(pool).values())
    out = tmp_path / "cards"
    argv = ["--count", "2", "--out", str(out), "--jobs", "1", "--key-pool", str(pool)]
    status, _, err = _cli("issue", *argv, "--unique-keys")
    assert status == 0, err
    assert list(pool.iterdir()) == []
    index = json.loads((out / "index.json").read_text("utf-8"))
    keys: set[bytes] = set()
    for entry in index["cards"]:
        with Card.from_persona(out / entry["persona"], image=out / entry["image"]) as card:
            keys.add(_card_public(card, "jpki", Jpki.KEY_AUTH))
            keys.add(_card_public(card, "jpki", Jpki.KEY_SIGN))
            keys.add(_card_public(card, "text", Text.KEY))
    assert len(keys) == 6 and keys <= before


def test_a_pool_too_small_changes_nothing(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 5)
    before = sorted(p.name for p in pool.iterdir())
    out = tmp_path / "cards"
    status, stdout, err = _cli("issue", "--count", "3", "--out", str(out), "--key-pool", str(pool))
    assert status == 2 and stdout == ""
    assert f"key pool {pool} holds 5 key(s); this run needs 6 (2 JPKI keys for each of 3" in err
    assert sorted(p.name for p in pool.iterdir()) == before
    assert not out.exists()
    status, _, err = _cli(
        "issue", "--count", "1", "--out", str(out), "--key-pool", str(pool), "--unique-keys"
    )
    assert status == 2 and "holds 5 key(s); this run needs 6 (all six keys" in err
    assert sorted(p.name for p in pool.iterdir()) == before and not out.exists()


def test_a_pool_is_refused_for_cards_whose_jpki_keys_are_not_rsa(
    master: Path, tmp_path: Path
) -> None:
    pool = _pool(master, tmp_path / "pool", 4)
    before = sorted(p.name for p in pool.iterdir())
    out = tmp_path / "cards"
    status, stdout, err = _cli(
        "issue", "--count", "2", "--out", str(out), "--key-pool", str(pool),
        "--profile", "next-generation",
    )  # fmt: skip
    assert status == 2 and stdout == ""
    assert "--key-pool: the cards' JPKI keys are ecdsa-p384 (profile next-generation)" in err
    assert sorted(p.name for p in pool.iterdir()) == before  # no key taken, none wasted
    assert not out.exists()


def test_a_file_that_is_not_a_key_is_named(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 3)
    out = tmp_path / "cards"
    (pool / "notes.txt").write_text("hello\n")
    status, _, err = _cli("issue", "--count", "1", "--out", str(out), "--key-pool", str(pool))
    assert status == 2 and f"{pool / 'notes.txt'} is not a key file" in err
    (pool / "notes.txt").unlink()
    fake = pool / f"key-{'0' * 32}.der"
    fake.write_bytes(b"\x30\x03\x02\x01\x00")
    before = sorted(p.name for p in pool.iterdir())  # 4 files: the run needs all of them
    status, _, err = _cli("issue", "--count", "2", "--out", str(out), "--key-pool", str(pool))
    assert status == 2 and f"{fake}: not a PKCS#8 DER private key" in err
    assert sorted(p.name for p in pool.iterdir()) == before  # every reserved key put back
    assert not out.exists()


def test_concurrent_runs_never_share_a_key(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 24)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "harness.issuance.cli", "issue", "--count", "6", "--jobs", "2"]
    runs = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / name), "--key-pool", str(pool), "--prefix", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert list(pool.iterdir()) == []
    keys = _issued_jpki_keys(tmp_path / "a") + _issued_jpki_keys(tmp_path / "b")
    assert len(keys) == 24 and len(set(keys)) == 24


def test_reservations_race_without_sharing(master: Path, tmp_path: Path) -> None:
    pool = _pool(master, tmp_path / "pool", 20)
    reservations = [keypool.Reservation(pool) for _ in range(8)]
    failures: list[str] = []
    start = threading.Barrier(len(reservations))

    def take(reservation: keypool.Reservation) -> None:
        start.wait()
        try:
            reservation.take(3, "a test")
        except IssueError as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=take, args=(r,)) for r in reservations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = [der for r in reservations for _, der in r.keys]
    assert len(reservations) - len(failures) == 6 and len(taken) == 18
    assert len(set(taken)) == 18
    assert all("holds" in message and "needs 3" in message for message in failures)
    assert len(keypool.pool_keys(pool)) == 2
    for reservation in reservations:
        reservation.release()
    assert len(keypool.pool_keys(pool)) == 20 and sorted(p.name for p in pool.iterdir()) == sorted(
        p.name for p in keypool.pool_keys(pool)
    )


def test_check_key_rejects_a_damaged_key(master: Path) -> None:
    path = sorted(master.iterdir())[0]
    key, _ = keypool.load_key(path)
    assert keypool.check_key(key) is None
    numbers = key.private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d + 2,
        numbers.dmp1,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    assert keypool.check_key(damaged) == "an inconsistent RSA key"


def test_a_run_that_stops_returns_the_keys_it_did_not_use(
    master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _pool(master, tmp_path / "pool", 10)
    real = personalize

    def failing(persona: persona_module.Persona, **kwargs: Any) -> Any:
        if persona.label == "demo-0002":
            raise persona_module.PersonaError("certificates.issued: planted failure")
        return real(persona, **kwargs)

    monkeypatch.setattr(issuance, "personalize", failing)  # jobs 1: in this process
    argv = ["--count", "4", "--out", str(tmp_path / "cards"), "--jobs", "1"]
    status, _, err = _cli("issue", *argv, "--key-pool", str(pool))
    assert status == 2 and "card demo-0002: certificates.issued: planted failure" in err
    # Card 1 used 2 keys, card 2 took (and deleted) its 2 before failing; cards 3-4's 4 keys
    # and the 2 the run never reserved are in the pool again, and no reservation is left.
    assert len(keypool.pool_keys(pool)) == 6
    assert sorted(p.name for p in pool.iterdir()) == sorted(p.name for p in keypool.pool_keys(pool))


def test_a_failure_inside_a_batch_keeps_the_cards_made_before_it(
    master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers make cards in batches (12 cards, 1 job: cards 1-3, then 4-5, ...) whose
    certificates are recorded together before the cards are written: card 5 failing in the
    second batch still leaves cards 1-4 written, with their certificates in the PKI, and the
    cards after it never started (their keys back in the pool)."""
    pool = _pool(master, tmp_path / "pool", 24)
    real = personalize

    def failing(persona: persona_module.Persona, **kwargs: Any) -> Any:
        if persona.label == "batch-0005":
            raise persona_module.PersonaError("certificates.issued: planted failure")
        return real(persona, **kwargs)

    monkeypatch.setattr(issuance, "personalize", failing)  # jobs 1: in this process
    out = tmp_path / "cards"
    argv = ["--count", "12", "--out", str(out), "--jobs", "1", "--prefix", "batch"]
    status, _, err = _cli("issue", *argv, "--key-pool", str(pool))
    assert status == 2 and "card batch-0005: certificates.issued: planted failure" in err
    assert "4 card(s) were issued" in err
    made = [f"batch-{n:04d}" for n in range(1, 5)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{label}{suffix}" for label in made for suffix in (".toml", ".sqlite")
    )
    for label in made:
        with Card.from_persona(out / f"{label}.toml", image=out / f"{label}.sqlite") as card:
            serial = card.content.meta["auth_certificate_serial"]
        recorded = pki_store().certificates(persona=label)
        assert len(recorded) == 2 and f"{recorded[0].serial:X}" == serial
    assert len(keypool.pool_keys(pool)) == 24 - 2 * 5  # cards 1-5 took theirs; 6-12 did not


def test_a_thousand_cards_get_two_thousand_distinct_pool_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's check at full size for the run's key handling, without 2,000 RSA key
    generations: a 1,000-card run reserves 2,000 pool files and gives each to exactly one card
    (``bench/run.py`` section 5 issues 1,000 real cards from a pool and counts the distinct
    public keys in their 2,000 certificates)."""
    pool = tmp_path / "pool"
    pool.mkdir(mode=0o700)
    for number in range(2000):
        (pool / f"key-{number:032x}.der").write_bytes(number.to_bytes(2, "big"))

    def stand_in(path: Path, der: bytes | None = None, *, name: Path | None = None) -> Any:
        return None, path.read_bytes()

    monkeypatch.setattr(keypool, "load_key", stand_in)  # the files are not keys
    options = issuance.IssueOptions(count=1000, out=tmp_path / "cards", key_pool=pool)
    _, tables, prefix = issuance._load_base(options)
    reservation = keypool.Reservation(pool)
    reservation.take(*issuance._pool_needs(options))
    assert keypool.count_keys(pool) == 0
    jobs = issuance._assign_keys(issuance._plan(options, tables, prefix), options, reservation)
    assert len(jobs) == 1000
    purposes = {tuple(purpose for purpose, _, _ in job.keys) for job in jobs}
    assert purposes == {("jpki_auth", "jpki_sign")}
    paths = [path for job in jobs for _, path, _ in job.keys]
    contents = {der for job in jobs for _, _, der in job.keys}
    assert len(set(paths)) == 2000 and len(contents) == 2000
    assert reservation.release() == 2000 and keypool.count_keys(pool) == 2000


def test_key_deletions_are_synced_before_the_cards_are_written(
    master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash must not put a key that is in a card back into the pool: each batch's key
    deletions are synced (its reservation directory) before the batch's cards are written."""
    pool = _pool(master, tmp_path / "pool", 8)
    out = tmp_path / "cards"
    calls: list[tuple[list[str], list[str]]] = []
    real = keypool.sync_consumed

    def watching(directories: Any) -> None:
        directories = list(directories)
        calls.append(
            ([Path(d).name for d in directories], sorted(p.name for p in out.glob("*.sqlite")))
        )
        real(directories)

    monkeypatch.setattr(keypool, "sync_consumed", watching)  # jobs 1: in this process
    argv = ["--count", "4", "--out", str(out), "--jobs", "1", "--prefix", "synced"]
    status, _, err = _cli("issue", *argv, "--key-pool", str(pool))
    assert status == 0, err
    written = [f"synced-{n:04d}.sqlite" for n in range(1, 5)]
    assert [images for _, images in calls] == [written[:n] for n in range(4)]  # batches of 1
    assert all(len(names) == 1 and names[0].startswith(".reserved-") for names, _ in calls)
    assert sorted(p.name for p in pool.iterdir()) == sorted(p.name for p in pool.glob("key-*"))
