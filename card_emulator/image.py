"""Where a card's state lives: one SQLite file per card, or memory for throwaway cards.

Durability rule: a changed credential (a failed VERIFY above all) is committed before the
card's response is returned, so killing the process at any instant never gives back a try.
Only a change of a credential writes; reads never touch the file. A write that fails raises
:class:`StorageError`; the chip then answers without revealing anything and refuses further
credential commands (``card_emulator/commands/credentials.py``).

What an image holds, in clear: the holder's data, every PIN, password and 照合番号, every card
private key, the access rules and the policy. It is a **test artefact**: created ``0600``,
never to hold a real person's data. Each image carries a random key of its own (``meta``) and an
HMAC-SHA-256 integrity code over every credential row and over the rest of its content, so an
image edited behind the card's back (a counter reset with the sqlite3 tool, a rule relaxed) is
refused at open; it is not a defence against someone who reads this paragraph.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apdu.errors import MynacardError
from apdu.version import version
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

IMAGE_FORMAT = "mynacard-image/2"
_OLD_FORMATS = ("mynacard-image/1",)  # opened and upgraded in place (:func:`_upgrade`)
# Any other format is refused with a message saying whether it is older (personalize
# again) or newer (upgrade mynacard) than these: :func:`_unsupported_format`.
IMAGE_MODE = 0o600

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
    mac BLOB NOT NULL, PRIMARY KEY (app, fid));
"""


class ImageError(MynacardError, RuntimeError):
    """A card image that cannot be created or opened."""


class StorageError(MynacardError, RuntimeError):
    """A credential change that could not be made durable (the image is not writable)."""


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

    def __init__(self, path: Path, connection: sqlite3.Connection, key: bytes) -> None:
        self.path = path
        self._db = connection
        self._key = key

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @staticmethod
    def check_creatable(path: str | Path) -> None:
        """Raise :class:`ImageError` unless a new image can be written at ``path``."""
        path = Path(path)
        if path.exists():
            raise ImageError(f"{path} already exists; open it instead of creating it")
        if not path.parent.is_dir():
            raise ImageError(f"{path}: directory {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK):
            raise ImageError(f"{path}: directory {path.parent} is not writable")

    @classmethod
    def create(cls, path: str | Path, content: CardContent) -> SqliteImage:
        """Write a new image (mode ``0600``) and open it; refuses to overwrite an existing file."""
        cls.write(path, content)
        image, _ = cls.open(path)
        return image

    @classmethod
    def write(cls, path: str | Path, content: CardContent) -> None:
        """Write a new image (mode ``0600``) without opening it (bulk issuance: the cards are not
        served now, and opening one checks what was just written); refuses to overwrite an
        existing file."""
        path = Path(path)
        cls.check_creatable(path)
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        try:
            descriptor = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, IMAGE_MODE)
        except OSError as exc:
            raise ImageError(f"{path}: cannot create the card image ({_reason(exc)})") from None
        try:
            os.fchmod(descriptor, IMAGE_MODE)  # whatever the umask
            _write_new(tmp, content)
            # One sync for the whole image before it gets its name: the file is new and is
            # thrown away if anything fails, so SQLite needs no journal (and no syncs) for it.
            os.fsync(descriptor)
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            raise ImageError(f"{path}: cannot write the card image ({_reason(exc)})") from None
        finally:
            os.close(descriptor)
        tmp.rename(path)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)

    @classmethod
    def open(cls, path: str | Path) -> tuple[SqliteImage, CardContent]:
        """Open an image, check that it is writable and unedited, and load its content.

        The file stays locked until :meth:`close`. Refuses (:class:`ImageError`) an image it
        cannot write: a card whose counters cannot be stored would give back tries.
        """
        path = Path(path)
        if path.is_dir():
            raise ImageError(f"{path} is a directory, not a card image")
        if not path.is_file():
            raise ImageError(f"no card image at {path}")
        _check_writable(path)
        wal = Path(f"{path}-wal")
        wal_pending = wal.exists() and wal.stat().st_size > 0  # frames the precheck cannot see
        _precheck(path)  # read-only, on the main file: a refused image is left exactly as it was
        try:
            db = cls._connect(path)
        except sqlite3.Error as exc:
            raise _locked_or_unwritable(path, exc) from None
        try:
            key = _integrity_key(db, path)
            if key is not None and wal_pending:  # check what the write-ahead log added
                _verify_integrity(db, key, path)
            _lock_and_probe_write(db, path)
            if key is None:
                key = _upgrade(db)
            content = _load(db)
        except ImageError:
            db.close()
            raise
        except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
            db.close()
            raise ImageError(f"{path} is not a valid card image: {exc}") from exc
        if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(IMAGE_MODE)  # images made before they were created 0600
        return cls(path, db, key), content

    def save_credential(self, app: str, credential: Credential) -> None:
        """One autocommitted UPDATE: durable (WAL, synchronous=FULL) when this returns.

        Raises :class:`StorageError` when the change could not be stored.
        """
        try:
            self._db.execute(
                "UPDATE credentials SET value = ?, remaining = ?, mac = ?"
                " WHERE app = ? AND fid = ?",
                (
                    credential.value,
                    credential.remaining,
                    _credential_mac(self._key, app, credential),
                    app,
                    credential.fid,
                ),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {_reason(exc)}") from None

    def integrity_check(self) -> str:
        """SQLite's own integrity check (``'ok'`` when sound)."""
        row = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])

    def close(self) -> None:
        """Close the file and release the lock."""
        self._db.close()


def _write_new(tmp: Path, content: CardContent) -> None:
    """Fill the new, empty file ``tmp`` with ``content``; leave it in WAL mode, as
    :meth:`SqliteImage._connect` opens it."""
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA foreign_keys=ON")
        key = secrets.token_bytes(32)
        db.executescript("BEGIN;" + _SCHEMA)
        meta = {
            **content.meta,
            "format": IMAGE_FORMAT,
            "atr": content.atr.hex().upper(),
            "policy": content.policy.to_json(),
            "mf_internal_efs": ",".join(f"{fid:04X}" for fid in sorted(content.mf_files)),
            _KEY: key.hex(),
        }
        db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        db.executemany(
            "INSERT INTO data_objects VALUES (?, ?)", sorted(content.data_objects.items())
        )
        for position, app in enumerate(content.applications):
            _insert_application(db, position, app, content.rules[app.name], key)
        db.execute("INSERT INTO meta VALUES (?, ?)", (_CONTENT_MAC, _content_mac(db, key)))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def _insert_application(
    db: sqlite3.Connection, position: int, app: Application, rules: AccessRules, key: bytes
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
        "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                _credential_mac(key, app.name, c),
            )
            for c in app.credentials.values()
        ],
    )


_KEY = "integrity_key"
_CONTENT_MAC = "content_mac"
_CONTENT_TABLES = (
    "SELECT key, value FROM meta WHERE key NOT IN ('integrity_key', 'content_mac') ORDER BY key",
    "SELECT tag, value FROM data_objects ORDER BY tag",
    "SELECT name, position, aid, label, rules FROM applications ORDER BY name",
    "SELECT app, fid, content FROM files ORDER BY app, fid",
    "SELECT app, fid, number, content FROM records ORDER BY app, fid, number",
    "SELECT app, fid, label, use, private_key FROM keys ORDER BY app, fid",
    "SELECT app, fid, label, format, max_tries, change FROM credentials ORDER BY app, fid",
)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _fields_mac(key: bytes, values: Iterable[object]) -> bytes:
    """HMAC-SHA-256 over each value as a 4-byte length and its bytes (text as UTF-8)."""
    parts: list[bytes] = []
    for value in values:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts += (len(raw).to_bytes(4, "big"), raw)
    return hmac.digest(key, b"".join(parts), "sha256")


def _credential_mac(key: bytes, app: str, c: Credential) -> bytes:
    fields = (app, c.fid, c.label, c.format.name, c.max_tries, c.change.name, c.value, c.remaining)
    return _fields_mac(key, fields)


def _content_mac(db: sqlite3.Connection, key: bytes) -> str:
    """HMAC over everything but the credentials' mutable part (they carry their own)."""
    rows: list[object] = []
    for query in _CONTENT_TABLES:
        for row in db.execute(query):
            rows.extend([*row, b"\x1e"])  # row separator
        rows.append(b"\x1d")  # table separator
    return _fields_mac(key, rows).hex()


def _credential_from_row(row: tuple[object, ...]) -> tuple[str, Credential]:
    """``(app, credential)`` from a row of :data:`_SELECT_CREDENTIALS`."""
    app, fid, label, fmt, max_tries, change, value, remaining = row
    assert isinstance(fid, int) and isinstance(max_tries, int) and isinstance(remaining, int)
    credential = Credential(
        fid,
        str(label),
        CredentialFormat[str(fmt)],
        max_tries,
        bytes(value),  # type: ignore[call-overload]
        remaining,
        ChangeCommand[str(change)],
    )
    return str(app), credential


_SELECT_CREDENTIALS = (
    "SELECT app, fid, label, format, max_tries, change, value, remaining FROM credentials"
)
_SELECT_CREDENTIALS_AND_MACS = (
    "SELECT app, fid, label, format, max_tries, change, value, remaining, mac FROM credentials"
)


def _check_writable(path: Path) -> None:
    """Refuse an image whose file or directory cannot be written, before SQLite sees it."""
    for what, target in (("file", path), ("directory", path.parent)):
        if not os.access(target, os.W_OK):
            raise ImageError(
                f"{path}: the card image cannot be written (its {what} is read-only); a card "
                "that cannot store its retry counters would give back tries, so it is not opened"
            )


def _lock_and_probe_write(db: sqlite3.Connection, path: Path) -> None:
    """Take the exclusive lock and prove a write gets through (read-only media, full disks)."""
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE meta SET value = value WHERE key = 'format'")
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise _locked_or_unwritable(path, exc) from None


def _locked_or_unwritable(path: Path, exc: sqlite3.Error) -> ImageError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return ImageError(
            f"{path}: the card image is locked (is another process serving this card?)"
        )
    if "not a database" in text or "malformed" in text:
        return ImageError(f"{path} is not a card image ({text})")
    return ImageError(
        f"{path}: the card image cannot be written ({text}); a card that cannot store its "
        "retry counters would give back tries, so it is not opened"
    )


def _integrity_key(db: sqlite3.Connection, path: Path) -> bytes | None:
    """The image's integrity key (``None``: an older format without integrity codes)."""
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as exc:
        raise _locked_or_unwritable(path, exc) from None
    found = meta.get("format")
    if found in _OLD_FORMATS:
        return None
    if found != IMAGE_FORMAT:
        raise _unsupported_format(path, found)
    return bytes.fromhex(meta[_KEY])


def _format_number(text: object) -> int | None:
    """``2`` for ``'mynacard-image/2'``; ``None`` for anything else."""
    match = re.fullmatch(r"mynacard-image/(\d{1,9})", text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def _unsupported_format(path: Path, found: object) -> ImageError:
    """The error for an image of a format this version neither opens nor upgrades."""
    upgraded = "".join(f", and upgrades {old}" for old in _OLD_FORMATS)
    opens = f"opens {IMAGE_FORMAT}{upgraded}"
    number, current = _format_number(found), _format_number(IMAGE_FORMAT)
    if number is None or current is None:
        shown = "none recorded" if found is None else repr(found)[:80]
        return ImageError(
            f"{path}: unknown card image format {shown} (mynacard {version()} {opens}): "
            "is it a card image made by mynacard?"
        )
    if number > current:
        return ImageError(
            f"{path}: card image format {found} is newer than mynacard {version()} can open "
            f"(it {opens}): upgrade mynacard to use this image"
        )
    return ImageError(
        f"{path}: card image format {found} is older than mynacard {version()} can open "
        f"(it {opens}): personalize a new image from its persona "
        "(mynacard personalize --persona FILE --image NEW_IMAGE)"
    )


def _precheck(path: Path) -> None:
    """Refuse a file that is no card image, or an edited one, without touching anything.

    Reads the main file as it is (``immutable``: no journal or shared-memory file is created);
    when a write-ahead log still holds frames, :meth:`SqliteImage.open` checks again once the
    image is really open.
    """
    try:
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise _locked_or_unwritable(path, exc) from None
    try:
        key = _integrity_key(db, path)
        if key is not None:
            _verify_integrity(db, key, path)
    except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
        raise ImageError(f"{path} is not a valid card image: {exc}") from None
    finally:
        db.close()


def _upgrade(db: sqlite3.Connection) -> bytes:
    """Give an image of an older format its integrity key and codes; returns the key."""
    key = secrets.token_bytes(32)
    db.execute("BEGIN IMMEDIATE")
    db.execute("ALTER TABLE credentials ADD COLUMN mac BLOB NOT NULL DEFAULT x''")
    for row in db.execute(_SELECT_CREDENTIALS).fetchall():
        app, credential = _credential_from_row(row)
        db.execute(
            "UPDATE credentials SET mac = ? WHERE app = ? AND fid = ?",
            (_credential_mac(key, app, credential), app, credential.fid),
        )
    db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (IMAGE_FORMAT,))
    db.execute("INSERT INTO meta VALUES (?, ?)", (_KEY, key.hex()))
    db.execute("INSERT INTO meta VALUES (?, ?)", (_CONTENT_MAC, _content_mac(db, key)))
    db.execute("COMMIT")
    return key


def _verify_integrity(db: sqlite3.Connection, key: bytes, path: Path) -> None:
    stored = dict(db.execute("SELECT key, value FROM meta").fetchall()).get(_CONTENT_MAC, "")
    if not hmac.compare_digest(stored, _content_mac(db, key)):
        raise ImageError(
            f"{path}: the card image was modified outside the card (its content does not match "
            "its integrity code); it cannot be trusted — personalize a new one"
        )
    for *row, mac in db.execute(_SELECT_CREDENTIALS_AND_MACS):
        app, credential = _credential_from_row(tuple(row))
        if not hmac.compare_digest(bytes(mac), _credential_mac(key, app, credential)):
            raise ImageError(
                f"{path}: credential {credential.fid:04X} of {app} was modified outside the card "
                "(its counter or value does not match its integrity code); it cannot be trusted "
                "— personalize a new one"
            )


def _load(db: sqlite3.Connection) -> CardContent:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    meta.pop(_KEY, None)
    meta.pop(_CONTENT_MAC, None)
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
            if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                raise ValueError(f"{name} key {fid:04X} is not an RSA or EC key")
            loaded = KeyObject(fid, key_label, key, KeyUse(use))
            if loaded.use is KeyUse.KEY_DELIVERY:
                app.session_key = loaded
            else:
                app.keys[fid] = loaded
        for row in db.execute(_SELECT_CREDENTIALS + " WHERE app = ?", (name,)):
            _, credential = _credential_from_row(row)
            app.credentials[credential.fid] = credential
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
