"""The issued-certificate database of a test PKI: one SQLite file in the PKI's state directory,
or a SQLite database in memory (:data:`IN_MEMORY`) for a PKI that writes nothing to disk.

Two tables: ``certificates`` (one row per issued user certificate: issuing CA generation, serial,
persona label, validity, DER) and ``events`` (revoke / hold / release, each effective at a
moment). A certificate's state at any moment is computed from its events by
:func:`jpki.revocation.certificate_status`, never stored, so time travel stays consistent.

On a file, each call opens its own connection (cheap, and safe across threads and processes);
in memory, every call uses the database's one connection, one thread at a time (a lock). Writes
that check before they change run in one ``BEGIN IMMEDIATE`` transaction.

Bulk issuance records many certificates in a row: inside :meth:`CertificateDatabase.deferred`,
a thread's :meth:`~CertificateDatabase.record` checks the serial and keeps the row, and the rows
are written together, in one transaction, when the block ends (or before anything else this
thread asks of the database, so it always sees its own certificates). One connection and one
commit for a batch of cards instead of two connections and a commit per certificate.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from jpki.names import NameStyle, Tree
from jpki.revocation import (
    CertificateStatus,
    EventKind,
    RevocationEvent,
    RevocationReason,
    certificate_status,
    check_new_event,
)

__all__ = [
    "IN_MEMORY",
    "CertificateDatabase",
    "CertificateRecord",
    "DuplicateSerialError",
    "authority_id",
]

IN_MEMORY = ":memory:"
"""The path that makes a :class:`CertificateDatabase` live in this process's memory only."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (
    authority   TEXT NOT NULL,      -- e.g. test-auth-g3
    serial      TEXT NOT NULL,      -- uppercase hex, no leading zeros
    persona     TEXT NOT NULL,      -- persona label
    style       TEXT NOT NULL,
    tree        TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    not_before  TEXT NOT NULL,      -- ISO 8601, UTC, seconds
    not_after   TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    der         BLOB NOT NULL,
    PRIMARY KEY (authority, serial)
);
CREATE INDEX IF NOT EXISTS certificates_by_persona ON certificates (persona, tree);
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    authority   TEXT NOT NULL,
    serial      TEXT NOT NULL,
    kind        TEXT NOT NULL,      -- revoke | hold | release
    at          TEXT NOT NULL,      -- when it takes effect
    reason      TEXT,               -- RFC 5280 name, revoke only
    recorded_at TEXT NOT NULL,
    FOREIGN KEY (authority, serial) REFERENCES certificates (authority, serial)
);
CREATE INDEX IF NOT EXISTS events_by_certificate ON events (authority, serial);
"""


class DuplicateSerialError(ValueError):
    """A certificate whose serial is already recorded for its CA generation."""


def authority_id(style: NameStyle, tree: Tree, generation: int) -> str:
    """``test-auth-g3``: the name of one CA generation in files, URLs and the database."""
    return f"{style.value}-{tree.value}-g{generation}"


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@dataclass(frozen=True)
class CertificateRecord:
    """One issued user certificate and its revocation history."""

    authority: str
    serial: int
    persona: str
    style: NameStyle
    tree: Tree
    generation: int
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    recorded_at: dt.datetime
    der: bytes = field(repr=False)
    events: tuple[RevocationEvent, ...] = ()

    @property
    def serial_hex(self) -> str:
        """The serial number in uppercase hex (as the card's metadata and ``openssl`` show it)."""
        return f"{self.serial:X}"

    def certificate(self) -> x509.Certificate:
        """The certificate itself."""
        return x509.load_der_x509_certificate(self.der)

    def status(self, moment: dt.datetime) -> CertificateStatus:
        """The state of this certificate at ``moment``."""
        return certificate_status(self.not_before, self.not_after, self.events, moment)


_COLUMNS = (
    "authority, serial, persona, style, tree, generation, subject, not_before, not_after, "
    "recorded_at, der"
)
_INSERT = f"INSERT INTO certificates ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608
_EXISTS = "SELECT 1 FROM certificates WHERE authority = ? AND serial = ?"

_Row = tuple[str, str, str, str, str, int, str, str, str, str, bytes]
"""A ``certificates`` row in :data:`_COLUMNS` order."""


def _record_from_row(
    row: Sequence[object], events: tuple[RevocationEvent, ...] = ()
) -> CertificateRecord:
    authority, serial, persona, style, tree, generation, subject, *times, der = row
    not_before, not_after, recorded_at = (_parse_time(str(text)) for text in times)
    assert isinstance(generation, int) and isinstance(der, bytes)
    return CertificateRecord(
        authority=str(authority),
        serial=int(str(serial), 16),
        persona=str(persona),
        style=NameStyle(style),
        tree=Tree(tree),
        generation=generation,
        subject=str(subject),
        not_before=not_before,
        not_after=not_after,
        recorded_at=recorded_at,
        der=der,
        events=events,
    )


@dataclass
class _Deferred:
    """One thread's :meth:`CertificateDatabase.deferred` block: its connection and its rows."""

    connection: sqlite3.Connection | None
    rows: list[_Row] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)


class CertificateDatabase:
    """The SQLite file of one PKI state directory, or (``path`` :data:`IN_MEMORY`) memory."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()
        self._local = threading.local()  # this thread's deferred block (a _Deferred), if any
        if isinstance(path, str) and path == IN_MEMORY:
            # one connection: each connection to ":memory:" would be a database of its own
            self._memory = sqlite3.connect(IN_MEMORY, isolation_level=None, check_same_thread=False)
            self._memory.execute("PRAGMA foreign_keys=ON")
            weakref.finalize(self, self._memory.close)
        with self._connect() as connection:
            if self._memory is None:
                connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._memory is not None:
            with self._memory_lock:  # the connection serves one thread at a time
                yield self._memory
            return
        block: _Deferred | None = getattr(self._local, "block", None)
        if block is not None and block.connection is not None:
            yield block.connection  # the deferred block's own, closed when it ends
            return
        connection = self._open()
        try:
            yield connection
        finally:
            connection.close()

    # --- deferred recording -----------------------------------------------------------------

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Record this thread's certificates together when the block ends (one transaction).

        Inside the block :meth:`record` checks the serial (against the database and the rows
        kept so far: a taken one is a :class:`DuplicateSerialError`, as outside) and keeps the
        row; any other call on this database from this thread first writes the rows kept, so
        the thread sees its own certificates. Other threads and processes see them once the
        block ends, or is flushed (:meth:`flush`). The rows are written when the block ends,
        whether by an exception or not (a certificate that was issued is recorded, as outside
        a block). A serial another process recorded meanwhile (a 2⁻⁶⁴ chance) fails the whole
        write with :class:`DuplicateSerialError`; nothing of it is recorded. Nested blocks
        are one block.
        """
        if getattr(self._local, "block", None) is not None:
            yield
            return
        self._local.block = _Deferred(None if self._memory is not None else self._open())
        try:
            yield
            self.flush()
        finally:
            block: _Deferred = self._local.block
            try:
                if block.rows:  # left by an exception: still recorded
                    self.flush()
            finally:
                self._local.block = None
                if block.connection is not None:
                    block.connection.close()

    def flush(self) -> None:
        """Write the rows this thread's :meth:`deferred` block has kept (nothing outside one)."""
        block: _Deferred | None = getattr(self._local, "block", None)
        if block is None or not block.rows:
            return
        rows, block.rows, block.keys = block.rows, [], set()
        try:
            with self._write() as connection:
                connection.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            with self._connect() as connection:
                taken = next(
                    (row for row in rows if connection.execute(_EXISTS, row[:2]).fetchone()),
                    rows[0],
                )
            raise DuplicateSerialError(
                f"serial {taken[1]} is already recorded for {taken[0]} (recorded meanwhile by "
                f"another process; none of the {len(rows)} certificate(s) written together "
                "was recorded)"
            ) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # --- certificates -----------------------------------------------------------------------

    def record(
        self,
        certificate: x509.Certificate,
        *,
        persona: str,
        style: NameStyle,
        tree: Tree,
        generation: int,
        recorded_at: dt.datetime,
    ) -> CertificateRecord:
        """Add an issued certificate (a serial already recorded for its CA is refused)."""
        authority = authority_id(style, tree, generation)
        row: _Row = (
            authority,
            f"{certificate.serial_number:X}",
            persona,
            style.value,
            tree.value,
            generation,
            certificate.subject.rfc4514_string(),
            _time(certificate.not_valid_before_utc),
            _time(certificate.not_valid_after_utc),
            _time(recorded_at),
            certificate.public_bytes(Encoding.DER),
        )
        block: _Deferred | None = getattr(self._local, "block", None)
        if block is not None:
            key = (authority, row[1])
            with self._connect() as connection:
                taken = key in block.keys or connection.execute(_EXISTS, key).fetchone()
            if taken:
                raise DuplicateSerialError(
                    f"serial {certificate.serial_number:X} is already recorded for {authority}"
                )
            block.rows.append(row)
            block.keys.add(key)
            return _record_from_row(row)
        with self._write() as connection:
            try:
                connection.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                raise DuplicateSerialError(
                    f"serial {certificate.serial_number:X} is already recorded for {authority}"
                ) from None
        found = self.get(authority, certificate.serial_number)
        assert found is not None
        return found

    def _events(
        self, connection: sqlite3.Connection, authority: str, serial: str
    ) -> tuple[RevocationEvent, ...]:
        rows = connection.execute(
            "SELECT kind, at, reason FROM events WHERE authority = ? AND serial = ? ORDER BY id",
            (authority, serial),
        ).fetchall()
        return tuple(
            RevocationEvent(
                EventKind(kind),
                _parse_time(at),
                RevocationReason(reason) if reason is not None else None,
            )
            for kind, at, reason in rows
        )

    def _records(self, where: str, parameters: Sequence[object]) -> list[CertificateRecord]:
        self.flush()  # a deferred block's own certificates first
        with self._connect() as connection:
            # ``where`` is always one of this module's fixed fragments; values are parameters.
            query = f"SELECT {_COLUMNS} FROM certificates WHERE {where} ORDER BY recorded_at, rowid"  # noqa: S608
            rows = connection.execute(query, parameters).fetchall()
            return [_record_from_row(row, self._events(connection, row[0], row[1])) for row in rows]

    def get(self, authority: str, serial: int) -> CertificateRecord | None:
        """The certificate ``serial`` issued by CA generation ``authority``, if recorded."""
        found = self._records("authority = ? AND serial = ?", (authority, f"{serial:X}"))
        return found[0] if found else None

    def find(
        self, *, persona: str | None = None, tree: Tree | None = None, serial: int | None = None
    ) -> list[CertificateRecord]:
        """Recorded certificates matching every given criterion, oldest first."""
        clauses, parameters = ["1 = 1"], []
        if persona is not None:
            clauses.append("persona = ?")
            parameters.append(persona)
        if tree is not None:
            clauses.append("tree = ?")
            parameters.append(tree.value)
        if serial is not None:
            clauses.append("serial = ?")
            parameters.append(f"{serial:X}")
        return self._records(" AND ".join(clauses), parameters)

    def revocations(self, authority: str) -> list[CertificateRecord]:
        """Certificates of ``authority`` with at least one event (the candidates for a CRL)."""
        return self._records(
            "authority = ? AND EXISTS (SELECT 1 FROM events e WHERE "
            "e.authority = certificates.authority AND e.serial = certificates.serial)",
            (authority,),
        )

    # --- events -----------------------------------------------------------------------------

    def add_event(
        self,
        authority: str,
        serial: int,
        event: RevocationEvent,
        *,
        recorded_at: dt.datetime,
    ) -> None:
        """Append ``event`` to a certificate's history (RevocationError if it may not follow)."""
        serial_text = f"{serial:X}"
        self.flush()  # a deferred block's own certificates first
        with self._write() as connection:
            exists = connection.execute(_EXISTS, (authority, serial_text)).fetchone()
            if exists is None:
                raise KeyError(f"no certificate {serial_text} recorded for {authority}")
            event = RevocationEvent(event.kind, _parse_time(_time(event.at)), event.reason)
            check_new_event(self._events(connection, authority, serial_text), event)
            connection.execute(
                "INSERT INTO events (authority, serial, kind, at, reason, recorded_at) "
                "VALUES (?,?,?,?,?,?)",
                (
                    authority,
                    serial_text,
                    event.kind.value,
                    _time(event.at),
                    event.reason.value if event.reason is not None else None,
                    _time(recorded_at),
                ),
            )
