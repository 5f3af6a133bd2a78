"""The attached PKI's records of the served cards' certificates, read at most once a second.

A snapshot shows every card's certificate states; reading them from the PKI's database costs a
few milliseconds per card, and a console polled by a browser and a test suite at once would
spend that on every call, in the process that serves the cards. :class:`CertificateRecords`
keeps each lookup for :data:`FRESH_FOR` seconds: a change the console makes itself is seen at
once (it calls :meth:`~CertificateRecords.forget`), one made by another process (``mynacard
pki revoke``) within that time.
"""

from __future__ import annotations

import threading
import time

from jpki.database import CertificateRecord
from jpki.names import Tree
from jpki.pki_store import PkiStore

FRESH_FOR = 1.0
"""Seconds a lookup is reused before the database is asked again."""

_Key = tuple[str | None, Tree | None, int | None]


class CertificateRecords:
    """:meth:`PkiStore.certificates` with each answer kept for :data:`FRESH_FOR` seconds."""

    def __init__(self, pki: PkiStore, fresh_for: float = FRESH_FOR) -> None:
        self.pki = pki
        self.fresh_for = fresh_for
        self._lock = threading.Lock()
        self._kept: dict[_Key, tuple[float, list[CertificateRecord]]] = {}

    def certificates(
        self, *, persona: str | None = None, tree: Tree | None = None, serial: int | None = None
    ) -> list[CertificateRecord]:
        """The PKI's records matching every given criterion, oldest first."""
        key = (persona, tree, serial)
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < self.fresh_for:
                return list(kept[1])
        records = self.pki.certificates(persona=persona, tree=tree, serial=serial)
        with self._lock:
            self._kept[key] = (now, records)
        return list(records)

    def forget(self) -> None:
        """Drop every kept answer (after a change to the PKI)."""
        with self._lock:
            self._kept.clear()
