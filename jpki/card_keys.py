"""Card keys kept beside a test PKI, so a persona's card is not made with new RSA keys at every
process start (``mynacard serve``'s cold start, issue 18).

A :class:`CardKeyCache` holds one PEM (PKCS #8, unencrypted, like the CA keys) per persona
digest and key purpose, as ``card-keys/<persona digest>/<purpose>.key.pem`` in the PKI's
:class:`~jpki.vault.Vault`: a directory vault writes them as private blobs (mode 0600 from the
first byte, atomically), next to the CA keys they are no more secret than; a memory vault is
never used (:func:`for_vault` gives ``None``: fresh keys, nothing kept). A key the cache does
not hold is generated and written; afterwards the same persona (same file content, hence the
same digest) gets the same keys in every process — a card keeps its keys, as a real one does.
Certificates are still issued anew by each personalization.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.keys import generate_rsa_key
from jpki.vault import Vault

__all__ = ["CACHE_FOLDER", "CardKeyCache", "for_vault"]

CACHE_FOLDER = "card-keys"
_NAME = re.compile(r"[0-9a-f]{16,128}")
_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class CardKeyCache:
    """The keys of one persona's cards, by purpose, kept in ``vault`` (a key source)."""

    def __init__(self, vault: Vault, persona_digest: str) -> None:
        if not _NAME.fullmatch(persona_digest):
            raise ValueError(f"not a persona digest: {persona_digest[:20]!r}")
        self.vault = vault
        self.folder = f"{CACHE_FOLDER}/{persona_digest}"

    def __call__(self, purpose: str) -> rsa.RSAPrivateKey:
        """The key for ``purpose``: the one kept, else a new one (then kept)."""
        if not _PURPOSE.fullmatch(purpose):
            raise ValueError(f"not a key purpose: {purpose[:40]!r}")
        name = f"{self.folder}/{purpose}.key.pem"
        key = self._kept(name)
        if key is not None:
            return key
        # Under the vault's lock: two processes making the same persona's card at once (test
        # workers sharing a PKI) must not write the same temporary file together.
        with self.vault.exclusive():
            key = self._kept(name)
            if key is not None:
                return key
            key = generate_rsa_key()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.vault.write(name, pem, private=True)
        return key

    def _kept(self, name: str) -> rsa.RSAPrivateKey | None:
        if not self.vault.exists(name):
            return None
        try:
            # No OpenSSL RSA consistency check: the file is one this class wrote (0600, in the
            # PKI directory beside the CA keys); a key edited behind our back would only make
            # signatures that every verifier rejects.
            key = serialization.load_pem_private_key(
                self.vault.read(name), password=None, unsafe_skip_rsa_key_validation=True
            )
        except (OSError, ValueError, TypeError):
            return None  # unreadable or not a key: a new one replaces it
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048:
            return key
        return None


def for_vault(vault: Vault, persona_digest: str) -> CardKeyCache | None:
    """A cache in ``vault`` for the persona with this digest; ``None`` for a memory vault or a
    persona without a digest (fresh keys then)."""
    if vault.directory is None or not _NAME.fullmatch(persona_digest or ""):
        return None
    return CardKeyCache(vault, persona_digest)
