"""Host-side reader of the 券面AP: card face, age record, my-number image, and their signatures.

Verification (card-facts §7): the CV certificate in EF ``0004`` must verify under the root the
PKI publishes; the card face's ``DF28`` signature must be PKCS#1 v1.5 over the DigestInfo-shaped
``30 71 … 04 60`` wrapper of SHA-256(DF22‖DF23‖DF24) ‖ SHA-256(DF25‖DF26) ‖ SHA-256(DF27), the
TLVs hashed exactly as stored. ``DF29`` (expiry) and ``DF2A`` (security code) are not covered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from PIL import Image

from apdu import CodecError, Tlv, tlv
from apdu.vocabulary import FACE_DIGEST_INFO_HEADER, FACE_SIGNED_GROUPS, Kenmen
from jpki.cv_certificate import CvCertificate, decode_rsa_public_key
from readers.host_side.protocol import CardProtocol, VerificationError

__all__ = [
    "CardFace",
    "KenmenReader",
    "parse_face",
    "verify_cv_certificate",
    "verify_face",
    "verify_signed_record",
]


@dataclass(frozen=True, slots=True)
class CardFace:
    """EF ``0002`` of the 券面AP, decoded."""

    birth_date: dt.date
    sex: int
    card_key: rsa.RSAPublicKey
    name_png: bytes
    address_png: bytes
    photo_jp2: bytes
    signature: bytes
    expiry: dt.date
    security_code_png: bytes
    raw_fields: dict[int, bytes]
    """Each field's TLV exactly as stored (what the signature covers)."""

    def images(self) -> dict[str, Image.Image]:
        """The decoded images (name, address, photo, security_code)."""
        return {
            "name": _image(self.name_png),
            "address": _image(self.address_png),
            "photo": _image(self.photo_jp2),
            "security_code": _image(self.security_code_png),
        }


def _image(raw: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


def _date(raw: bytes) -> dt.date:
    text = raw.decode("ascii")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _stored_children(outer: Tlv) -> dict[int, tuple[Tlv, bytes]]:
    """Children of a constructed object, each with its TLV bytes as stored."""
    return {child.tag: (child, outer.value[child.offset : child.end]) for child in outer.children()}


def parse_face(raw: bytes) -> CardFace:
    """EF ``0002`` → :class:`CardFace` (any BER length forms)."""
    outer = tlv.decode_one(raw)
    if outer.tag != 0xFF20:
        raise CodecError(f"EF 0002 starts with tag {outer.tag:X}, expected FF20")
    fields = _stored_children(outer)

    def value(tag: int) -> bytes:
        if tag not in fields:
            raise CodecError(f"card face has no {tag:X}")
        return fields[tag][0].value

    return CardFace(
        birth_date=_date(value(0xDF22)),
        sex=int(value(0xDF23).decode("ascii")),
        card_key=decode_rsa_public_key(value(0xDF24)),
        name_png=value(0xDF25),
        address_png=value(0xDF26),
        photo_jp2=value(0xDF27),
        signature=value(0xDF28),
        expiry=_date(value(0xDF29)),
        security_code_png=value(0xDF2A),
        raw_fields={tag: stored for tag, (_, stored) in fields.items()},
    )


def verify_cv_certificate(raw: bytes, root_public_key: rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    """The key EF ``0004`` certifies, once its CV certificate verifies under the root."""
    certificate = CvCertificate.parse(raw)
    try:
        certificate.verify(root_public_key)
    except InvalidSignature:
        raise VerificationError("CV certificate (EF 0004) does not verify under the root") from None
    return certificate.public_key


def verify_face(face: CardFace, signer_key: rsa.RSAPublicKey) -> None:
    """Check ``DF28`` over the three hash groups; raises :class:`VerificationError`."""
    digests = b"".join(
        hashlib.sha256(b"".join(face.raw_fields[tag] for tag in group)).digest()
        for group in FACE_SIGNED_GROUPS
    )
    try:
        recovered = signer_key.recover_data_from_signature(face.signature, padding.PKCS1v15(), None)
    except InvalidSignature:
        raise VerificationError("card face signature (DF28) is not a valid signature") from None
    if recovered != FACE_DIGEST_INFO_HEADER + digests:
        raise VerificationError("card face (DF22-DF27) does not match its signature DF28")


def verify_signed_record(raw: bytes, signer_key: rsa.RSAPublicKey) -> dict[int, bytes]:
    """A ``{ data…, signature }`` record (EF ``0001`` FF10, EF ``0005`` FF40): the signature
    (last child) over the other children's stored TLVs. Returns the values by tag."""
    outer = tlv.decode_one(raw)
    children = list(_stored_children(outer).items())
    *signed, (_, (signature, _)) = children
    data = b"".join(stored for _, (_, stored) in signed)
    try:
        signer_key.verify(signature.value, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationError(f"record {outer.tag:X} does not match its signature") from None
    return {tag: child.value for tag, (child, _) in children}


class KenmenReader:
    """Reads the 券面AP through a :class:`CardProtocol` (any transport)."""

    def __init__(self, client: CardProtocol) -> None:
        self.client = client

    def _open(self, credential_fid: int, secret: str) -> None:
        self.client.unlock(Kenmen.AID, credential_fid, secret)

    def unlock_with_check_code_a(self, my_number: str) -> None:
        """照合番号A (``0013``): opens the face and the my-number image."""
        self._open(Kenmen.CHECK_CODE_A, my_number)

    def unlock_with_check_code_b(self, code: str) -> None:
        """照合番号B (``0012``): opens the face, not the my-number image."""
        self._open(Kenmen.CHECK_CODE_B, code)

    def unlock_with_birth_date(self, key: str) -> None:
        """Birth-date key (``0011``, era ``YYMMDD``): opens only the age record."""
        self._open(Kenmen.BIRTH_DATE_KEY, key)

    def signer_key(self, root_public_key: rsa.RSAPublicKey) -> rsa.RSAPublicKey:
        """The data-signing key, verified up to the root (EF ``0004`` is free to read)."""
        return verify_cv_certificate(
            self.client.read_ef(Kenmen.EF_CV_CERTIFICATE, Kenmen.CV_CERTIFICATE_SIZE),
            root_public_key,
        )

    def face(self, root_public_key: rsa.RSAPublicKey | None = None) -> CardFace:
        """The card face (needs 照合番号A or B); verified when a root key is given."""
        face = parse_face(self.client.read_ef(Kenmen.EF_FACE))
        if root_public_key is not None:
            verify_face(face, self.signer_key(root_public_key))
        return face

    def birth_date(self, root_public_key: rsa.RSAPublicKey) -> dt.date:
        """The age-verification record (needs the birth-date key), verified."""
        record = self.client.read_ef(Kenmen.EF_AGE)
        values = verify_signed_record(record, self.signer_key(root_public_key))
        return _date(values[0xDF11])

    def my_number_image(self, root_public_key: rsa.RSAPublicKey) -> Image.Image:
        """The rendered 個人番号 (needs 照合番号A), verified."""
        record = self.client.read_ef(Kenmen.EF_MY_NUMBER_IMAGE)
        values = verify_signed_record(record, self.signer_key(root_public_key))
        return _image(values[0xDF41])
