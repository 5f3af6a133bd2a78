"""Host-side session with the 公的個人認証AP (JPKI-AP): token info, certificates, PINs, signing.

Safety interlock for real cards: :meth:`JpkiSession.verify` refuses an attempt that could block
a credential (one try left) unless ``force=True``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from apdu import builders
from apdu.vocabulary import DIGEST_INFO_PREFIXES, Jpki
from readers.host_side.protocol import CardError, CardProtocol, InterlockError

__all__ = [
    "JpkiCredential",
    "JpkiSession",
    "TokenInfo",
    "digest_info",
    "ecdsa_der",
    "signature_der",
    "verify_signature",
]

TOKEN_INFO_SIZE = 96


class JpkiCredential(Enum):
    """The two JPKI credentials: IEF, the key they enable, its certificate EF, the name."""

    AUTH_PIN = (Jpki.PIN_AUTH, Jpki.KEY_AUTH, Jpki.EF_AUTH_CERT, "利用者証明用暗証番号")
    SIGN_PASSWORD = (Jpki.PIN_SIGN, Jpki.KEY_SIGN, Jpki.EF_SIGN_CERT, "署名用パスワード")

    def __init__(self, ief: int, key: int, certificate: int, label: str) -> None:
        self.ief = ief
        self.key = key
        self.certificate = certificate
        self.label = label


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """The first fields of JPKI EF ``0006``."""

    label: str
    manufacturer: str
    model: str
    serial: str

    @property
    def smartphone(self) -> bool:
        """True for a smartphone secure element rather than a physical card."""
        return self.label in ("JPKIAPGPSETOKEN", "JPKIAPIOSTOKEN")


def digest_info(data: bytes, algorithm: str = "sha256") -> bytes:
    """DigestInfo of ``data`` (what the JPKI card signs with P1 ``00``)."""
    prefix = DIGEST_INFO_PREFIXES.get(algorithm)
    if prefix is None:
        raise ValueError(
            f"unsupported digest {algorithm!r} (known: {', '.join(DIGEST_INFO_PREFIXES)})"
        )
    return prefix + hashlib.new(algorithm, data).digest()


class JpkiSession:
    """The JPKI-AP of the card behind ``protocol``."""

    def __init__(self, protocol: CardProtocol) -> None:
        self.protocol = protocol

    def select(self) -> None:
        """SELECT the JPKI-AP (this forgets every verified credential)."""
        self.protocol.select_application(Jpki.AID)

    def token_info(self) -> TokenInfo:
        """EF ``0006``: the token label tells a card from a smartphone (selects the AP)."""
        self.select()
        raw = self.protocol.read_ef(Jpki.EF_TOKEN, TOKEN_INFO_SIZE)

        def text(part: bytes) -> str:
            return part.decode("ascii", "replace").rstrip(" \x00")

        return TokenInfo(text(raw[:32]), text(raw[32:64]), text(raw[64:80]), text(raw[80:96]))

    def certificate(self, fid: int) -> x509.Certificate:
        """A certificate from the JPKI-AP (``000A`` auth, ``000B`` auth CA, ``0002`` sign CA,
        ``0001`` sign — the last needs the signing password verified first)."""
        return x509.load_der_x509_certificate(self.protocol.read_ef(fid))

    def retries(self, credential: JpkiCredential) -> int:
        """Tries left, from an empty VERIFY (never consumes a try)."""
        response = self.protocol.send(builders.verify(None, sfi=credential.ief))
        if response.retries is None:
            raise CardError(f"retry counter of {credential.label}", response)
        return response.retries

    def verify(self, credential: JpkiCredential, secret: str, *, force: bool = False) -> None:
        """VERIFY a JPKI credential (the AP must be selected).

        Refuses when one try is left (a wrong value would block the credential) unless
        ``force``. The secret is never included in an exception or log.
        """
        left = self.retries(credential)
        if left == 0:
            raise InterlockError(
                f"{credential.label} is blocked; only the municipality can reset it"
            )
        if left == 1 and not force:
            raise InterlockError(
                f"{credential.label} has one try left; a wrong value would block it "
                "(pass force=True to try anyway)"
            )
        self.protocol.expect_ok(
            builders.verify(secret.encode("ascii"), sfi=credential.ief),
            f"VERIFY {credential.label}",
        )

    def sign(self, credential: JpkiCredential, data: bytes, algorithm: str = "sha256") -> bytes:
        """Sign ``data`` with the key the credential enables (the host builds the DigestInfo)."""
        command = builders.compute_signature(digest_info(data, algorithm), key_sfi=credential.key)
        return self.protocol.expect_ok(
            command, f"COMPUTE DIGITAL SIGNATURE with {credential.key:04X}"
        )

    def sign_for(self, credential: JpkiCredential, data: bytes, key_type: object) -> bytes:
        """Sign ``data`` as the card generation expects: a SHA-256 DigestInfo for an RSA key,
        a SHA-384 digest for an EC key (``key_type`` is the certificate's public key)."""
        if isinstance(key_type, ec.EllipticCurvePublicKey):
            return self.sign_digest(credential, hashlib.sha384(data).digest())
        return self.sign(credential, data)

    def sign_digest(self, credential: JpkiCredential, digest: bytes) -> bytes:
        """Sign a digest as given (P1 ``00``): on an EC card (the next-generation profile)
        an ECDSA signature over a SHA-256/384/512 digest, raw r ‖ s by default."""
        command = builders.compute_signature(digest, key_sfi=credential.key)
        return self.protocol.expect_ok(
            command, f"COMPUTE DIGITAL SIGNATURE with {credential.key:04X}"
        )


def signature_der(answer: bytes, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """An EC card's signature answer as DER, whether it came raw (r ‖ s) or already DER."""
    size = (public_key.curve.key_size + 7) // 8
    return ecdsa_der(answer) if len(answer) == 2 * size else answer


def verify_signature(certificate: x509.Certificate, signature: bytes, data: bytes) -> None:
    """Check a JPKI signature over ``data`` with the certificate's key: PKCS#1 v1.5 SHA-256
    (today's card) or ECDSA SHA-384 (next-generation card, raw or DER); InvalidSignature if
    it does not verify."""
    public = certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature_der(signature, public), data, ec.ECDSA(hashes.SHA384()))
        return
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("a JPKI certificate holds an RSA or EC key")
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def ecdsa_der(raw: bytes) -> bytes:
    """A raw r ‖ s ECDSA signature as the DER SEQUENCE that X.509 stacks and OpenSSL verify."""
    if not raw or len(raw) % 2:
        raise ValueError(f"a raw ECDSA signature has an even length, not {len(raw)}")
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )
