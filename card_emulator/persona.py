"""Personas: the holder, card and PIN data a card is personalized from (a TOML file or a mapping).

Every field is validated; a bad persona is refused with a :class:`PersonaError` naming the field
(``holder.my_number: check digit should be 2, not 3``). Unknown fields are refused too, so a typo
never silently falls back to a default. See ``vectors/personas/demo.toml`` for the schema.

What :func:`load` accepts, personalization accepts: text fields have maximum lengths (next to the
dataclass fields they fill) and never hold control characters, the name and address must fit
their card-face images, access overrides must parse and name real credentials, and certificate
dates must make sense. Only the test PKI's CA generations (which depend on the PKI, not the
persona) are left to personalization.

:func:`load` reads a file, :func:`parse` TOML bytes and :func:`from_mapping` tables already in
memory; all three validate alike. The model lives in :mod:`~card_emulator.persona_model`, the
field checks in :mod:`~card_emulator.persona_fields`, reading TOML and mappings in
:mod:`~card_emulator.persona_source`; their public names are importable from here too.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import replace
from hashlib import sha256
from pathlib import Path
from typing import Any

from apdu.vocabulary import CREDENTIALS, DEFAULT_ATR, Text, resolve_atr
from card_emulator import mynumber, render
from card_emulator.access import RulesError, load_rules, parse_fid
from card_emulator.objects import CredentialFormat
from card_emulator.persona_certificates import certificate_settings
from card_emulator.persona_fields import FORBIDDEN_CATEGORIES, MAX_TEXT_CHARS, PersonaTable
from card_emulator.persona_model import (
    CERTIFICATE_STATES,
    IMAGE_KINDS,
    MAX_ADDRESS_CHARS,
    MAX_LABEL_CHARS,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    MAX_ROMAJI_CHARS,
    MEIJI_START,
    SEXES,
    TOKENS,
    CardData,
    CertificateSettings,
    Holder,
    Municipality,
    Persona,
    PersonaError,
    Pins,
)
from card_emulator.persona_source import (
    MAX_MESSAGE_CHARS,
    MAX_NESTING,
    MAX_PERSONA_BYTES,
    clean_message,
    mapping_data,
    toml_data,
)
from card_emulator.policy import CardPolicy
from card_emulator.profiles import (
    BUILTIN,
    DEFAULT_PROFILE,
    CardProfile,
    ProfileError,
    load_profile,
)
from jpki.toml_fields import key_text, shown

__all__ = [
    "CARD_CREDENTIALS",
    "CERTIFICATE_STATES",
    "DRAWN_WITHOUT_CHECK",
    "FORBIDDEN_CATEGORIES",
    "IMAGE_KINDS",
    "MAX_ADDRESS_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_NAME_CHARS",
    "MAX_NESTING",
    "MAX_PATH_CHARS",
    "MAX_PERSONA_BYTES",
    "MAX_ROMAJI_CHARS",
    "MAX_TEXT_CHARS",
    "MEIJI_START",
    "SEXES",
    "TOKENS",
    "TOP_LEVEL_FIELDS",
    "CardData",
    "CertificateSettings",
    "Holder",
    "Municipality",
    "Persona",
    "PersonaError",
    "PersonaTable",
    "Pins",
    "from_mapping",
    "load",
    "parse",
    "with_profile_digest",
]

DRAWN_WITHOUT_CHECK = {"name": 15, "address": 31}
"""Texts this short always fit their card-face image: at the 10 px floor even the widest glyph
of Noto Sans CJK JP (U+2E3B, 2.46 em: 25 px) fits 15 times on the 392 px line of the name image
and 31 times on the 792 px line of the address image. Longer ones are drawn once to check."""


def _credential(table: PersonaTable, key: str, fmt: CredentialFormat, default: str) -> str:
    value = table.text(key, default)
    if not fmt.accepts(value.encode("ascii", "replace")):
        shown_value = "a value" if value else "an empty value"
        raise PersonaError(f"{table.path(key)}: {shown_value} that is not {fmt.description}")
    return value


def _face_text(t: PersonaTable, key: str, max_chars: int) -> str:
    """氏名 / 住所: not blank, no surrounding spaces (the certificate refuses them)."""
    value = t.text(key, max_chars=max_chars)
    if not value.strip():
        raise PersonaError(f"{t.path(key)}: must not be empty")
    if value != value.strip():
        raise PersonaError(f"{t.path(key)}: must not start or end with a space")
    return value


def _holder(t: PersonaTable) -> Holder:
    name = _face_text(t, "name", MAX_NAME_CHARS)
    address = _face_text(t, "address", MAX_ADDRESS_CHARS)
    birth = t.date("birth_date")
    if birth < MEIJI_START:
        raise PersonaError(f"{t.path('birth_date')}: {birth} is before the Meiji era")
    sex = t.take("sex")
    if sex not in SEXES or isinstance(sex, bool):
        raise PersonaError(f"{t.path('sex')}: expected 1 (male), 2 (female) or 3, got {shown(sex)}")
    number = t.text("my_number", pattern=r"[0-9]{12}", what="12 digits")
    if not mynumber.is_valid(number):
        expected = mynumber.check_digit(number[:11])
        raise PersonaError(
            f"{t.path('my_number')}: check digit should be {expected}, not {number[11]}"
        )
    resident = t.text("resident_code", "12345678901", r"[0-9]{11}", "11 digits (住民票コード)")
    romanized = None
    if "romanized_name" in t.data:
        romanized = t.text(
            "romanized_name",
            pattern=r"[A-Z][A-Z ,.'-]*",
            what="capital letters A-Z, spaces and , . ' - (e.g. BANGO HANAKO)",
            max_chars=MAX_NAME_CHARS,
        )
    t.done()
    return Holder(name, address, birth, sex, number, resident, romanized)


def _card(t: PersonaTable, birth: dt.date) -> CardData:
    issued = t.date("issued")
    expiry = t.date("expiry")
    if issued < birth:
        raise PersonaError(f"{t.path('issued')}: {issued} is before the holder's birth")
    if expiry <= issued:
        raise PersonaError(f"{t.path('expiry')}: {expiry} is not after issuance ({issued})")
    code = t.text("security_code", pattern=r"[0-9]{4}", what="4 digits")
    m = t.table("municipality")
    romaji = r"[A-Za-z][A-Za-z -]*"
    municipality = Municipality(
        m.text("code", "13101", r"[0-9]{5}", "a 5-digit 全国地方公共団体コード"),
        m.text("prefecture", "Tokyo-to", romaji, "romanised (e.g. Tokyo-to)", MAX_ROMAJI_CHARS),
        m.text("city", "Chiyoda-ku", romaji, "romanised (e.g. Chiyoda-ku)", MAX_ROMAJI_CHARS),
    )
    m.done()
    serial = t.text("serial", "400000012719843", r"[0-9A-Z]{15}", "15 characters 0-9/A-Z")
    token = t.text("token", TOKENS[0])
    if token not in TOKENS:
        raise PersonaError(f"{t.path('token')}: {token!r} is not one of {', '.join(TOKENS)}")
    atr_text = t.text("atr", DEFAULT_ATR)  # its own errors already name the field
    try:
        atr = resolve_atr(atr_text)
    except ValueError as exc:
        raise PersonaError(f"{t.path('atr')}: {exc}") from None
    layout = t.text("juki_layout", "record")
    if layout not in ("record", "binary"):
        raise PersonaError(
            f"{t.path('juki_layout')}: expected 'record' or 'binary', got {layout!r}"
        )
    t.done()
    return CardData(issued, expiry, code, municipality, serial, token, atr, layout)


def _pins(t: PersonaTable) -> Pins:
    pins = Pins(
        jpki_auth=_credential(t, "jpki_auth", CredentialFormat.PIN4, "1234"),
        jpki_sign=_credential(t, "jpki_sign", CredentialFormat.SIGN_PASSWORD, "ABC123"),
        text=_credential(t, "text", CredentialFormat.PIN4, "1234"),
        juki=_credential(t, "juki", CredentialFormat.PIN4, "1234"),
    )
    t.done()
    return pins


def _counters(t: PersonaTable) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in list(t.data):
        if key not in CREDENTIALS:
            known = ", ".join(CREDENTIALS)
            raise PersonaError(f"{t.path(key)}: unknown credential (known: {known})")
        limit = CREDENTIALS[key].max_tries
        value = t.take(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise PersonaError(f"{t.path(key)}: tries left must be 0-{limit}, got {shown(value)}")
        out[key] = value
    return out


def _images(t: PersonaTable, base: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for kind in IMAGE_KINDS:
        if kind in t.data:
            path = base / t.text(kind, max_chars=MAX_PATH_CHARS)
            try:
                is_file = path.is_file()
            except OSError as exc:  # e.g. a file name longer than the file system allows
                raise PersonaError(
                    f"{t.path(kind)}: cannot use {shown(str(path))} ({exc.strerror or exc})"
                ) from None
            if not is_file:
                raise PersonaError(f"{t.path(kind)}: no image file at {shown(str(path), 200)}")
            try:
                render.load_image_file(path, kind)
            except ValueError as exc:
                raise PersonaError(f"{t.path(kind)}: {exc}") from None
            out[kind] = path.resolve()
    t.done()
    return out


def _card_credentials() -> dict[str, frozenset[int]]:
    """The credential FIDs of each application: every named one, and the text AP's key
    reference blocked at issuance (it has no persona name)."""
    found: dict[str, set[int]] = {}
    for where in CREDENTIALS.values():
        found.setdefault(where.application, set()).add(where.fid)
    found.setdefault("text", set()).add(Text.BLOCKED_KEY)
    return {application: frozenset(fids) for application, fids in found.items()}


CARD_CREDENTIALS = _card_credentials()
"""What an access override may name, by application (the same set the card has)."""


def _access(value: Any, overlays: list[str]) -> dict[str, dict[str, Any]]:
    """``[access]``: per-application overrides, checked as personalization will apply them."""
    if not isinstance(value, dict):
        raise PersonaError(
            f"access: expected a table of per-application rule overrides, got {shown(value)}"
        )
    if not value:
        return {}
    applications = load_rules(overlays)
    for application, patch in value.items():
        where = f"access.{key_text(application)}"
        if application not in applications:
            known = ", ".join(applications)
            raise PersonaError(f"{where}: unknown application (known: {known})")
        if not isinstance(patch, dict):
            raise PersonaError(
                f"{where}: expected a table of read, use or session_key rules, got {shown(patch)}"
            )
    try:
        load_rules(overlays, value)
    except RulesError as exc:
        raise PersonaError(str(exc)) from None
    for application, patch in value.items():
        conditions = [
            (f"{section}.{key_text(fid)}", condition)
            for section in ("read", "use")
            for fid, condition in patch.get(section, {}).items()
        ]
        if "session_key" in patch:
            conditions.append(("session_key", patch["session_key"]))
        have = CARD_CREDENTIALS.get(application, frozenset())
        for name, condition in conditions:
            if not isinstance(condition, list):
                continue  # "never"
            missing = [text for text in condition if parse_fid(text, name) not in have]
            if missing:
                known = ", ".join(f"{fid:04X}" for fid in sorted(have)) or "none"
                raise PersonaError(
                    f"access.{application}.{name}: {', '.join(missing)} is not a credential of "
                    f"the {application} application (it has {known})"
                )
    return value


def _profile(top: PersonaTable, base: Path) -> str:
    """``profile``: a built-in card generation, or a profile file (checked here)."""
    name = top.text("profile", DEFAULT_PROFILE, max_chars=MAX_PATH_CHARS)
    try:
        load_profile(name, base)
    except ProfileError as exc:
        raise PersonaError(f"profile: {exc}") from None
    if name in BUILTIN:
        return name
    path = Path(name)
    return str(path if path.is_absolute() else (base / path).resolve())


@functools.lru_cache(maxsize=256)
def _drawing_problem(kind: str, text: str) -> str | None:
    """Why ``text`` cannot be drawn as the ``kind`` card-face image, or ``None``."""
    try:
        render.find_cjk_font()
    except RuntimeError:
        return None  # no font here: personalization says so itself
    draw = render.render_name_png if kind == "name" else render.render_address_png
    try:
        draw(text)
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


def _check_drawable(holder: Holder, images: Mapping[str, Path]) -> None:
    """The name and address must fit their card-face images, unless files are given."""
    for kind, text in (("name", holder.name), ("address", holder.address)):
        if kind in images or len(text) <= DRAWN_WITHOUT_CHECK[kind]:
            continue
        problem = _drawing_problem(kind, text)
        if problem is not None:
            raise PersonaError(f"holder.{kind}: cannot be drawn on the card face ({problem})")


TOP_LEVEL_FIELDS = frozenset(
    {
        "label",
        "profile",
        "holder",
        "card",
        "pins",
        "certificates",
        "counters",
        "images",
        "policy",
        "access",
    }
)


def _check_profile_counters(counters: Mapping[str, int], profile: CardProfile) -> None:
    """On a profile other than today's, a preset names a credential holding that persona PIN
    (:meth:`~card_emulator.profiles.CardProfile.counter_credentials`)."""
    places = profile.counter_credentials()
    for name, tries in counters.items():
        if name not in places:
            held = ", ".join(sorted(places)) or "none"
            raise PersonaError(
                f"counters.{name}: the {profile.name} profile has no credential holding "
                f"pins.{name} (presets it takes: {held})"
            )
        limit = places[name][2]
        if tries > limit:
            raise PersonaError(
                f"counters.{name}: tries left must be 0-{limit} on the {profile.name} profile, "
                f"got {tries}"
            )


def _build(top: PersonaTable, digest: str, base: Path) -> Persona:
    unknown = {key: top.data[key] for key in top.data if key not in TOP_LEVEL_FIELDS}
    if unknown:  # a misspelt table is reported before the fields it lacks
        PersonaTable(unknown, "").done()
    label = top.text("label", "persona", max_chars=MAX_LABEL_CHARS)
    if not label.strip():
        raise PersonaError("label: must not be empty")
    profile = _profile(top, base)
    holder = _holder(top.table("holder"))
    card = _card(top.table("card"), holder.birth_date)
    pins = _pins(top.table("pins"))
    certificates = certificate_settings(top.table("certificates"), card, holder.birth_date)
    counters_table = top.table("counters")
    counters = _counters(counters_table)
    counters_table.done()
    images = _images(top.table("images"), base)
    policy_table = top.table("policy")
    try:
        policy = CardPolicy.from_mapping(policy_table.data, "policy")
    except ValueError as exc:
        raise PersonaError(str(exc)) from None
    overlays = ["smartphone"] if card.token == "JPKIAPGPSETOKEN" else []  # noqa: S105
    access = top.take("access", {})
    if access and load_profile(profile).rules_file is None:
        raise PersonaError(
            "access: overrides apply to a profile with a rules file (edit the profile's rules)"
        )
    access = _access(access, overlays)
    top.done()
    _check_drawable(holder, images)
    if counters and profile != DEFAULT_PROFILE:
        _check_profile_counters(counters, load_profile(profile))
    return Persona(
        label, holder, card, pins, certificates, counters, images, policy, access, digest, profile
    )


def load(path: str | Path) -> Persona:
    """Read and validate a persona file."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PERSONA_BYTES + 1)
    except OSError as exc:
        raise PersonaError(f"{path}: cannot read persona ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. a NUL in the path
        raise PersonaError(f"{shown(str(path))}: cannot read persona ({exc})") from None
    return parse(raw, str(path), path.parent)


def parse(raw: bytes, source: str = "<persona>", base: Path | None = None) -> Persona:
    """Validate persona TOML given as bytes; image paths are relative to ``base``.

    Bytes → text → ``tomllib`` → the validation of :func:`from_mapping`; the digest is SHA-256
    of ``raw`` (and of the profile file's bytes, when the persona names a profile file).
    """
    data, digest = toml_data(raw, source)
    return _validated(data, digest, source, base)


def from_mapping(
    data: Mapping[str, Any], source: str = "<persona>", base: Path | None = None
) -> Persona:
    """Validate persona tables already in memory (as ``tomllib`` gives them, or built in code).

    The errors are those :func:`parse` gives for the same tables written as TOML. The digest is
    SHA-256 of a canonical form of ``data`` (equal mappings, equal digests, whatever their key
    order) and, when the persona names image files, of their resolved paths, since the same
    relative paths under another ``base`` are other images.
    """
    plain, digest = mapping_data(data, source)
    persona = _validated(plain, digest, source, base)
    if not persona.images:
        return persona
    paths = "\n".join(f"{kind}={path}" for kind, path in sorted(persona.images.items()))
    with_images = f"{digest}\n{paths}".encode("utf-8", "surrogateescape")
    return replace(persona, digest=sha256(with_images).hexdigest())


def _validated(data: dict[str, Any], digest: str, source: str, base: Path | None) -> Persona:
    """The persona in TOML data ``data``; errors are prefixed with ``source``."""
    try:
        persona = _build(PersonaTable(data, ""), digest, base or Path.cwd())
        return with_profile_digest(persona)
    except PersonaError as exc:
        raise PersonaError(clean_message(f"{source}: {exc}")) from None


def with_profile_digest(persona: Persona) -> Persona:
    """A persona naming a profile file: its digest covers that file's bytes too (the same
    persona over an edited profile is another card: other keys, other files)."""
    if persona.profile in BUILTIN:
        return persona
    try:
        profile_bytes = Path(persona.profile).read_bytes()
    except OSError as exc:
        raise PersonaError(f"profile: cannot read {persona.profile} ({exc.strerror})") from None
    combined = f"{persona.digest}\nprofile=".encode() + sha256(profile_bytes).digest()
    return replace(persona, digest=sha256(combined).hexdigest())
