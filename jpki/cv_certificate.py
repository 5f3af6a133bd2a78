"""Card-verifiable (CV) certificates of the 券面 APs (card-facts §6.4).

EF ``0004`` of the 券面事項入力補助AP and of the 券面事項確認AP (券面AP) holds one CV certificate:
the AP's own RSA-2048 public key, signed by a J-LIS CA key that is named but not stored on the
card::

    7F 21 82 02 33                          CV certificate, 568 bytes in all
      5F 4E 82 01 29  <297-byte body>       証明者鍵ID[16] || 被証明者鍵ID[16] || key[265]
      5F 37 82 01 00  <256-byte signature>  PKCS#1 v1.5 / SHA-256 over the body

The key is the ``90`` (public exponent) / ``91`` (modulus) pair, 265 bytes for RSA-2048 with
e = 65537 (``90 03 01 00 01 91 82 01 00 <256>``). The same pair appears in other card files
(DF12, DF24, DF42, DF51), so :func:`encode_rsa_public_key` / :func:`decode_rsa_public_key` are
public.

A reader checks a 券面 AP in two steps: the CV certificate's signature with the CA public key it
knows for 証明者鍵ID, then the AP's data signatures with the public key the certificate carries.

Key IDs are 16 bytes: 7 ASCII digits, ``08 05``, 3 ASCII digits and 4 padding bytes. Real CA IDs
start with ``5`` (production: ``5000033`` text AP, ``5000023`` 券面AP) and ``6`` (J-LIS test
hierarchy). This emulator is neither, so it issues from its own IDs starting with ``69``
(:data:`EMULATOR_TEXT_AP_CA_KEY_ID`, :data:`EMULATOR_VISUAL_AP_CA_KEY_ID`); a reader holding the
real J-LIS keys fails to verify them, as it must. The APs' basic-info files name ``x000034`` /
``x000024`` keys (EF ``0005`` DF42, EF ``0003`` DF32), which are *not* the subjects of EF
``0004``: those name the municipality's own data-signing key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import tlv
from apdu.errors import CodecError
from jpki.keys import KEY_SIZE, generate_rsa_key

__all__ = [
    "BODY_LENGTH",
    "CERTIFICATE_LENGTH",
    "EMULATOR_MF_CA_KEY_ID",
    "EMULATOR_MF_INTERMEDIATE_KEY_ID",
    "EMULATOR_TEXT_AP_CA_KEY_ID",
    "EMULATOR_TEXT_AP_KEY_ID",
    "EMULATOR_TEXT_AP_SIGNER_KEY_ID",
    "EMULATOR_VISUAL_AP_CA_KEY_ID",
    "EMULATOR_VISUAL_AP_KEY_ID",
    "EMULATOR_VISUAL_AP_REFERENCE_KEY_ID",
    "EMULATOR_VISUAL_AP_SIGNER_KEY_ID",
    "KEY_ID_LENGTH",
    "RSA_PUBLIC_KEY_LENGTH",
    "SIGNATURE_LENGTH",
    "TAG_BODY",
    "TAG_CV_CERTIFICATE",
    "TAG_EXPONENT",
    "TAG_MODULUS",
    "TAG_SIGNATURE",
    "CvCertificate",
    "CvIssuer",
    "KeyId",
    "decode_rsa_public_key",
    "encode_rsa_public_key",
]

TAG_CV_CERTIFICATE = 0x7F21
TAG_BODY = 0x5F4E
TAG_SIGNATURE = 0x5F37
TAG_EXPONENT = 0x90
TAG_MODULUS = 0x91

KEY_ID_LENGTH = 16
RSA_PUBLIC_KEY_LENGTH = 265  # 90 03 01 00 01 91 82 01 00 <256>
BODY_LENGTH = 2 * KEY_ID_LENGTH + RSA_PUBLIC_KEY_LENGTH  # 297
SIGNATURE_LENGTH = KEY_SIZE // 8  # 256
CERTIFICATE_LENGTH = 568  # 7F21 82 0233 { 5F4E 82 0129 <297>, 5F37 82 0100 <256> }

_AUTHORITY_DIGITS = 7
_SERIAL_DIGITS = 3
_KEY_ID_SEPARATOR = b"\x08\x05"
_PADDING_LENGTH = 4
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class KeyId:
    """A 16-byte CV key ID: 7 ASCII digits, ``08 05``, 3 ASCII digits, 4 padding bytes.

    ``KeyId(raw)`` validates; :meth:`from_parts` builds one, :meth:`parse` reads one from any
    bytes-like value. ``str()`` gives ``"6900033-001"``, plus ``"/<padding hex>"`` when the
    padding is not all zero (the MF chain's ``5000020`` ID ends in ``A8``).
    """

    raw: bytes

    def __post_init__(self) -> None:
        raw = self.raw
        if not isinstance(raw, bytes):
            raise TypeError(f"key ID must be bytes, not {type(raw).__name__}")
        if len(raw) != KEY_ID_LENGTH:
            raise ValueError(f"key ID must be {KEY_ID_LENGTH} bytes, got {len(raw)}")
        authority = raw[:_AUTHORITY_DIGITS]
        separator = raw[_AUTHORITY_DIGITS : _AUTHORITY_DIGITS + 2]
        serial = raw[_AUTHORITY_DIGITS + 2 : _AUTHORITY_DIGITS + 2 + _SERIAL_DIGITS]
        if not set(authority) <= _DIGITS:
            raise ValueError(f"key ID {raw.hex().upper()}: bytes 0-6 must be ASCII digits")
        if separator != _KEY_ID_SEPARATOR:
            raise ValueError(f"key ID {raw.hex().upper()}: bytes 7-8 must be 08 05")
        if not set(serial) <= _DIGITS:
            raise ValueError(f"key ID {raw.hex().upper()}: bytes 9-11 must be ASCII digits")

    @classmethod
    def from_parts(
        cls, authority: str, serial: str = "001", padding: bytes = bytes(_PADDING_LENGTH)
    ) -> KeyId:
        """``KeyId.from_parts("6900033")`` → ``"6900033" 08 05 "001" 00 00 00 00``."""
        if len(authority) != _AUTHORITY_DIGITS or not _is_ascii_digits(authority):
            raise ValueError(f"key ID authority must be {_AUTHORITY_DIGITS} digits: {authority!r}")
        if len(serial) != _SERIAL_DIGITS or not _is_ascii_digits(serial):
            raise ValueError(f"key ID serial must be {_SERIAL_DIGITS} digits: {serial!r}")
        if len(padding) != _PADDING_LENGTH:
            raise ValueError(f"key ID padding must be {_PADDING_LENGTH} bytes, got {len(padding)}")
        return cls(authority.encode("ascii") + _KEY_ID_SEPARATOR + serial.encode("ascii") + padding)

    @classmethod
    def parse(cls, raw: bytes | bytearray | memoryview) -> KeyId:
        """Validate 16 bytes read from a card; raises :class:`ValueError` if malformed."""
        return cls(bytes(raw))

    @property
    def authority(self) -> str:
        """The 7-digit part (``"5000033"``, ``"6900023"`` ...)."""
        return self.raw[:_AUTHORITY_DIGITS].decode("ascii")

    @property
    def serial(self) -> str:
        """The 3-digit part after ``08 05`` (``"001"``)."""
        start = _AUTHORITY_DIGITS + 2
        return self.raw[start : start + _SERIAL_DIGITS].decode("ascii")

    @property
    def padding(self) -> bytes:
        """The last 4 bytes (usually zero)."""
        return self.raw[-_PADDING_LENGTH:]

    def __bytes__(self) -> bytes:
        return self.raw

    def __str__(self) -> str:
        text = f"{self.authority}-{self.serial}"
        if any(self.padding):
            text += "/" + self.padding.hex().upper()
        return text


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


EMULATOR_TEXT_AP_CA_KEY_ID = KeyId.from_parts("6900033")
"""Our CA key for the 券面事項入力補助AP (stands where J-LIS's ``5000033`` / ``6000033`` would)."""
EMULATOR_VISUAL_AP_CA_KEY_ID = KeyId.from_parts("6900023")
"""Our CA key for the 券面AP (stands where J-LIS's ``5000023`` / ``6000023`` would)."""
EMULATOR_TEXT_AP_KEY_ID = KeyId.from_parts("6900034")
"""The key ID in the 券面事項入力補助AP's basic information (EF ``0005`` DF42; a test card shows
``6000034-001``). Not the subject of EF ``0004`` (myna-card ``tests/text_records.rs``)."""
EMULATOR_VISUAL_AP_KEY_ID = KeyId.from_parts("6900024")
"""The key ID in the 券面AP's basic information (EF ``0003`` DF32; a test card shows
``6000024-001``). Not the subject of EF ``0004``."""
EMULATOR_TEXT_AP_SIGNER_KEY_ID = KeyId.from_parts("9999931", "000")
"""被証明者鍵ID of our 券面事項入力補助AP data signer. Real cards name the municipality's own key
(a test card's 券面AP: ``1322121-000``, municipality 13221); ours signs for every municipality,
so it takes the unassigned code ``99999``."""
EMULATOR_VISUAL_AP_SIGNER_KEY_ID = KeyId.from_parts("9999921", "000")
"""被証明者鍵ID of our 券面AP data signer (see :data:`EMULATOR_TEXT_AP_SIGNER_KEY_ID`)."""
EMULATOR_VISUAL_AP_REFERENCE_KEY_ID = KeyId.from_parts("6900025")
"""The key-shaped reference opening the 券面AP's ``DF35`` (a test card shows ``5900025-001``)."""
EMULATOR_MF_CA_KEY_ID = KeyId.from_parts("6900020", padding=bytes.fromhex("000000A8"))
"""Root of the MF-level CV chain (GET DATA ``00F8``; real: ``5000020`` / ``6000020``, pad A8)."""
EMULATOR_MF_INTERMEDIATE_KEY_ID = KeyId.from_parts("6900021")
"""The intermediate the MF root certifies (GET DATA ``00F7``) and that signs ``7F21``."""


def encode_rsa_public_key(key: rsa.RSAPublicKey) -> bytes:
    """The card's ``90 <e> 91 <n>`` encoding: unsigned big-endian, minimal, BER lengths.

    For RSA-2048 with e = 65537 this is the 265 bytes ``90 03 01 00 01 91 82 01 00 <256>``.
    """
    numbers = key.public_numbers()
    exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    return tlv.encode(TAG_EXPONENT, exponent) + tlv.encode(TAG_MODULUS, modulus)


def decode_rsa_public_key(
    raw: bytes | bytearray | memoryview, *, key_size: int | None = KEY_SIZE
) -> rsa.RSAPublicKey:
    """Read a ``90 <e> 91 <n>`` pair filling ``raw`` exactly; :class:`ValueError` if malformed.

    ``key_size`` (bits, default 2048 as on every card) is enforced unless ``None``. Integers
    must be minimal (no leading zero byte), as the card writes them.
    """
    data = bytes(raw)
    try:
        items = tlv.decode_all(data)
    except CodecError as exc:
        raise ValueError(f"RSA public key: {exc}") from exc
    tags = [item.tag for item in items]
    if tags != [TAG_EXPONENT, TAG_MODULUS]:
        shown = " ".join(f"{tag:02X}" for tag in tags) or "nothing"
        raise ValueError(f"RSA public key: expected tags 90 then 91, got {shown}")
    exponent_raw, modulus_raw = items[0].value, items[1].value
    for name, value in (("exponent (90)", exponent_raw), ("modulus (91)", modulus_raw)):
        if not value:
            raise ValueError(f"RSA public key: empty {name}")
        if value[0] == 0:
            raise ValueError(f"RSA public key: {name} has a leading zero byte")
    exponent = int.from_bytes(exponent_raw, "big")
    modulus = int.from_bytes(modulus_raw, "big")
    if key_size is not None and modulus.bit_length() != key_size:
        raise ValueError(
            f"RSA public key: modulus is {modulus.bit_length()} bits, expected {key_size}"
        )
    if exponent < 3 or exponent % 2 == 0 or exponent >= modulus:
        raise ValueError(f"RSA public key: unusable public exponent {exponent}")
    if modulus % 2 == 0:
        raise ValueError("RSA public key: modulus is even")
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as exc:
        raise ValueError(f"RSA public key: {exc}") from exc


def _check_key_size(key: rsa.RSAPublicKey | rsa.RSAPrivateKey, role: str) -> None:
    if key.key_size != KEY_SIZE:
        raise ValueError(f"{role} must be RSA-{KEY_SIZE}, got RSA-{key.key_size}")


@dataclass(frozen=True, slots=True)
class CvCertificate:
    """One ``7F21`` card-verifiable certificate (EF ``0004`` of both 券面 APs)."""

    issuer_key_id: KeyId
    """証明者鍵ID: the CA key that signed (not stored on the card)."""
    subject_key_id: KeyId
    """被証明者鍵ID: the AP key being certified."""
    public_key: rsa.RSAPublicKey
    """The certified RSA-2048 key."""
    signature: bytes
    """256-byte PKCS#1 v1.5 / SHA-256 signature over :attr:`body`."""

    def __post_init__(self) -> None:
        _check_key_size(self.public_key, "certified key")
        if len(self.signature) != SIGNATURE_LENGTH:
            raise ValueError(
                f"CV certificate signature must be {SIGNATURE_LENGTH} bytes, "
                f"got {len(self.signature)}"
            )

    @property
    def body(self) -> bytes:
        """The 297 signed bytes: 証明者鍵ID || 被証明者鍵ID || ``90/91`` key."""
        return _body(self.issuer_key_id, self.subject_key_id, self.public_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CvCertificate):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The 568-byte ``7F21`` object as stored in EF ``0004``."""
        inner = tlv.encode(TAG_BODY, self.body) + tlv.encode(TAG_SIGNATURE, self.signature)
        return tlv.encode(TAG_CV_CERTIFICATE, inner)

    @classmethod
    def parse(cls, raw: bytes | bytearray | memoryview) -> CvCertificate:
        """Read a ``7F21`` object; bytes after it (EF filler) are ignored.

        Strict: exactly ``5F4E`` then ``5F37`` inside, a 297-byte body with valid key IDs and
        an RSA-2048 key, a 256-byte signature. Any defect raises :class:`ValueError`.
        """
        data = bytes(raw)
        try:
            outer = tlv.decode_one(data)
        except CodecError as exc:
            raise ValueError(f"CV certificate: {exc}") from exc
        if outer.tag != TAG_CV_CERTIFICATE:
            raise ValueError(f"CV certificate: expected tag 7F21, got {outer.tag:X}")
        try:
            children = outer.children()
        except CodecError as exc:
            raise ValueError(f"CV certificate: inside 7F21: {exc}") from exc
        tags = [item.tag for item in children]
        if tags != [TAG_BODY, TAG_SIGNATURE]:
            shown = " ".join(f"{tag:X}" for tag in tags) or "nothing"
            raise ValueError(f"CV certificate: expected 5F4E then 5F37 inside 7F21, got {shown}")
        body, signature = children[0].value, children[1].value
        if len(body) != BODY_LENGTH:
            raise ValueError(f"CV certificate: body (5F4E) is {len(body)} bytes, not {BODY_LENGTH}")
        if len(signature) != SIGNATURE_LENGTH:
            raise ValueError(
                f"CV certificate: signature (5F37) is {len(signature)} bytes, "
                f"not {SIGNATURE_LENGTH}"
            )
        try:
            issuer = KeyId.parse(body[:KEY_ID_LENGTH])
        except ValueError as exc:
            raise ValueError(f"CV certificate: 証明者鍵ID: {exc}") from exc
        try:
            subject = KeyId.parse(body[KEY_ID_LENGTH : 2 * KEY_ID_LENGTH])
        except ValueError as exc:
            raise ValueError(f"CV certificate: 被証明者鍵ID: {exc}") from exc
        try:
            key = decode_rsa_public_key(body[2 * KEY_ID_LENGTH :])
        except ValueError as exc:
            raise ValueError(f"CV certificate: {exc}") from exc
        return cls(issuer, subject, key, signature)

    def verify(self, issuer_public_key: rsa.RSAPublicKey) -> None:
        """Check the signature with the CA key named by :attr:`issuer_key_id`.

        Raises :class:`cryptography.exceptions.InvalidSignature` if it does not verify.
        """
        issuer_public_key.verify(self.signature, self.body, padding.PKCS1v15(), hashes.SHA256())

    def __repr__(self) -> str:
        return f"CvCertificate(issuer={self.issuer_key_id}, subject={self.subject_key_id})"


def _body(issuer: KeyId, subject: KeyId, key: rsa.RSAPublicKey) -> bytes:
    return issuer.raw + subject.raw + encode_rsa_public_key(key)


@dataclass(frozen=True, slots=True, eq=False)
class CvIssuer:
    """A CA that signs CV certificates: a key ID and an RSA-2048 private key."""

    key_id: KeyId
    private_key: rsa.RSAPrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_size(self.private_key, "CV issuer key")

    @classmethod
    def create(cls, key_id: KeyId, key: rsa.RSAPrivateKey | None = None) -> CvIssuer:
        """An issuer named ``key_id``; a fresh RSA-2048 key unless ``key`` is given."""
        return cls(key_id, key if key is not None else generate_rsa_key())

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """What a reader must know (under :attr:`key_id`) to verify what this issuer signs."""
        return self.private_key.public_key()

    def issue(self, subject_public_key: rsa.RSAPublicKey, subject_key_id: KeyId) -> CvCertificate:
        """Certify an AP's RSA-2048 public key (deterministic: PKCS#1 v1.5)."""
        _check_key_size(subject_public_key, "certified key")
        body = _body(self.key_id, subject_key_id, subject_public_key)
        signature = self.private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return CvCertificate(self.key_id, subject_key_id, subject_public_key, signature)
