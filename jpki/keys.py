"""Key generation for JPKI CAs and card keys (RSA-2048, e = 65537, as on real cards)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["KEY_SIZE", "PUBLIC_EXPONENT", "generate_rsa_key"]

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key with public exponent 65537."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)
