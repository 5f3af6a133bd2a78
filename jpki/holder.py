"""The holder's 基本4情報 as carried in the 署名用 certificate's subjectAltName.

Each item is an ``otherName`` whose value is a DER UTF8String (card-facts §5.4):

============================  ==========================================================
``1.2.392.200149.8.5.5.1``    氏名 — family and given name separated by U+3000
``1.2.392.200149.8.5.5.2``    氏名代替文字の使用位置 — substitute-character map of the name
``1.2.392.200149.8.5.5.3``    性別 — ``1`` male, ``2`` female, ``3`` unknown
``1.2.392.200149.8.5.5.4``    生年月日 — ``EYYYYMMDD`` (era digit + Gregorian date)
``1.2.392.200149.8.5.5.5``    住所 — at most 200 characters
``1.2.392.200149.8.5.5.6``    住所代替文字の使用位置 — substitute-character map of the address
============================  ==========================================================

Substitute maps, as read here: characters outside JIS X 0208 levels 1–2 and 補助漢字 are
replaced by a substitute (代替文字) in the name / address, and the map has one character per
character of the value (the U+3000 separator included): ``0`` = not a substitute, ``1`` = a
substitute. Real certificates show all-zero maps of exactly the value's length (``00000`` for a
five-character name), which this reading explains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Final

from asn1crypto import core
from cryptography import x509

from jpki.era import parse_san_birth_date, san_birth_date

__all__ = [
    "ADDRESS_MAX_LENGTH",
    "OID_ADDRESS",
    "OID_ADDRESS_SUBSTITUTES",
    "OID_BIRTH_DATE",
    "OID_NAME",
    "OID_NAME_SUBSTITUTES",
    "OID_SEX",
    "HolderIdentity",
    "Sex",
    "holder_from_certificate",
    "holder_from_general_names",
    "holder_general_names",
]

OID_NAME: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")
OID_NAME_SUBSTITUTES: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.2")
OID_SEX: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")
OID_BIRTH_DATE: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")
OID_ADDRESS: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")
OID_ADDRESS_SUBSTITUTES: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.6")

# Order of the otherName entries seen on real 署名用 certificates.
_SAN_ORDER: Final = (
    OID_NAME,
    OID_BIRTH_DATE,
    OID_SEX,
    OID_ADDRESS,
    OID_NAME_SUBSTITUTES,
    OID_ADDRESS_SUBSTITUTES,
)

ADDRESS_MAX_LENGTH: Final = 200
_MAP_RE: Final = re.compile(r"[01]*")


class Sex(Enum):
    """性別 as coded in the certificate."""

    MALE = "1"
    FEMALE = "2"
    UNKNOWN = "3"


@dataclass(frozen=True)
class HolderIdentity:
    """The holder's 基本4情報 plus the substitute-character maps.

    An empty map means "no character substituted" and is normalised to all ``0`` of the value's
    length, so a decoded holder compares equal to the one that was encoded.
    """

    name: str
    sex: Sex
    birth_date: date
    address: str
    name_substitutes: str = ""
    address_substitutes: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"holder name {self.name!r} is empty or has surrounding spaces")
        if not self.address:
            raise ValueError("holder address is empty")
        if len(self.address) > ADDRESS_MAX_LENGTH:
            raise ValueError(
                f"holder address has {len(self.address)} characters, "
                f"at most {ADDRESS_MAX_LENGTH} allowed"
            )
        if not isinstance(self.sex, Sex):
            raise ValueError(f"holder sex must be a Sex, not {self.sex!r}")
        san_birth_date(self.birth_date)  # refuses dates before 明治
        for label, value, field in (
            ("name", self.name, "name_substitutes"),
            ("address", self.address, "address_substitutes"),
        ):
            substitutes: str = getattr(self, field)
            if not substitutes:
                object.__setattr__(self, field, "0" * len(value))
            elif len(substitutes) != len(value) or not _MAP_RE.fullmatch(substitutes):
                raise ValueError(
                    f"{label} substitute map {substitutes!r} must be one '0'/'1' per character "
                    f"of the {label} ({len(value)} characters)"
                )


def _utf8(value: str) -> bytes:
    return bytes(core.UTF8String(value).dump())


def holder_general_names(holder: HolderIdentity) -> list[x509.GeneralName]:
    """The subjectAltName entries for ``holder``, in the order real certificates use."""
    values = {
        OID_NAME: holder.name,
        OID_BIRTH_DATE: san_birth_date(holder.birth_date),
        OID_SEX: holder.sex.value,
        OID_ADDRESS: holder.address,
        OID_NAME_SUBSTITUTES: holder.name_substitutes,
        OID_ADDRESS_SUBSTITUTES: holder.address_substitutes,
    }
    return [x509.OtherName(oid, _utf8(values[oid])) for oid in _SAN_ORDER]


def _decode_utf8(oid: x509.ObjectIdentifier, der: bytes) -> str:
    try:
        value = core.UTF8String.load(der, strict=True).native
    except (ValueError, TypeError) as exc:
        raise ValueError(f"otherName {oid.dotted_string} is not a DER UTF8String") from exc
    return str(value)


def holder_from_general_names(names: x509.SubjectAlternativeName) -> HolderIdentity:
    """Decode JPKI otherName entries (any order; other entries ignored) into a holder.

    Name, sex, birth date and address are required; missing maps decode as "none substituted".
    """
    values: dict[x509.ObjectIdentifier, str] = {}
    for other in names.get_values_for_type(x509.OtherName):
        if other.type_id not in _SAN_ORDER:
            continue
        if other.type_id in values:
            raise ValueError(f"subjectAltName repeats {other.type_id.dotted_string}")
        values[other.type_id] = _decode_utf8(other.type_id, other.value)
    for oid in (OID_NAME, OID_SEX, OID_BIRTH_DATE, OID_ADDRESS):
        if oid not in values:
            raise ValueError(f"subjectAltName lacks JPKI entry {oid.dotted_string}")
    try:
        sex = Sex(values[OID_SEX])
    except ValueError as exc:
        raise ValueError(f"sex {values[OID_SEX]!r} is not 1, 2 or 3") from exc
    return HolderIdentity(
        name=values[OID_NAME],
        sex=sex,
        birth_date=parse_san_birth_date(values[OID_BIRTH_DATE]),
        address=values[OID_ADDRESS],
        name_substitutes=values.get(OID_NAME_SUBSTITUTES, ""),
        address_substitutes=values.get(OID_ADDRESS_SUBSTITUTES, ""),
    )


def holder_from_certificate(cert: x509.Certificate) -> HolderIdentity:
    """The holder recorded in a 署名用 certificate's subjectAltName (ValueError if none)."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound as exc:
        raise ValueError("certificate has no subjectAltName, so no holder identity") from exc
    return holder_from_general_names(extension.value)
