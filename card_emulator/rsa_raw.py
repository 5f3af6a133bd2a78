"""RSA signing of data the card is handed as-is (PKCS#1 v1.5 type-1 padding, no hashing).

The JPKI keys sign whatever DigestInfo the host builds (card-facts §3.6). When the data is a
standard DigestInfo, OpenSSL does the work through ``cryptography``'s prehashed signing, which
yields the identical bytes; anything else is padded here and exponentiated with the CRT.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from apdu.vocabulary import DIGEST_INFO_PREFIXES as DIGEST_INFO_PREFIXES_BY_NAME

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - hosts may send SHA-1 DigestInfos
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
DIGEST_INFO_PREFIXES: dict[bytes, hashes.HashAlgorithm] = {
    DIGEST_INFO_PREFIXES_BY_NAME[name]: algorithm for name, algorithm in _HASHES.items()
}
"""The DigestInfo prefixes of :mod:`apdu.vocabulary`, with the hash each one announces."""


def max_message_length(key: rsa.RSAPrivateKey) -> int:
    """The longest data PKCS#1 v1.5 type-1 padding can carry (k - 11)."""
    return (key.key_size + 7) // 8 - 11


def _as_digest_info(data: bytes) -> tuple[hashes.HashAlgorithm, bytes] | None:
    for prefix, algorithm in DIGEST_INFO_PREFIXES.items():
        if data.startswith(prefix) and len(data) == len(prefix) + algorithm.digest_size:
            return algorithm, data[len(prefix) :]
    return None


def sign_pkcs1_v15_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 signature over ``data`` exactly as given (1 to k-11 bytes)."""
    k = (key.key_size + 7) // 8
    if not 1 <= len(data) <= k - 11:
        raise ValueError(f"PKCS#1 v1.5 carries 1-{k - 11} bytes, not {len(data)}")
    recognised = _as_digest_info(data)
    if recognised is not None:
        algorithm, digest = recognised
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    encoded = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    numbers = key.private_numbers()
    m = int.from_bytes(encoded, "big")
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    signature = s2 + h * numbers.q
    return signature.to_bytes(k, "big")
