"""Where a card's state lives: one SQLite file per card, or memory for throwaway cards.

Durability rule: a changed credential (a failed VERIFY above all) is committed before the
card's response is returned, so killing the process at any instant never gives back a try.
Only a change of a credential writes; reads never touch the file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from card_emulator.access import AccessRules
from card_emulator.content import CardContent
from card_emulator.objects import (
    Application,
    ChangeCommand,
    Credential,
    CredentialFormat,
    KeyObject,
    KeyUse,
)
from card_emulator.policy import CardPolicy

IMAGE_FORMAT = "mynacard-image/1"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE data_objects (tag INTEGER PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE applications (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, aid BLOB NOT NULL UNIQUE,
    label TEXT NOT NULL, rules TEXT NOT NULL);
CREATE TABLE files (
    app TEXT NOT NULL REFERENCES applications(name), fid INTEGER NOT NULL,
    content BLOB NOT NULL, PRIMARY KEY (app, fid));
CREATE TABLE records (
    app TEXT NOT NULL REFERENCES applications(name), fid INTEGER NOT NULL,
    number INTEGER NOT NULL, content BLOB NOT NULL, PRIMARY KEY (app, fid, number));
CREATE TABLE keys (
    app TEXT NOT NULL REFERENCES applications(name), fid INTEGER NOT NULL, label TEXT NOT NULL,
    use TEXT NOT NULL, private_key BLOB NOT NULL, PRIMARY KEY (app, fid));
CREATE TABLE credentials (
    app TEXT NOT NULL REFERENCES applications(name), fid INTEGER NOT NULL, label TEXT NOT NULL,
    format TEXT NOT NULL, max_tries INTEGER NOT NULL, change TEXT NOT NULL,
    value BLOB NOT NULL, remaining INTEGER NOT NULL CHECK (remaining BETWEEN 0 AND max_tries),
    PRIMARY KEY (app, fid));
"""


class ImageError(RuntimeError):
    """A card image that cannot be created or opened."""


class CardStore(Protocol):
    """Persists the mutable part of a card."""

    def save_credential(self, app: str, credential: Credential) -> None:
        """Make this credential's value and counter durable before returning."""

    def close(self) -> None:
        """Release the backing resource."""


class MemoryStore:
    """A throwaway card: state lives only in the Python objects."""

    def save_credential(self, app: str, credential: Credential) -> None:
        """Nothing to persist."""

    def close(self) -> None:
        """Nothing to release."""


class SqliteImage:
    """A card image file. One process at a time may hold it (like one physical card)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @classmethod
    def create(cls, path: str | Path, content: CardContent) -> SqliteImage:
        """Write a new image; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise ImageError(f"{path} already exists; open it instead of creating it")
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        db = cls._connect(tmp)
        try:
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            meta = {
                **content.meta,
                "format": IMAGE_FORMAT,
                "atr": content.atr.hex().upper(),
                "policy": content.policy.to_json(),
                "mf_internal_efs": ",".join(f"{fid:04X}" for fid in sorted(content.mf_files)),
            }
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            db.executemany(
                "INSERT INTO data_objects VALUES (?, ?)", sorted(content.data_objects.items())
            )
            for position, app in enumerate(content.applications):
                _insert_application(db, position, app, content.rules[app.name])
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        tmp.rename(path)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        image, _ = cls.open(path)
        return image

    @classmethod
    def open(cls, path: str | Path) -> tuple[SqliteImage, CardContent]:
        """Open an image and load its content; the file stays locked until :meth:`close`."""
        path = Path(path)
        if not path.is_file():
            raise ImageError(f"no card image at {path}")
        try:
            db = cls._connect(path)
            db.execute("BEGIN IMMEDIATE")  # take the exclusive lock now, not at the first write
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise ImageError(f"{path}: {exc} (is another process serving this card?)") from exc
        except sqlite3.DatabaseError as exc:
            raise ImageError(f"{path} is not a card image: {exc}") from exc
        try:
            content = _load(db)
        except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
            db.close()
            raise ImageError(f"{path} is not a valid card image: {exc}") from exc
        return cls(path, db), content

    def save_credential(self, app: str, credential: Credential) -> None:
        """One autocommitted UPDATE: durable (WAL, synchronous=FULL) when this returns."""
        self._db.execute(
            "UPDATE credentials SET value = ?, remaining = ? WHERE app = ? AND fid = ?",
            (credential.value, credential.remaining, app, credential.fid),
        )

    def integrity_check(self) -> str:
        """SQLite's own integrity check (``'ok'`` when sound)."""
        row = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])

    def close(self) -> None:
        """Close the file and release the lock."""
        self._db.close()


def _insert_application(
    db: sqlite3.Connection, position: int, app: Application, rules: AccessRules
) -> None:
    db.execute(
        "INSERT INTO applications VALUES (?, ?, ?, ?, ?)",
        (app.name, position, app.aid, app.label, rules.to_json()),
    )
    db.executemany(
        "INSERT INTO files VALUES (?, ?, ?)",
        [(app.name, fid, data) for fid, data in app.files.items()],
    )
    db.executemany(
        "INSERT INTO records VALUES (?, ?, ?, ?)",
        [
            (app.name, fid, number, data)
            for fid, records in app.records.items()
            for number, data in enumerate(records, start=1)
        ],
    )
    keys = [*app.keys.values(), *([app.session_key] if app.session_key else [])]
    db.executemany(
        "INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
        [(app.name, k.fid, k.label, k.use.value, k.private_der()) for k in keys],
    )
    db.executemany(
        "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                app.name,
                c.fid,
                c.label,
                c.format.name,
                c.max_tries,
                c.change.name,
                c.value,
                c.remaining,
            )
            for c in app.credentials.values()
        ],
    )


def _load(db: sqlite3.Connection) -> CardContent:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != IMAGE_FORMAT:
        raise ValueError(f"unsupported image format {meta.get('format')!r}")
    apps: list[Application] = []
    rules: dict[str, AccessRules] = {}
    for name, aid, label, rules_json in db.execute(
        "SELECT name, aid, label, rules FROM applications ORDER BY position"
    ):
        app = Application(name=name, aid=bytes(aid), label=label)
        rules[name] = AccessRules.from_data(json.loads(rules_json), f"image {name}")
        for fid, data in db.execute("SELECT fid, content FROM files WHERE app = ?", (name,)):
            app.files[fid] = bytes(data)
        for fid, data in db.execute(
            "SELECT fid, content FROM records WHERE app = ? ORDER BY fid, number", (name,)
        ):
            app.records.setdefault(fid, []).append(bytes(data))
        for fid, key_label, use, der in db.execute(
            "SELECT fid, label, use, private_key FROM keys WHERE app = ?", (name,)
        ):
            # our own image: the keys were checked when the card was personalized, and
            # OpenSSL's RSA key check costs ~35 ms per key (most of opening a card)
            key = serialization.load_der_private_key(
                bytes(der), password=None, unsafe_skip_rsa_key_validation=True
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{name} key {fid:04X} is not an RSA key")
            loaded = KeyObject(fid, key_label, key, KeyUse(use))
            if loaded.use is KeyUse.KEY_DELIVERY:
                app.session_key = loaded
            else:
                app.keys[fid] = loaded
        for fid, c_label, fmt, max_tries, change, value, remaining in db.execute(
            "SELECT fid, label, format, max_tries, change, value, remaining FROM credentials"
            " WHERE app = ?",
            (name,),
        ):
            app.credentials[fid] = Credential(
                fid,
                c_label,
                CredentialFormat[fmt],
                max_tries,
                bytes(value),
                remaining,
                ChangeCommand[change],
            )
        apps.append(app)
    policy = CardPolicy.from_mapping(json.loads(meta.pop("policy")), "image policy")
    atr = bytes.fromhex(meta.pop("atr"))
    meta.pop("format")
    mf_files = frozenset(
        int(fid, 16) for fid in meta.pop("mf_internal_efs", "001E").split(",") if fid
    )
    data_objects = {
        tag: bytes(value) for tag, value in db.execute("SELECT tag, value FROM data_objects")
    }
    return CardContent(atr, apps, rules, policy, meta, data_objects, mf_files)
