"""COMPUTE DIGITAL SIGNATURE (``80 2A P1 P2``), the proprietary JICSAP signing command.

P2: ``80`` = the selected key EF, ``80|SFI`` = that key, ``00`` = the AP's default key (券面 APs).
P1 = scheme (card-facts §3.6): ``00`` PKCS#1 v1.5 over the data as given (the DigestInfo the host
built); ``01`` SHA-256 of the data, signed bare (no DigestInfo); ``02`` data is a SHA-256 hash,
wrapped in a DigestInfo; ``03`` SHA-256 of the data, wrapped; ``04`` data is a SHA-256 hash,
RSASSA-PSS; ``05`` SHA-256 of the data, RSASSA-PSS. PSS uses MGF1-SHA-256 and a 32-byte salt
(the public source does not give the salt length: our choice). A data length the scheme cannot
take answers ``6700``.

An EC P-384 key (the next-generation card, provisional) signs ECDSA: P1 ``00`` data is a SHA-256,
SHA-384 or SHA-512 digest, bare or in a DigestInfo (what hosts built for today's card send),
signed as given; P1 ``01`` the card hashes the data with SHA-384.
These P1 values and the answer's encoding (policy ``ecdsa_signature_encoding``: ``raw`` r ‖ s of
48 bytes each by default, or ``der``) are GUESSes: nothing byte-level about that card is public.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from apdu import CommandApdu
from card_emulator.command_context import CommandContext
from card_emulator.commands import replies as r
from card_emulator.objects import KeyObject, KeyUse
from card_emulator.rsa_raw import DIGEST_INFO_PREFIXES, max_message_length, sign_pkcs1_v15_raw

SHA256_SIZE = 32
MAX_HASHED_INPUT = 255
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SHA256_SIZE)
_PREHASHED_SHA256 = utils.Prehashed(hashes.SHA256())

Scheme = Callable[[rsa.RSAPrivateKey, bytes], bytes | None]  # None = data length refused


def _pkcs1_as_given(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    return sign_pkcs1_v15_raw(key, data) if len(data) <= max_message_length(key) else None


def _bare_sha256(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    return sign_pkcs1_v15_raw(key, hashlib.sha256(data).digest())


def _wrap_given_hash(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    if len(data) != SHA256_SIZE:
        return None
    return key.sign(data, padding.PKCS1v15(), _PREHASHED_SHA256)


def _hash_and_wrap(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    if len(data) > MAX_HASHED_INPUT:
        return None
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _pss_given_hash(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    return key.sign(data, _PSS, _PREHASHED_SHA256) if len(data) == SHA256_SIZE else None


def _pss_hash(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    return key.sign(data, _PSS, hashes.SHA256()) if len(data) <= MAX_HASHED_INPUT else None


SCHEMES: dict[int, Scheme] = {
    0x00: _pkcs1_as_given,
    0x01: _bare_sha256,
    0x02: _wrap_given_hash,
    0x03: _hash_and_wrap,
    0x04: _pss_given_hash,
    0x05: _pss_hash,
}


ECDSA_DIGESTS: dict[int, hashes.HashAlgorithm] = {
    32: hashes.SHA256(),
    48: hashes.SHA384(),
    64: hashes.SHA512(),
}
"""P1 ``00`` on an EC key: the digest lengths taken as given, with the hash each one names."""

EcScheme = Callable[[ec.EllipticCurvePrivateKey, bytes], bytes | None]  # DER, None = refused


def _ecdsa_given_digest(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes | None:
    for prefix, hashed in DIGEST_INFO_PREFIXES.items():  # a host built for today's card
        if data.startswith(prefix) and len(data) == len(prefix) + hashed.digest_size:
            return key.sign(data[len(prefix) :], ec.ECDSA(utils.Prehashed(hashed)))
    algorithm = ECDSA_DIGESTS.get(len(data))
    if algorithm is None:
        return None
    return key.sign(data, ec.ECDSA(utils.Prehashed(algorithm)))


def _ecdsa_sha384(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes | None:
    if len(data) > MAX_HASHED_INPUT:
        return None
    return key.sign(data, ec.ECDSA(hashes.SHA384()))


EC_SCHEMES: dict[int, EcScheme] = {0x00: _ecdsa_given_digest, 0x01: _ecdsa_sha384}


def raw_ecdsa(der: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The DER ECDSA signature ``der`` as r ‖ s, each as long as the curve order."""
    r_value, s_value = utils.decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return r_value.to_bytes(size, "big") + s_value.to_bytes(size, "big")


def sign_ec(ctx: CommandContext, key: ec.EllipticCurvePrivateKey, p1: int, data: bytes) -> bytes:
    """ECDSA by the scheme P1 names, encoded as the card's policy says; the answer APDU."""
    scheme = EC_SCHEMES.get(p1)
    if scheme is None:
        return r.INCORRECT_P1P2
    der = scheme(key, data)
    if der is None:
        return r.WRONG_LENGTH
    raw = ctx.policy.ecdsa_signature_encoding == "raw"
    return (raw_ecdsa(der, key) if raw else der) + r.OK


def resolve_key(ctx: CommandContext, p2: int) -> KeyObject | bytes:
    """The key named by P2: ``00`` AP default, ``80`` current EF, ``80|SFI``; else an error."""
    state = ctx.state
    app = state.app
    if app is None:
        return r.NO_CURRENT_EF
    if p2 == 0x00:
        key = app.default_key()
        return r.INCORRECT_P1P2 if key is None else key
    if p2 == 0x80:
        if state.ef is None:
            return r.NO_CURRENT_EF
        key = app.keys.get(state.ef)
        return r.INCOMPATIBLE_FILE if key is None else key
    if p2 & 0x80 and p2 & 0x1F and not p2 & 0x60:
        key = app.keys.get(p2 & 0x1F)
        return r.REFERENCED_DATA_NOT_FOUND if key is None else key
    return r.INCORRECT_P1P2


def compute_digital_signature(ctx: CommandContext, cmd: CommandApdu) -> bytes:
    """Sign with a key whose access condition is met; the signature + ``9000``."""
    key = resolve_key(ctx, cmd.p2)
    if isinstance(key, bytes):
        return key
    if key.use is KeyUse.INTERNAL_AUTHENTICATE:
        return r.CONDITIONS_NOT_SATISFIED
    state = ctx.state
    if not state.rules.use_condition(key.fid).opens(state.verified):
        return r.status(ctx.policy.key_not_enabled_sw)
    private_key = key.private_key
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return sign_ec(ctx, private_key, cmd.p1, cmd.data) if cmd.data else r.WRONG_LENGTH
    scheme = SCHEMES.get(cmd.p1)
    if scheme is None:
        return r.INCORRECT_P1P2
    if not cmd.data:
        return r.WRONG_LENGTH
    signature = scheme(private_key, cmd.data)
    return r.WRONG_LENGTH if signature is None else signature + r.OK
