"""Distinguished names of the JPKI hierarchies, in two styles.

``NameStyle.PRODUCTION`` reproduces the names on real J-LIS certificates (card-facts §5.4, checked
against the published 2023 CA certificates). ``NameStyle.TEST`` (the default) follows what real
JPKI test cards show: the English names carry ``O=JPKI-TEST`` instead of ``O=JPKI``. The Japanese
service name on test cards is not known; this module uses ``O=公的個人認証サービス（テスト）``
(full-width parentheses) so a test certificate can never be mistaken for a production one, and
keeps the OUs unchanged.

String types follow the real certificates: ``C`` is a PrintableString, every other attribute a
UTF8String (the defaults of ``cryptography``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from enum import Enum

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = [
    "SUBJECT_ID_LENGTH",
    "Municipality",
    "NameStyle",
    "Tree",
    "ca_name",
    "crl_distribution_point_name",
    "make_subject_id",
    "ocsp_responder_name",
    "service_directory_name",
    "subject_name",
    "validate_subject_id",
]


class NameStyle(Enum):
    """Which hierarchy's names to use."""

    TEST = "test"
    PRODUCTION = "production"


class Tree(Enum):
    """The two JPKI certificate trees."""

    AUTH = "auth"
    """利用者証明用 — user authentication (card EF ``000A``, CA ``000B``)."""
    SIGN = "sign"
    """署名用 — digital signature (card EF ``0001``, CA ``0002``)."""


_ORGANIZATION = {NameStyle.PRODUCTION: "JPKI", NameStyle.TEST: "JPKI-TEST"}
_TREE_UNIT = {
    Tree.AUTH: "JPKI for user authentication",
    Tree.SIGN: "JPKI for digital signature",
}
_AGENCY_UNIT = "Japan Agency for Local Authority Information Systems"

_SERVICE_ORGANIZATION = {
    NameStyle.PRODUCTION: "公的個人認証サービス",
    NameStyle.TEST: "公的個人認証サービス（テスト）",
}
_SERVICE_TREE_UNIT = {
    Tree.AUTH: "公的個人認証サービス利用者証明用",
    Tree.SIGN: "公的個人認証サービス署名用",
}
_SERVICE_AGENCY_UNIT = "地方公共団体情報システム機構"

_CRL_DP_UNIT = "CRL Distribution Points"

SUBJECT_ID_LENGTH = 23
_SUBJECT_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SUBJECT_ID_RE = re.compile(r"[0-9A-Z]{23}")
_ROMAJI_RE = re.compile(r"[A-Za-z][A-Za-z0-9 '.-]*")
_CODE_RE = re.compile(r"[0-9]{5}")


@dataclass(frozen=True)
class Municipality:
    """A municipality (市区町村) as named in its CRL distribution point.

    ``prefecture`` and ``city`` are romaji with the suffix, e.g. ``"Tokyo-to"``,
    ``"Chiyoda-ku"``; ``code`` is the optional 5-digit 地方公共団体コード (without check digit).
    """

    prefecture: str
    city: str
    code: str | None = None

    def __post_init__(self) -> None:
        for label, value in (("prefecture", self.prefecture), ("city", self.city)):
            if not _ROMAJI_RE.fullmatch(value):
                raise ValueError(f"municipality {label} {value!r} must be romaji, e.g. 'Tokyo-to'")
        if self.code is not None and not _CODE_RE.fullmatch(self.code):
            raise ValueError(f"municipality code {self.code!r} must be 5 digits")


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)])


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    # One attribute per RDN, in exactly the order given (C first), as on real certificates.
    return x509.Name([_attr(oid, value) for oid, value in pairs])


def ca_name(tree: Tree, style: NameStyle = NameStyle.TEST) -> x509.Name:
    """The CA's (and so every user certificate's issuer) DN.

    e.g. ``C=JP, O=JPKI, OU=JPKI for user authentication,
    OU=Japan Agency for Local Authority Information Systems``.
    """
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, _ORGANIZATION[style]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _TREE_UNIT[tree]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _AGENCY_UNIT),
    )


def service_directory_name(tree: Tree, style: NameStyle = NameStyle.TEST) -> x509.Name:
    """The Japanese DirName in user certificates' IssuerAltName and CA certificates' SAN.

    e.g. ``C=JP, O=公的個人認証サービス, OU=公的個人認証サービス利用者証明用,
    OU=地方公共団体情報システム機構``.
    """
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, _SERVICE_ORGANIZATION[style]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _SERVICE_TREE_UNIT[tree]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _SERVICE_AGENCY_UNIT),
    )


def crl_distribution_point_name(
    tree: Tree, municipality: Municipality, style: NameStyle = NameStyle.TEST
) -> x509.Name:
    """The per-municipality CRL distribution point DirName of user certificates.

    e.g. ``C=JP, O=JPKI, OU=JPKI for user authentication, OU=CRL Distribution Points,
    OU=Tokyo-to, CN=Chiyoda-ku CRLDP``.
    """
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, _ORGANIZATION[style]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _TREE_UNIT[tree]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _CRL_DP_UNIT),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, municipality.prefecture),
        (NameOID.COMMON_NAME, f"{municipality.city} CRLDP"),
    )


def ocsp_responder_name(
    tree: Tree, style: NameStyle = NameStyle.TEST, common_name: str = "OCSP Responder"
) -> x509.Name:
    """DN of a tree's delegated OCSP responder: the CA's DN plus a CN.

    e.g. ``C=JP, O=JPKI-TEST, OU=JPKI for user authentication,
    OU=Japan Agency for Local Authority Information Systems, CN=OCSP Responder``. Real J-LIS
    responder names were not seen (card-facts §15 q10); this shape is ours.
    """
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, _ORGANIZATION[style]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _TREE_UNIT[tree]),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, _AGENCY_UNIT),
        (NameOID.COMMON_NAME, common_name),
    )


def validate_subject_id(subject_id: str) -> str:
    """Return ``subject_id`` if it is 23 uppercase alphanumerics, else raise ValueError."""
    if not _SUBJECT_ID_RE.fullmatch(subject_id):
        raise ValueError(
            f"subject id {subject_id!r} must be {SUBJECT_ID_LENGTH} characters [0-9A-Z]"
        )
    return subject_id


def make_subject_id(serial_number: int, issued: date) -> str:
    """A deterministic 23-character subject id for a user certificate.

    Real ids (e.g. ``840444E37PAFHN08220003A``) have an internal structure J-LIS does not
    publish, so this does not imitate it: the id is the SHA-256 of the serial number and the
    issuance date, written in base 36 (``0-9A-Z``) and cut to 23 characters. Same inputs, same
    id — a persona re-issued with a fixed serial gets the same subject.
    """
    digest = hashlib.sha256(f"jpki-subject-id:{serial_number}:{issued.isoformat()}".encode())
    number = int.from_bytes(digest.digest(), "big")
    chars = []
    for _ in range(SUBJECT_ID_LENGTH):
        number, index = divmod(number, len(_SUBJECT_ID_ALPHABET))
        chars.append(_SUBJECT_ID_ALPHABET[index])
    return "".join(chars)


def subject_name(subject_id: str) -> x509.Name:
    """End-entity subject DN ``C=JP, CN=<subject id>`` (no personal data)."""
    return _name(
        (NameOID.COUNTRY_NAME, "JP"), (NameOID.COMMON_NAME, validate_subject_id(subject_id))
    )
