"""The test PKI the harness uses unless told otherwise: ``$MYNACARD_PKI``, shared by processes.

The chip package never chooses a PKI (a card made by ``Card.from_persona`` without one uses an
in-memory PKI that writes nothing). Everything that serves cards to other processes — ``mynacard
serve`` and ``demo``, the pytest plugin, bulk issuance — asks for this one, so an OCSP responder
or ``mynacard pki revoke`` in another process knows their certificates.
"""

from __future__ import annotations

import functools
from pathlib import Path

from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.content import CardContent
from card_emulator.persona import Persona
from card_emulator.personalize import personalized_copy
from jpki import card_keys
from jpki.card_data_signer import CardDataSigner
from jpki.pki_store import PkiStore, default_directory


@functools.cache
def _store(directory: str) -> PkiStore:
    return PkiStore.open(directory)


def pki_store() -> PkiStore:
    """The shared test PKI (``$MYNACARD_PKI`` or the default directory), opened once."""
    return _store(str(default_directory()))


def default_cv_signer(application: str) -> CardDataSigner:
    """The shared PKI's data signer (and CV root) of ``"text"``, ``"kenmen"`` or ``"mf"``."""
    return pki_store().cv_signer(application)


def personalize_shared(persona: Persona) -> CardContent:
    """``persona`` personalized by the shared PKI, once per process (independent credentials
    on every call). The card keys are kept in the PKI directory by persona digest
    (:mod:`jpki.card_keys`, 0600 files beside the CA keys), so a later process makes the same
    persona's card without generating six RSA keys; its certificates are issued anew, and
    recorded together (one database transaction: ``serve``'s cold start)."""
    store = pki_store()
    keys = card_keys.for_vault(store.material.vault, persona.digest)
    with store.deferred():
        return personalized_copy(persona, store, keys=keys)


def shared_card(path: str | Path, image: str | Path | None = None, *, strict: bool = False) -> Card:
    """``Card.from_persona`` with its certificates issued and recorded by the shared PKI."""
    if image is not None:  # the PKI is opened only once the persona and image path are fine
        return Card.from_persona(path, image, pki=pki_store, strict=strict)
    return Card(personalize_shared(persona_module.load(path)), strict=strict)
