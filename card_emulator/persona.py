"""Personas: the holder, card and PIN data a card is personalized from (one TOML file).

Every field is validated; a bad persona is refused with a :class:`PersonaError` naming the field
(``holder.my_number: check digit should be 2, not 3``). Unknown fields are refused too, so a typo
never silently falls back to a default. See ``vectors/personas/demo.toml`` for the schema.

What :func:`load` accepts, personalization accepts: text fields have maximum lengths (next to the
dataclass fields they fill) and never hold control characters, the name and address must fit
their card-face images, access overrides must parse and name real credentials, and certificate
dates must make sense. Only the test PKI's CA generations (which depend on the PKI, not the
persona) are left to personalization.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from card_emulator import mynumber, render
from card_emulator.access import RulesError, load_rules, parse_fid
from card_emulator.apps import text as text_ap
from card_emulator.atrs import DEFAULT_ATR, resolve_atr
from card_emulator.credential_names import CREDENTIALS
from card_emulator.objects import CredentialFormat
from card_emulator.policy import CardPolicy
from jpki.clock import JST, jst_day_end
from jpki.holder import ADDRESS_MAX_LENGTH
from jpki.profile import validity_end
from jpki.revocation import RevocationError, RevocationReason, parse_reason
from jpki.toml_fields import FieldTable, key_text, shown

MEIJI_START = dt.date(1868, 1, 25)
TOKENS = ("JPKIAPICCTOKEN2", "JPKIAPICCTOKEN", "JPKIAPGPSETOKEN", "JPKIAPIOSTOKEN")
SEXES = {1: "male", 2: "female", 3: "not known"}
CERTIFICATE_STATES = ("valid", "revoked", "hold")

MAX_PERSONA_BYTES = 4 * 1024 * 1024
"""A persona file is a few KB; anything over this is refused before it is parsed."""
MAX_NESTING = 32
"""Deepest array / inline-table nesting reported as the place of a too-deep document."""
MAX_TEXT_CHARS = 128
"""Any text field without a limit of its own (token, atr, style, states, reasons, layout)."""
MAX_MESSAGE_CHARS = 500
"""Longest error message (values in messages are cut far shorter; this is a backstop)."""
_FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Cs": "a surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
"""No text field may hold these (NUL, TAB, newline, C1 controls, bidi overrides, U+2029, ...)."""

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
DRAWN_WITHOUT_CHECK = {"name": 15, "address": 31}
"""Texts this short always fit their card-face image: at the 10 px floor even the widest glyph
of Noto Sans CJK JP (U+2E3B, 2.46 em: 25 px) fits 15 times on the 392 px line of the name image
and 31 times on the 792 px line of the address image. Longer ones are drawn once to check."""


@dataclass(frozen=True, slots=True)
class Holder:
    """券面 data of the holder."""

    name: str
    address: str
    birth_date: dt.date
    sex: int
    my_number: str
    resident_code: str


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
    """SHA-256 of the persona file, recorded in card images."""

    @property
    def smartphone(self) -> bool:
        """True for the Android secure-element token (gates the auth certificate)."""
        return self.card.token == "JPKIAPGPSETOKEN"  # noqa: S105 - a token name, not a secret


class _Table(FieldTable):
    """A persona table: field-named :class:`PersonaError` on anything wrong."""

    error = PersonaError

    def text(
        self,
        key: str,
        default: Any = ...,
        pattern: str | None = None,
        what: str = "",
        max_chars: int = MAX_TEXT_CHARS,
    ) -> str:
        value = self.take(key, default)
        if not isinstance(value, str):
            raise PersonaError(f"{self.path(key)}: expected a string, got {shown(value)}")
        if len(value) > max_chars:
            raise PersonaError(f"{self.path(key)}: {len(value)} characters, at most {max_chars}")
        for position, char in enumerate(value, 1):
            kind = _FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
            if kind is not None:
                raise PersonaError(
                    f"{self.path(key)}: U+{ord(char):04X} at character {position} is {kind}"
                )
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise PersonaError(f"{self.path(key)}: {shown(value)} is not {what}")
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
                raise PersonaError(f"{self.path(key)}: {shown(value)} is not a real date") from None
        raise PersonaError(f"{self.path(key)}: expected a date (YYYY-MM-DD), got {shown(value)}")

    def table(self, key: str) -> _Table:
        return _Table(self.take(key, {}), self.path(key))


def _credential(table: _Table, key: str, fmt: CredentialFormat, default: str) -> str:
    value = table.text(key, default)
    if not fmt.accepts(value.encode("ascii", "replace")):
        shown_value = "a value" if value else "an empty value"
        raise PersonaError(f"{table.path(key)}: {shown_value} that is not {fmt.description}")
    return value


def _face_text(t: _Table, key: str, max_chars: int) -> str:
    """氏名 / 住所: not blank, no surrounding spaces (the certificate refuses them)."""
    value = t.text(key, max_chars=max_chars)
    if not value.strip():
        raise PersonaError(f"{t.path(key)}: must not be empty")
    if value != value.strip():
        raise PersonaError(f"{t.path(key)}: must not start or end with a space")
    return value


def _holder(t: _Table) -> Holder:
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


def _certificates(t: _Table, card: CardData, birth: dt.date) -> CertificateSettings:
    style = t.text("style", "test")
    if style not in ("test", "production"):
        raise PersonaError(f"{t.path('style')}: expected 'test' or 'production', got {style!r}")
    issued = t.date("issued", card.issued)
    if issued < birth:
        raise PersonaError(f"{t.path('issued')}: {issued} is before the holder's birth ({birth})")
    auth_end = t.date("auth_not_after", None) if "auth_not_after" in t.data else None
    sign_end = t.date("sign_not_after", None) if "sign_not_after" in t.data else None
    for key, end in (("auth_not_after", auth_end), ("sign_not_after", sign_end)):
        if end is not None and end <= issued:
            raise PersonaError(f"{t.path(key)}: {end} is not after issuance ({issued})")
    auth_state, auth_reason = _certificate_state(t, "auth")
    sign_state, sign_reason = _certificate_state(t, "sign")
    default_end = validity_end(issued, birth)  # what personalization gives without *_not_after
    revoked_at = _revoked_at(
        t,
        issued,
        ("auth", auth_state, jst_day_end(auth_end) if auth_end else default_end),
        ("sign", sign_state, jst_day_end(sign_end) if sign_end else default_end),
    )
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
    t: _Table, issued: dt.date, *certificates: tuple[str, str, dt.datetime]
) -> dt.datetime | None:
    """``revoked_at``, within the life of every certificate it revokes or holds."""
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
            raise PersonaError(f"{where}: {shown(value)} is not a date or ISO datetime") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PersonaError(f"{where}: {value} needs an offset (e.g. +09:00) or use a date")
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(0, 0), JST)
    else:
        raise PersonaError(f"{where}: expected a date (YYYY-MM-DD) or datetime, got {shown(value)}")
    if all(state == "valid" for _, state, _ in certificates):
        raise PersonaError(f"{where}: only with auth_state or sign_state revoked or hold")
    try:
        day = moment.astimezone(JST).date()
    except OverflowError:
        raise PersonaError(f"{where}: {value} is out of range") from None
    if day < issued:
        raise PersonaError(f"{where}: {value} is before issuance ({issued})")
    for which, state, end in certificates:
        if state != "valid" and moment > end:
            raise PersonaError(
                f"{where}: {value} is after the {which} certificate ends "
                f"({end.astimezone(JST).date()})"
            )
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
            raise PersonaError(f"{t.path(key)}: tries left must be 0-{limit}, got {shown(value)}")
        out[key] = value
    return out


def _images(t: _Table, base: Path) -> dict[str, Path]:
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
    found.setdefault("text", set()).add(text_ap.BLOCKED_KEY)
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
    """Validate persona TOML given as bytes; image paths are relative to ``base``."""
    if len(raw) > MAX_PERSONA_BYTES:
        raise PersonaError(
            f"{source}: more than {MAX_PERSONA_BYTES // 1024 // 1024} MiB, not a persona"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise PersonaError(f"{source}: not UTF-8 text (line {bad_line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        field = _field_at_error(text, str(exc))
        raise PersonaError(_clean(f"{source}: {field}not valid TOML ({exc})")) from None
    except RecursionError:
        line = _too_deep_line(text)
        field = _field_at_line(text, line) if line else ""
        where = f" (line {line})" if line else ""
        raise PersonaError(f"{source}: {field}arrays or tables nested too deeply{where}") from None
    try:
        return _build(_Table(data, ""), hashlib.sha256(raw).hexdigest(), base or Path.cwd())
    except PersonaError as exc:
        raise PersonaError(_clean(f"{source}: {exc}")) from None


def _clean(message: str) -> str:
    """``message`` with control characters escaped, cut to :data:`MAX_MESSAGE_CHARS`."""
    message = "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in _FORBIDDEN_CATEGORIES else char
        for char in message
    )
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _too_deep_line(text: str) -> int | None:
    """The line where arrays / inline tables first nest deeper than :data:`MAX_NESTING`."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        quote = ""
        for char in line:
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    return number
            elif char in "]}":
                depth -= 1
    return None


def _field_at_error(text: str, message: str) -> str:
    """``'holder.birth_date: '`` for a TOML error on that field's line (e.g. 1980-02-30)."""
    found = re.search(r"line (\d+)", message)
    if found is None:
        return ""
    return _field_at_line(text, int(found.group(1)))


def _field_at_line(text: str, number: int) -> str:
    """``'holder.birth_date: '`` when line ``number`` sets that field, else ``''``."""
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


TOP_LEVEL_FIELDS = frozenset(
    {"label", "holder", "card", "pins", "certificates", "counters", "images", "policy", "access"}
)


def _build(top: _Table, digest: str, base: Path) -> Persona:
    unknown = {key: top.data[key] for key in top.data if key not in TOP_LEVEL_FIELDS}
    if unknown:  # a misspelt table is reported before the fields it lacks
        _Table(unknown, "").done()
    label = top.text("label", "persona", max_chars=MAX_LABEL_CHARS)
    if not label.strip():
        raise PersonaError("label: must not be empty")
    holder = _holder(top.table("holder"))
    card = _card(top.table("card"), holder.birth_date)
    pins = _pins(top.table("pins"))
    certificates = _certificates(top.table("certificates"), card, holder.birth_date)
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
    access = _access(top.take("access", {}), overlays)
    top.done()
    _check_drawable(holder, images)
    return Persona(
        label, holder, card, pins, certificates, counters, images, policy, access, digest
    )
