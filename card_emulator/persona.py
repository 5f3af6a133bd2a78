"""Personas: the holder, card and PIN data a card is personalized from (one TOML file).

Every field is validated; a bad persona is refused with a :class:`PersonaError` naming the field
(``holder.my_number: check digit should be 2, not 3``). Unknown fields are refused too, so a typo
never silently falls back to a default. See ``vectors/personas/demo.toml`` for the schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from card_emulator import mynumber, render
from card_emulator.atrs import DEFAULT_ATR, resolve_atr
from card_emulator.credential_names import CREDENTIALS
from card_emulator.objects import CredentialFormat
from card_emulator.policy import CardPolicy
from jpki.clock import JST
from jpki.revocation import RevocationError, RevocationReason, parse_reason
from jpki.toml_fields import FieldTable

MEIJI_START = dt.date(1868, 1, 25)
TOKENS = ("JPKIAPICCTOKEN2", "JPKIAPICCTOKEN", "JPKIAPGPSETOKEN", "JPKIAPIOSTOKEN")
SEXES = {1: "male", 2: "female", 3: "not known"}
MAX_ADDRESS_CHARS = 200
CERTIFICATE_STATES = ("valid", "revoked", "hold")

IMAGE_KINDS = ("name", "address", "photo", "my_number", "security_code")


class PersonaError(ValueError):
    """A persona that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Holder:
    """券面 data of the holder."""

    name: str
    address: str
    birth_date: dt.date
    sex: int
    my_number: str
    resident_code: str


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
    """SHA-256 of the persona file, recorded in card images."""

    @property
    def smartphone(self) -> bool:
        """True for the Android secure-element token (gates the auth certificate)."""
        return self.card.token == "JPKIAPGPSETOKEN"  # noqa: S105 - a token name, not a secret


class _Table(FieldTable):
    """A persona table: field-named :class:`PersonaError` on anything wrong."""

    error = PersonaError

    def text(self, key: str, default: Any = ..., pattern: str | None = None, what: str = "") -> str:
        value = self.take(key, default)
        if not isinstance(value, str):
            raise PersonaError(f"{self.path(key)}: expected a string, got {value!r}")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise PersonaError(f"{self.path(key)}: {value!r} is not {what}")
        return value

    def date(self, key: str, default: Any = ...) -> dt.date:
        value = self.take(key, default)
        if isinstance(value, dt.datetime):
            raise PersonaError(f"{self.path(key)}: expected a date without a time, got {value}")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise PersonaError(f"{self.path(key)}: {value!r} is not a real date") from None
        raise PersonaError(f"{self.path(key)}: expected a date (YYYY-MM-DD), got {value!r}")

    def table(self, key: str) -> _Table:
        return _Table(self.take(key, {}), self.path(key))

    def done(self) -> None:
        if self.data:
            names = ", ".join(self.path(k) for k in sorted(self.data))
            raise PersonaError(f"unknown field(s): {names}")


def _credential(table: _Table, key: str, fmt: CredentialFormat, default: str) -> str:
    value = table.text(key, default)
    if not fmt.accepts(value.encode("ascii", "replace")):
        shown = "a value" if value else "an empty value"
        raise PersonaError(f"{table.path(key)}: {shown} that is not {fmt.description}")
    return value


def _holder(t: _Table) -> Holder:
    name = t.text("name")
    if not name.strip():
        raise PersonaError(f"{t.path('name')}: must not be empty")
    address = t.text("address")
    if not address.strip() or len(address) > MAX_ADDRESS_CHARS:
        raise PersonaError(f"{t.path('address')}: must be 1-{MAX_ADDRESS_CHARS} characters")
    birth = t.date("birth_date")
    if birth < MEIJI_START:
        raise PersonaError(f"{t.path('birth_date')}: {birth} is before the Meiji era")
    sex = t.take("sex")
    if sex not in SEXES or isinstance(sex, bool):
        raise PersonaError(f"{t.path('sex')}: expected 1 (male), 2 (female) or 3, got {sex!r}")
    number = t.text("my_number", pattern=r"[0-9]{12}", what="12 digits")
    if not mynumber.is_valid(number):
        expected = mynumber.check_digit(number[:11])
        raise PersonaError(
            f"{t.path('my_number')}: check digit should be {expected}, not {number[11]}"
        )
    resident = t.text("resident_code", "12345678901", r"[0-9]{11}", "11 digits (住民票コード)")
    t.done()
    return Holder(name, address, birth, sex, number, resident)


def _card(t: _Table, birth: dt.date) -> CardData:
    issued = t.date("issued")
    expiry = t.date("expiry")
    if issued < birth:
        raise PersonaError(f"{t.path('issued')}: {issued} is before the holder's birth")
    if expiry <= issued:
        raise PersonaError(f"{t.path('expiry')}: {expiry} is not after issuance ({issued})")
    code = t.text("security_code", pattern=r"[0-9]{4}", what="4 digits")
    m = t.table("municipality")
    municipality = Municipality(
        m.text("code", "13101", r"[0-9]{5}", "a 5-digit 全国地方公共団体コード"),
        m.text("prefecture", "Tokyo-to", r"[A-Za-z][A-Za-z -]*", "romanised (e.g. Tokyo-to)"),
        m.text("city", "Chiyoda-ku", r"[A-Za-z][A-Za-z -]*", "romanised (e.g. Chiyoda-ku)"),
    )
    m.done()
    serial = t.text("serial", "400000012719843", r"[0-9A-Z]{15}", "15 characters 0-9/A-Z")
    token = t.text("token", TOKENS[0])
    if token not in TOKENS:
        raise PersonaError(f"{t.path('token')}: {token!r} is not one of {', '.join(TOKENS)}")
    try:
        atr = resolve_atr(t.text("atr", DEFAULT_ATR))
    except ValueError as exc:
        raise PersonaError(f"{t.path('atr')}: {exc}") from None
    layout = t.text("juki_layout", "record")
    if layout not in ("record", "binary"):
        raise PersonaError(
            f"{t.path('juki_layout')}: expected 'record' or 'binary', got {layout!r}"
        )
    t.done()
    return CardData(issued, expiry, code, municipality, serial, token, atr, layout)


def _pins(t: _Table) -> Pins:
    pins = Pins(
        jpki_auth=_credential(t, "jpki_auth", CredentialFormat.PIN4, "1234"),
        jpki_sign=_credential(t, "jpki_sign", CredentialFormat.SIGN_PASSWORD, "ABC123"),
        text=_credential(t, "text", CredentialFormat.PIN4, "1234"),
        juki=_credential(t, "juki", CredentialFormat.PIN4, "1234"),
    )
    t.done()
    return pins


def _certificates(t: _Table, card: CardData) -> CertificateSettings:
    style = t.text("style", "test")
    if style not in ("test", "production"):
        raise PersonaError(f"{t.path('style')}: expected 'test' or 'production', got {style!r}")
    issued = t.date("issued", card.issued)
    auth_end = t.date("auth_not_after", None) if "auth_not_after" in t.data else None
    sign_end = t.date("sign_not_after", None) if "sign_not_after" in t.data else None
    for key, end in (("auth_not_after", auth_end), ("sign_not_after", sign_end)):
        if end is not None and end <= issued:
            raise PersonaError(f"{t.path(key)}: {end} is not after issuance ({issued})")
    auth_state, auth_reason = _certificate_state(t, "auth")
    sign_state, sign_reason = _certificate_state(t, "sign")
    revoked_at = _revoked_at(t, issued, (auth_state, auth_end), (sign_state, sign_end))
    t.done()
    return CertificateSettings(
        style,
        issued,
        auth_end,
        sign_end,
        auth_state,
        auth_reason,
        sign_state,
        sign_reason,
        revoked_at,
    )


def _certificate_state(t: _Table, which: str) -> tuple[str, RevocationReason | None]:
    state_key, reason_key = f"{which}_state", f"{which}_reason"
    state = t.text(state_key, "valid")
    if state not in CERTIFICATE_STATES:
        hint = f" (for an expired certificate set {which}_not_after)" if state == "expired" else ""
        raise PersonaError(
            f"{t.path(state_key)}: expected 'valid', 'revoked' or 'hold', got {state!r}{hint}"
        )
    if reason_key not in t.data:
        return state, RevocationReason.UNSPECIFIED if state == "revoked" else None
    text = t.text(reason_key)
    if state != "revoked":
        raise PersonaError(f'{t.path(reason_key)}: only with {state_key} = "revoked"')
    try:
        return state, parse_reason(text)
    except RevocationError as exc:
        raise PersonaError(f"{t.path(reason_key)}: {exc}") from None


def _revoked_at(
    t: _Table, issued: dt.date, *certificates: tuple[str, dt.date | None]
) -> dt.datetime | None:
    if "revoked_at" not in t.data:
        return None
    value = t.take("revoked_at")
    where = t.path("revoked_at")
    if isinstance(value, str):
        try:
            value = (
                dt.date.fromisoformat(value)
                if len(value) == 10
                else dt.datetime.fromisoformat(value)
            )
        except ValueError:
            raise PersonaError(f"{where}: {value!r} is not a date or ISO datetime") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PersonaError(f"{where}: {value} needs an offset (e.g. +09:00) or use a date")
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(0, 0), JST)
    else:
        raise PersonaError(f"{where}: expected a date (YYYY-MM-DD) or datetime, got {value!r}")
    if all(state == "valid" for state, _ in certificates):
        raise PersonaError(f"{where}: only with auth_state or sign_state revoked or hold")
    if moment.astimezone(JST).date() < issued:
        raise PersonaError(f"{where}: {value} is before issuance ({issued})")
    for state, end in certificates:
        if state != "valid" and end is not None and moment.astimezone(JST).date() > end:
            raise PersonaError(f"{where}: {value} is after the certificate ends ({end})")
    return moment


def _counters(t: _Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in list(t.data):
        if key not in CREDENTIALS:
            known = ", ".join(CREDENTIALS)
            raise PersonaError(f"{t.path(key)}: unknown credential (known: {known})")
        limit = CREDENTIALS[key].max_tries
        value = t.take(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise PersonaError(f"{t.path(key)}: tries left must be 0-{limit}, got {value!r}")
        out[key] = value
    return out


def _images(t: _Table, base: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for kind in IMAGE_KINDS:
        if kind in t.data:
            path = base / t.text(kind)
            if not path.is_file():
                raise PersonaError(f"{t.path(kind)}: no image file at {path}")
            try:
                render.load_image_file(path, kind)
            except ValueError as exc:
                raise PersonaError(f"{t.path(kind)}: {exc}") from None
            out[kind] = path.resolve()
    t.done()
    return out


def load(path: str | Path) -> Persona:
    """Read and validate a persona file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonaError(f"{path}: cannot read persona ({exc.strerror})") from None
    return parse(raw, str(path), path.parent)


def parse(raw: bytes, source: str = "<persona>", base: Path | None = None) -> Persona:
    """Validate persona TOML given as bytes; image paths are relative to ``base``."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PersonaError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        field = _field_at_error(raw.decode("utf-8"), str(exc))
        raise PersonaError(f"{source}: {field}not valid TOML ({exc})") from None
    try:
        return _build(_Table(data, ""), hashlib.sha256(raw).hexdigest(), base or Path.cwd())
    except PersonaError as exc:
        raise PersonaError(f"{source}: {exc}") from None


def _field_at_error(text: str, message: str) -> str:
    """``'holder.birth_date: '`` for a TOML error on that field's line (e.g. 1980-02-30)."""
    found = re.search(r"line (\d+)", message)
    if found is None:
        return ""
    number = int(found.group(1))
    lines = text.splitlines()
    if not 1 <= number <= len(lines):
        return ""
    key = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", lines[number - 1])
    if key is None:
        return ""
    section = ""
    for line in reversed(lines[: number - 1]):
        header = re.match(r"\s*\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            section = header.group(1) + "."
            break
    return f"{section}{key.group(1)}: "


def _build(top: _Table, digest: str, base: Path) -> Persona:
    label = top.text("label", "persona")
    holder = _holder(top.table("holder"))
    card = _card(top.table("card"), holder.birth_date)
    pins = _pins(top.table("pins"))
    certificates = _certificates(top.table("certificates"), card)
    counters_table = top.table("counters")
    counters = _counters(counters_table)
    counters_table.done()
    images = _images(top.table("images"), base)
    policy_table = top.table("policy")
    try:
        policy = CardPolicy.from_mapping(policy_table.data, "policy")
    except ValueError as exc:
        raise PersonaError(str(exc)) from None
    access = top.take("access", {})
    if not isinstance(access, dict):
        raise PersonaError("access: expected a table of per-application rule overrides")
    top.done()
    return Persona(
        label, holder, card, pins, certificates, counters, images, policy, access, digest
    )
