"""The issuer-held keys that sign the 券面 APs' data, certified by card-verifiable certificates.

A reader verifies a 券面 record in two steps: the CV certificate in EF ``0004`` with the root
issuer's public key (published by the PKI under its 証明者鍵ID), then the record's signature
with the key that certificate certifies. The data-signing key is held by the issuer, never by
the card (a card key that signs anything without a PIN could forge its own records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.cv_certificate import CvCertificate, CvIssuer, KeyId
from jpki.keys import generate_rsa_key


@dataclass(frozen=True, slots=True)
class CardDataSigner:
    """A data-signing key with its CV certificate (the content of EF ``0004``)."""

    root: CvIssuer = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: CvCertificate

    @classmethod
    def create(cls, root_id: KeyId, signer_id: KeyId) -> CardDataSigner:
        """A new root issuer and a data-signing key it certifies."""
        root = CvIssuer.create(root_id)
        key = generate_rsa_key()
        return cls(root, key, root.issue(key.public_key(), signer_id))

    @property
    def root_public_key(self) -> rsa.RSAPublicKey:
        """What a reader must trust to verify the chain."""
        return self.root.public_key

    def sign(self, data: bytes) -> bytes:
        """PKCS#1 v1.5 / SHA-256 signature over ``data``."""
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
