"""The public face of the emulated card: ``Card.transmit(bytes) -> bytes`` plus power events.

Every transport (in-process, vpcd, the vicc adapter), the harness and the tests drive this one
method; the chip never knows who is talking to it. A card is not thread-safe: give it one
transport at a time, like a physical card in one reader.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from apdu.errors import MynacardError
from card_emulator import persona as persona_module
from card_emulator.chip import Chip
from card_emulator.content import CardContent
from card_emulator.image import CardStore, ImageError, MemoryStore, SqliteImage
from card_emulator.objects import Credential
from card_emulator.personalize import personalize, personalized_copy
from jpki.pki_store import PkiStore


class CounterError(MynacardError, ValueError):
    """A retry counter value the credential cannot hold (outside 0 to its maximum)."""


@dataclass(frozen=True, slots=True)
class SecurityStatus:
    """The chip's volatile state at one moment, for inspection; it never holds a secret."""

    application: str | None
    """The selected application's name (``None``: the issuer security domain)."""
    verified: frozenset[int]
    """The FIDs of the selected application's credentials verified since it was selected."""
    secure_messaging: bool
    """A secure-messaging session is open (and not broken)."""
    storage_failed: bool
    """A credential write failed: credential commands are refused until the card is reopened."""


class Card:
    """One emulated My Number card."""

    def __init__(
        self,
        content: CardContent,
        store: CardStore | None = None,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        strict: bool = False,
    ) -> None:
        """Wrap personalized ``content``; ``store`` persists counters (memory by default).

        ``strict`` re-raises internal errors instead of answering ``6F00`` (for fuzzing).
        """
        self.content = content
        self._store: CardStore = store if store is not None else MemoryStore()
        self._chip = Chip(content, self._store, random_bytes=random_bytes, strict=strict)
        self.powered = True

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_persona(
        cls,
        path: str | Path,
        image: str | Path | None = None,
        *,
        pki: PkiStore | Callable[[], PkiStore] | None = None,
        strict: bool = False,
    ) -> Card:
        """A card personalized from the persona file at ``path``.

        Without ``image``: a fresh in-memory card (full retry counters on every call). With
        ``image``: the durable card image at that path, created from the persona if the file
        does not exist, reopened as it was left otherwise.

        ``pki`` issues the card's certificates and signs its data, and records them. Without
        it, the card comes from :func:`throwaway_pki`, which lives in memory and writes nothing;
        pass a directory store (``PkiStore.open(...)``) when the certificates must be known to
        other processes (an OCSP responder, ``mynacard pki``). A callable is asked for the
        store only once certificates are issued, after the persona and the image path passed
        their checks (so a bad input touches no PKI).
        """
        persona = persona_module.load(path)
        if image is None:
            if pki is None:
                return cls(personalized_copy(persona, throwaway_pki()), strict=strict)
            return cls(personalize(persona, store=_resolve(pki)), strict=strict)
        image = Path(image)
        if image.exists():
            card = cls.open(image, strict=strict)
            if card.content.meta.get("persona_digest") != persona.digest:
                card.close()
                raise ImageError(
                    f"{image} was personalized from a different persona than {path}; "
                    "open it with Card.open() or delete it to start afresh"
                )
            return card
        SqliteImage.check_creatable(image)  # before certificates are issued for it
        content = personalize(persona, store=_resolve(pki) if pki is not None else throwaway_pki())
        store = SqliteImage.create(image, content)
        store.close()
        return cls.open(image, strict=strict)

    @classmethod
    def open(cls, image: str | Path, *, strict: bool = False) -> Card:
        """Reopen a durable card image exactly as it was left."""
        store, content = SqliteImage.open(image)
        return cls(content, store, strict=strict)

    # --- the transport-facing surface ------------------------------------------------------

    @property
    def atr(self) -> bytes:
        """Answer To Reset."""
        return self.content.atr

    def transmit(self, command: bytes) -> bytes:
        """Run one command APDU; returns the response APDU (data ‖ SW1 SW2)."""
        return self._chip.process(bytes(command))

    def power_on(self) -> None:
        """Contacts powered: volatile state starts afresh."""
        self.powered = True
        self._chip.power_reset()

    def power_off(self) -> None:
        """Contacts unpowered: all volatile (security) state is lost."""
        self.powered = False
        self._chip.power_reset()

    def reset(self) -> None:
        """Warm reset: volatile state starts afresh."""
        self._chip.power_reset()

    # --- inspection (tests, harness, audit) -----------------------------------------------

    def credential(self, application: str, fid: int) -> Credential:
        """The credential object ``fid`` of ``application`` (its value is never printed)."""
        return self.content.application(application).credentials[fid]

    def security_status(self) -> SecurityStatus:
        """The selected application, verified credentials and SM session, right now."""
        chip = self._chip
        app = chip.app
        sm = chip.sm
        return SecurityStatus(
            application=app.name if app is not None else None,
            verified=frozenset(chip.verified),
            secure_messaging=sm is not None and not sm.broken,
            storage_failed=chip.storage_failed,
        )

    # --- the harness's hand on the counters -----------------------------------------------

    def set_tries(self, application: str, fid: int, tries: int) -> Credential:
        """Set the tries left of credential ``fid`` of ``application``: ``0`` blocks it, its
        maximum refills it. For test harnesses (a live console, scenario presets); a real card
        has no such command.

        Durable as a card OS writes a counter: the store holds the new value before memory
        does, so a :class:`~card_emulator.image.StorageError` leaves the card unchanged. The
        volatile state is not touched (a credential verified before stays verified until the
        next SELECT or reset, as on a card whose counter changed behind the host's back).
        Raises :class:`CounterError` for a value outside ``0..max_tries`` and ``KeyError`` for
        an application or FID the card does not have.
        """
        credential = self.credential(application, fid)
        limit = credential.max_tries
        if isinstance(tries, bool) or not isinstance(tries, int) or not 0 <= tries <= limit:
            raise CounterError(
                f"{application} {fid:04X}: tries left must be an integer 0-{limit}, got {tries!r}"
            )
        self._store.save_credential(application, replace(credential, remaining=tries))
        credential.remaining = tries
        return credential

    def close(self) -> None:
        """Release the card image (if any)."""
        self._store.close()

    def __enter__(self) -> Card:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _resolve(pki: PkiStore | Callable[[], PkiStore]) -> PkiStore:
    return pki if isinstance(pki, PkiStore) else pki()


@functools.cache
def throwaway_pki() -> PkiStore:
    """The in-memory test PKI of cards made without one: one per process, never written."""
    return PkiStore.in_memory()
