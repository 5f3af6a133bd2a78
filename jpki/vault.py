"""Where a test PKI's material is kept: a directory on disk, or this process's memory only.

A :class:`Vault` holds named blobs (``ca/test-auth-g1.key.pem``, …: relative paths with ``/``),
gives an exclusive lock for making material, and opens the issued-certificate database.
:class:`DirectoryVault` writes each blob atomically (a temporary file, then a rename; a private
blob is mode 0600 from its first byte); :class:`MemoryVault` writes nothing anywhere.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from jpki.database import IN_MEMORY, CertificateDatabase

__all__ = ["DATABASE_FILE", "DirectoryVault", "MemoryVault", "Vault"]

DATABASE_FILE = "certificates.sqlite"
"""The issued-certificate database's file in a directory vault."""

_LOCK_FILE = ".lock"


class Vault(ABC):
    """Named blobs of one PKI, an exclusive lock and the certificate database."""

    @property
    @abstractmethod
    def directory(self) -> Path | None:
        """The directory holding the blobs, or None when they are in memory."""

    @property
    @abstractmethod
    def location(self) -> str:
        """A name for this vault, unique in the process: the directory, or ``memory:<id>``."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """True if blob ``name`` is stored."""

    @abstractmethod
    def read(self, name: str) -> bytes:
        """Blob ``name`` (FileNotFoundError if absent)."""

    @abstractmethod
    def write(self, name: str, data: bytes, *, private: bool = False) -> None:
        """Store ``data`` as ``name``, replacing any blob there; ``private``: a secret key."""

    @abstractmethod
    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the vault's lock (against other threads, or processes, making material)."""

    @abstractmethod
    def open_database(self) -> CertificateDatabase:
        """The issued-certificate database of this vault."""

    @abstractmethod
    def describe(self, name: str) -> str:
        """How to name blob ``name`` in a message (its path, when it has one)."""


class DirectoryVault(Vault):
    """Blobs as files under one directory, shared by every process that opens it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def directory(self) -> Path:
        """The directory."""
        return self.path

    @property
    def location(self) -> str:
        """The directory, as text."""
        return str(self.path)

    def exists(self, name: str) -> bool:
        """True if file ``name`` exists (and is a regular file)."""
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``."""
        return (self.path / name).read_bytes()

    def write(self, name: str, data: bytes, *, private: bool = False) -> None:
        """Write ``<name without suffix>.tmp`` then rename it to ``name`` (0600 if private)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        mode = 0o600 if private else 0o666
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        if private:
            temporary.chmod(0o600)  # a stale temporary file kept its old mode
        temporary.replace(target)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / _LOCK_FILE).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be making material now
            yield

    def exclusive(self) -> AbstractContextManager[None]:
        """``flock`` on ``.lock`` in the directory (made if missing)."""
        return self._locked()

    def open_database(self) -> CertificateDatabase:
        """``certificates.sqlite`` in the directory."""
        return CertificateDatabase(self.path / DATABASE_FILE)

    def describe(self, name: str) -> str:
        """The file's path."""
        return str(self.path / name)


class MemoryVault(Vault):
    """Blobs in a dictionary of this process; nothing is written to disk."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._location = f"memory:{uuid.uuid4().hex[:16]}"

    @property
    def directory(self) -> None:
        """None: there is no directory."""
        return None

    @property
    def location(self) -> str:
        """``memory:<16 random hex digits>``."""
        return self._location

    def exists(self, name: str) -> bool:
        """True if ``name`` was written."""
        with self._lock:
            return name in self._blobs

    def read(self, name: str) -> bytes:
        """The bytes written as ``name``."""
        with self._lock:
            try:
                return self._blobs[name]
            except KeyError:
                raise FileNotFoundError(self.describe(name)) from None

    def write(self, name: str, data: bytes, *, private: bool = False) -> None:
        """Keep ``data`` as ``name`` (``private`` changes nothing in memory)."""
        with self._lock:
            self._blobs[name] = bytes(data)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def exclusive(self) -> AbstractContextManager[None]:
        """A re-entrant lock of this vault (a process's memory has no other writers)."""
        return self._locked()

    def open_database(self) -> CertificateDatabase:
        """A new SQLite database on ``:memory:`` (one per call: open it once per store)."""
        return CertificateDatabase(IN_MEMORY)

    def describe(self, name: str) -> str:
        """``pki.toml of memory:<id>``."""
        return f"{name} of {self._location}"
