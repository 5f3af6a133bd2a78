"""``CertificateDatabase.deferred``: a batch of certificates recorded in one transaction."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jpki.database import IN_MEMORY, CertificateDatabase, DuplicateSerialError
from jpki.names import NameStyle, Tree
from jpki.revocation import EventKind, RevocationEvent, RevocationReason

KEY = ec.generate_private_key(ec.SECP256R1())
START = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
AT = dt.datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def _certificate(serial: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"card {serial}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=3650))
        .sign(KEY, hashes.SHA256())
    )


def _record(database: CertificateDatabase, serial: int, persona: str = "card") -> object:
    return database.record(
        _certificate(serial),
        persona=persona,
        style=NameStyle.TEST,
        tree=Tree.AUTH,
        generation=1,
        recorded_at=AT,
    )


def _rows(path: Path) -> int:
    """The certificates another connection (another process) sees."""
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM certificates").fetchone()[0])


def test_a_block_writes_its_certificates_together_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "certificates.sqlite"
    database = CertificateDatabase(path)
    outside = _record(database, 1)
    with database.deferred():
        inside = [_record(database, serial, f"card-{serial}") for serial in range(2, 12)]
        assert _rows(path) == 1  # nothing written yet
    assert _rows(path) == 11
    # what record() returned in the block is what the database holds (and what it returns
    # outside a block): times to the second, no events
    assert inside == [database.get("test-auth-g1", serial) for serial in range(2, 12)]
    assert outside == database.get("test-auth-g1", 1)
    assert [r.persona for r in database.find()] == ["card", *(f"card-{n}" for n in range(2, 12))]


def test_the_thread_sees_its_own_certificates(tmp_path: Path) -> None:
    path = tmp_path / "certificates.sqlite"
    database = CertificateDatabase(path)
    with database.deferred():
        record = _record(database, 7, "seven")
        found = database.find(persona="seven")  # a read writes the batch first
        assert [r.serial for r in found] == [7] and _rows(path) == 1
        database.add_event(  # revoking a certificate of the block works too
            "test-auth-g1",
            7,
            RevocationEvent(EventKind.REVOKE, START, RevocationReason.KEY_COMPROMISE),
            recorded_at=AT,
        )
        _record(database, 8)
    assert record is not None and _rows(path) == 2
    assert database.get("test-auth-g1", 7).events[0].kind is EventKind.REVOKE  # type: ignore[union-attr]


def test_other_threads_see_them_when_the_block_ends(tmp_path: Path) -> None:
    database = CertificateDatabase(tmp_path / "certificates.sqlite")
    seen: list[int] = []
    with database.deferred():
        _record(database, 1)
        reader = threading.Thread(target=lambda: seen.append(len(database.find())))
        reader.start()
        reader.join()
    assert seen == [0] and len(database.find()) == 1


def test_a_taken_serial_is_refused_at_once(tmp_path: Path) -> None:
    database = CertificateDatabase(tmp_path / "certificates.sqlite")
    _record(database, 5)
    with database.deferred():
        with pytest.raises(DuplicateSerialError, match="serial 5 is already recorded"):
            _record(database, 5)  # recorded before the block
        _record(database, 6)
        with pytest.raises(DuplicateSerialError, match="serial 6 is already recorded"):
            _record(database, 6)  # kept by the block
    assert sorted(r.serial for r in database.find()) == [5, 6]


def test_a_serial_recorded_meanwhile_fails_the_whole_batch(tmp_path: Path) -> None:
    path = tmp_path / "certificates.sqlite"
    database = CertificateDatabase(path)
    other = CertificateDatabase(path)  # another process, as far as the block can tell
    taken = r"serial 3 .* none of the 2 certificate"
    with pytest.raises(DuplicateSerialError, match=taken), database.deferred():
        _record(database, 2)
        _record(database, 3)
        _record(other, 3)
    assert [r.serial for r in database.find()] == [3]  # only the other one's


def test_an_exception_still_records_what_was_issued(tmp_path: Path) -> None:
    database = CertificateDatabase(tmp_path / "certificates.sqlite")
    with pytest.raises(RuntimeError, match="a card failed"), database.deferred():
        _record(database, 1)
        raise RuntimeError("a card failed")
    assert [r.serial for r in database.find()] == [1]


def test_nested_blocks_are_one_and_memory_works_alike(tmp_path: Path) -> None:
    path = tmp_path / "certificates.sqlite"
    for database in (CertificateDatabase(path), CertificateDatabase(IN_MEMORY)):
        with database.deferred():
            _record(database, 1)
            with database.deferred():
                _record(database, 2)
            if database.path == path:
                assert _rows(path) == 0  # the inner block's end writes nothing
            assert database.find(serial=2)
            _record(database, 3)
        assert [r.serial for r in database.find()] == [1, 2, 3]
        database.flush()  # outside a block: nothing to do
