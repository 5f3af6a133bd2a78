"""What a validated persona is: the holder, card, PIN and certificate data, and their limits.

The limits and vocabularies next to each dataclass are the ones :mod:`card_emulator.persona`
enforces when it reads a persona; personalization may rely on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from card_emulator.policy import CardPolicy
from jpki.holder import ADDRESS_MAX_LENGTH
from jpki.revocation import RevocationReason

MEIJI_START = dt.date(1868, 1, 25)
TOKENS = ("JPKIAPICCTOKEN2", "JPKIAPICCTOKEN", "JPKIAPGPSETOKEN", "JPKIAPIOSTOKEN")
SEXES = {1: "male", 2: "female", 3: "not known"}
CERTIFICATE_STATES = ("valid", "revoked", "hold")
IMAGE_KINDS = ("name", "address", "photo", "my_number", "security_code")


class PersonaError(MynacardError, ValueError):
    """A persona that cannot be used; the message names the field."""


MAX_NAME_CHARS = 64
"""``holder.name`` (氏名). Japanese names are a dozen characters or less and long foreign names
(full-width alphabet, with middle names, 通称 or 旧氏) stay within a few dozen; the 400×64 name
image holds 2 lines × 39 full-width characters at its 10 px floor, so any 64 ordinary
characters can be drawn."""
MAX_ADDRESS_CHARS = ADDRESS_MAX_LENGTH
"""``holder.address`` (住所): 200, the 署名用 certificate's limit; 200 full-width characters fit
the 800×128 address image (5 lines, at 19 px)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """券面 data of the holder."""

    name: str
    address: str
    birth_date: dt.date
    sex: int
    my_number: str
    resident_code: str
    romanized_name: str | None = None
    """ローマ字氏名, on the next-generation card face (``holder.romanized_name``)."""


MAX_ROMAJI_CHARS = 58
"""``card.municipality.prefecture`` / ``city``: they go into CRL distribution point names as
``OU=<prefecture>`` and ``CN=<city> CRLDP``, at most 64 characters each (X.520); the longest
real romanised names are about 30."""


@dataclass(frozen=True, slots=True)
class Municipality:
    """The issuing municipality: 全国地方公共団体コード and romanised names (for CRL DP names)."""

    code: str
    prefecture: str
    city: str


@dataclass(frozen=True, slots=True)
class CardData:
    """Facts about the card itself."""

    issued: dt.date
    expiry: dt.date
    security_code: str
    municipality: Municipality
    serial: str
    token: str
    atr: bytes
    juki_layout: str = "record"


@dataclass(frozen=True, slots=True)
class Pins:
    """The four user-chosen secrets."""

    jpki_auth: str = field(repr=False)
    jpki_sign: str = field(repr=False)
    text: str = field(repr=False)
    juki: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CertificateSettings:
    """How the JPKI certificates are issued, and their revocation state at personalization.

    ``*_state`` is ``"valid"``, ``"revoked"`` (失効, with ``*_reason``, default unspecified) or
    ``"hold"`` (一時保留). Both take effect at ``revoked_at`` (default: the issue date, i.e.
    from the start). Expiry is not a state: set ``*_not_after`` or move the clock instead.
    """

    style: str
    issued: dt.date
    auth_not_after: dt.date | None
    sign_not_after: dt.date | None
    auth_state: str = "valid"
    auth_reason: RevocationReason | None = None
    sign_state: str = "valid"
    sign_reason: RevocationReason | None = None
    revoked_at: dt.datetime | None = None


MAX_LABEL_CHARS = 64
"""``label``: it names the persona's certificates in the PKI database and in messages."""
MAX_PATH_CHARS = 4096
"""``images.*``: a file path (Linux ``PATH_MAX``)."""


@dataclass(frozen=True, slots=True)
class Persona:
    """A validated persona."""

    label: str
    holder: Holder
    card: CardData
    pins: Pins
    certificates: CertificateSettings
    counters: Mapping[str, int]
    images: Mapping[str, Path]
    """Image files named by the persona (resolved to absolute paths), by kind."""
    policy: CardPolicy
    access: Mapping[str, Mapping[str, Any]]
    digest: str
    """SHA-256 of the persona file (of a canonical form for a persona given as a mapping),
    recorded in card images and keying the personalization cache."""
    profile: str = "current"
    """The card generation: a built-in profile name or the path of a profile file."""

    @property
    def smartphone(self) -> bool:
        """True for the Android secure-element token (gates the auth certificate)."""
        return self.card.token == "JPKIAPGPSETOKEN"  # noqa: S105 - a token name, not a secret
