"""Key generation for JPKI CAs and card keys, by algorithm.

Today's card: RSA-2048, e = 65537, signatures SHA-256. The next-generation card (デジタル庁
次期個人番号カードタスクフォース, 2024): ECDSA over a 384-bit curve with SHA-384; which curve is
not published, NIST P-384 (secp384r1) is our GUESS (see ``docs/fidelity.md``).
"""

from __future__ import annotations

from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "KEY_SIZE",
    "PUBLIC_EXPONENT",
    "KeyAlgorithm",
    "PrivateKey",
    "PublicKey",
    "algorithm_of",
    "generate_key",
    "generate_rsa_key",
    "signature_hash",
]

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""A private key of any algorithm a card or CA may hold."""
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""A public key of any algorithm a card or CA may hold."""


class KeyAlgorithm(Enum):
    """The key algorithms of the card generations, by the names declarations use."""

    RSA_2048 = "rsa-2048"
    ECDSA_P384 = "ecdsa-p384"

    @classmethod
    def parse(cls, value: object, where: str) -> KeyAlgorithm:
        """The algorithm named ``value`` (ValueError naming ``where`` otherwise)."""
        for algorithm in cls:
            if algorithm.value == value:
                return algorithm
        names = ", ".join(a.value for a in cls)
        raise ValueError(f"{where}: {value!r} is not a key algorithm ({names})")


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key with public exponent 65537."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    """A fresh private key of ``algorithm``."""
    if algorithm is KeyAlgorithm.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return generate_rsa_key()


def algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    """The algorithm of ``key`` (ValueError for a key no card generation uses)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size == KEY_SIZE:
        return KeyAlgorithm.RSA_2048
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP384R1
    ):
        return KeyAlgorithm.ECDSA_P384
    raise ValueError("only RSA-2048 and EC P-384 keys are used by JPKI card generations")


def signature_hash(key: PrivateKey | PublicKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash a JPKI signer of ``key``'s algorithm uses: SHA-256 (RSA), SHA-384 (P-384)."""
    if algorithm_of(key) is KeyAlgorithm.ECDSA_P384:
        return hashes.SHA384()
    return hashes.SHA256()
