"""The objects inside an application: EFs, key objects and credential (PIN) objects.

These are plain data. Credentials are the only mutable part of a card (value and retry
counter); everything else is fixed at personalization.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives import serialization

from jpki.keys import PrivateKey, PublicKey


class CredentialFormat(Enum):
    """What a credential's value looks like; used to validate personas and CHANGE commands.

    The card itself compares bytes: a value of the wrong format is simply wrong at VERIFY.
    """

    PIN4 = ("4 digits", r"[0-9]{4}")
    SIGN_PASSWORD = (
        "6-16 characters of A-Z and 0-9 with at least one letter and one digit",
        r"(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{6,16}",
    )
    MY_NUMBER = ("the 12-digit 個人番号", r"[0-9]{12}")
    CHECK_CODE_B = (
        "14 digits (birth date YYMMDD in era years, expiry year, security code)",
        r"[0-9]{14}",
    )
    BIRTH_DATE_KEY = ("6 digits YYMMDD in the Japanese era year", r"[0-9]{6}")
    UNKNOWN = ("unpublished (a key reference whose purpose is unknown)", r"(?!)")

    def __init__(self, description: str, pattern: str) -> None:
        self.description = description
        self.regex = re.compile(pattern)

    def accepts(self, value: bytes) -> bool:
        """True when ``value`` (ASCII) has this format."""
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return False
        return self.regex.fullmatch(text) is not None


class ChangeCommand(Enum):
    """Which command changes a credential (card-facts §3.5)."""

    NONE = "none"
    CHANGE_REFERENCE_DATA = "00 24"  # JPKI-AP and 券面事項入力補助AP
    CHANGE_KEY = "80 32"  # JICSAP CHANGE KEY, the 001C PINs


@dataclass(slots=True)
class Credential:
    """A PIN / password / check-code IEF with its retry counter (the mutable part of a card)."""

    fid: int
    label: str
    format: CredentialFormat
    max_tries: int
    value: bytes
    remaining: int
    change: ChangeCommand = ChangeCommand.NONE

    @property
    def blocked(self) -> bool:
        """True once the counter reached zero."""
        return self.remaining == 0

    def __repr__(self) -> str:
        # Never show the value.
        return f"Credential({self.fid:04X} {self.label!r}, {self.remaining}/{self.max_tries} tries)"


UNKNOWN_KEY_TRIES = 3
"""Tries of a key reference whose purpose is unknown (our choice; a persona may preset them)."""


def unknown_key_reference(fid: int, tries: int = UNKNOWN_KEY_TRIES) -> Credential:
    """An IEF a real card has but no public source explains: selectable, counts tries.

    Its value is random and never published, so no VERIFY with data can succeed.
    """
    return Credential(
        fid,
        "key reference of unknown purpose",
        CredentialFormat.UNKNOWN,
        tries,
        secrets.token_bytes(16),
        tries,
    )


class KeyUse(Enum):
    """How a key object may be used."""

    SIGN = "sign"  # 80 2A with P2 80 / 80|SFI (JPKI keys)
    SIGN_DEFAULT = "sign-default"  # 80 2A 00 00: the AP's own key, named by P2 00 (券面 APs)
    INTERNAL_AUTHENTICATE = "internal-authenticate"  # 00 88 (common AP key 0019)
    KEY_DELIVERY = "key-delivery"  # 80 AE: decrypts a secure-messaging session key (text AP)


@dataclass(frozen=True, slots=True)
class KeyObject:
    """A private key held by the card. It never leaves the card image."""

    fid: int
    label: str
    private_key: PrivateKey = field(repr=False)
    """RSA-2048 (today's card) or EC P-384 (the next-generation card)."""
    use: KeyUse = KeyUse.SIGN

    def private_der(self) -> bytes:
        """PKCS#8 DER, only for writing the card image."""
        return self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> PublicKey:
        """The public half."""
        return self.private_key.public_key()


@dataclass(slots=True)
class Application:
    """One application (DF selected by AID) and everything in it."""

    name: str
    aid: bytes
    label: str
    files: dict[int, bytes] = field(default_factory=dict)
    records: dict[int, list[bytes]] = field(default_factory=dict)
    keys: dict[int, KeyObject] = field(default_factory=dict)
    credentials: dict[int, Credential] = field(default_factory=dict)
    session_key: KeyObject | None = None
    """The private half of the key-delivery key (SET SESSION KEY); not addressable by FID."""

    def has(self, fid: int) -> bool:
        """True when any object (EF, key or IEF) has this FID."""
        return (
            fid in self.files or fid in self.records or fid in self.keys or fid in self.credentials
        )

    def default_key(self) -> KeyObject | None:
        """The key addressed by P2 ``00`` (券面 APs), if any."""
        for key in self.keys.values():
            if key.use is KeyUse.SIGN_DEFAULT:
                return key
        return None
