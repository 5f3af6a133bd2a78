"""Personalization of a profile from its data: a card built from the profile TOML alone.

Every EF names a content source (:data:`SOURCES`; a source that gives a list of records makes a
record EF), every key an algorithm, a use, the persona key ``purpose`` it is asked for and the
tree whose certificate it gets, every credential a format, try limit and value
(:data:`VALUE_NAMES`); the access rules are the profile's own tables or a rules file with
overlays. Adding a profile that uses these sources needs no code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from apdu import tlv
from apdu.vocabulary import resolve_atr
from card_emulator.access import AccessRules, RulesError, load_rules, parse_fid
from card_emulator.apps import common as common_ap
from card_emulator.apps import jpki as jpki_ap
from card_emulator.apps import juki as juki_ap
from card_emulator.apps import kenmen as kenmen_ap
from card_emulator.apps import text as text_ap
from card_emulator.apps.offset_table import read_offsets, with_offset_table
from card_emulator.check_codes import birth_date_key, check_code_b
from card_emulator.objects import (
    Application,
    ChangeCommand,
    Credential,
    CredentialFormat,
    KeyObject,
    KeyUse,
)
from card_emulator.persona import Persona, PersonaError
from card_emulator.policy import CardPolicy
from card_emulator.profiles import CardProfile, ProfileError
from jpki.clock import jst_day_end
from jpki.cv_certificate import EMULATOR_TEXT_AP_KEY_ID, KeyId, encode_rsa_public_key
from jpki.keys import KeyAlgorithm, PrivateKey, generate_key
from jpki.names import Tree
from jpki.pki_store import IssuedCertificate, PkiStore
from jpki.profile import nth_birthday_after

Content = bytes | list[bytes]
"""What a source makes: a transparent EF's bytes, or a record EF's records."""


@dataclass
class BuildContext:
    """What content sources see: the persona, the PKI, certificates, keys and EFs made so far."""

    persona: Persona
    store: PkiStore
    profile: CardProfile
    images: Callable[[], Mapping[str, bytes]]
    """The 券面 images by kind (made on first use)."""
    issued: dict[Tree, IssuedCertificate] = field(default_factory=dict)
    keys: dict[int, KeyObject] = field(default_factory=dict)
    """The keys of the application being built (the key-delivery key included)."""
    files: dict[int, bytes] = field(default_factory=dict)
    """The transparent EFs of the application being built, in declaration order."""

    def key(self, params: Mapping[str, Any]) -> rsa.RSAPublicKey:
        """The public half of the RSA key ``params["key"]`` (a FID) of this application."""
        fid = parse_fid(str(params["key"]), "key")
        public = self.keys[fid].public_key
        if not isinstance(public, rsa.RSAPublicKey):
            raise ProfileError(f"key {fid:04X}: this source needs an RSA key")
        return public


Source = Callable[[BuildContext, Mapping[str, Any]], Content]


def _tree(params: Mapping[str, Any]) -> Tree:
    return Tree(params.get("tree", "auth"))


def _date(day: dt.date) -> bytes:
    return day.strftime("%Y%m%d").encode("ascii")


def _certificate(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return ctx.issued[_tree(params)].certificate.public_bytes(Encoding.DER)


def _ca_certificate(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return ctx.issued[_tree(params)].authority.certificate.public_bytes(Encoding.DER)


def _token_info(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return jpki_ap.token_info(params.get("token", ctx.persona.card.token), ctx.persona.card.serial)


def _hex(_ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return bytes.fromhex(str(params["value"]))


def _filler(_ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return bytes([int(params.get("byte", 0xFF))]) * int(params.get("size", 16))


def _my_number(ctx: BuildContext, _params: Mapping[str, Any]) -> Content:
    return text_ap.my_number_file(ctx.persona.holder.my_number)


def _field_value(ctx: BuildContext, name: str) -> bytes:
    h = ctx.persona.holder
    values: dict[str, Callable[[], bytes]] = {
        "name": lambda: h.name.encode("utf-8"),
        "address": lambda: h.address.encode("utf-8"),
        "birth_date": lambda: _date(h.birth_date),
        "sex": lambda: str(h.sex).encode("ascii"),
        "my_number": lambda: h.my_number.encode("ascii"),
        "expiry": lambda: _date(ctx.persona.card.expiry),
        "romanized_name": lambda: _romanized(ctx).encode("ascii"),
    }
    if name not in values:
        raise ProfileError(f"unknown card-face field {name!r} (known: {', '.join(values)})")
    return values[name]()


def _romanized(ctx: BuildContext) -> str:
    if ctx.persona.holder.romanized_name is None:
        raise PersonaError(
            f"persona {ctx.persona.label!r}: holder.romanized_name: the "
            f"{ctx.profile.name} profile puts a romanised name on the card face"
        )
    return ctx.persona.holder.romanized_name


def _attributes(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    """``tag { DF21 offsets, <field TLVs> }``; ``fields`` maps a tag (hex) to a holder field."""
    fields = params["fields"]
    items = [tlv.encode(int(tag, 16), _field_value(ctx, name)) for tag, name in fields.items()]
    return with_offset_table(int(params.get("tag", "FF20"), 16), items)


def _integrity(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    """``FF30 { DF31 H(EF 1), DF32 H(EF 2 fields) …, DF3n signature }`` by a CV data signer.

    An EF that opens with a ``DF21`` offset table is hashed from its first field to the end of
    its outer value, as the 券面事項入力補助AP's integrity record does (card-facts §6.3).
    """
    digest_name = str(params.get("hash", "sha256"))
    tag = 0xDF31
    digests = b""
    for fid_text in params["files"]:
        data = ctx.files[parse_fid(fid_text, "integrity.files")]
        outer = tlv.decode_one(data)
        part = data
        if outer.value[:2] == b"\xdf\x21":
            part = data[read_offsets(data)[0] : outer.end]
        digests += tlv.encode(tag, hashlib.new(digest_name, part).digest())
        tag += 1
    signature = ctx.store.cv_signer(str(params.get("signer", "text"))).sign(digests)
    return tlv.encode(0xFF30, digests + tlv.encode(tag, signature))


def _cv_certificate(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return ctx.store.cv_signer(str(params.get("signer", "text"))).certificate.to_bytes()


def _text_ap_info(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    key_id = params.get("key_id")
    chosen = EMULATOR_TEXT_AP_KEY_ID if key_id is None else KeyId.from_parts(str(key_id))
    return text_ap.ap_info_file(chosen, ctx.persona.card.serial)


def _public_key(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    """``<tag> { 90 modulus, 91 exponent }`` of an RSA key of this application."""
    return tlv.encode(int(str(params.get("tag", "A1")), 16), encode_rsa_public_key(ctx.key(params)))


def _signed_key(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    return text_ap.signed_key_file(ctx.key(params), ctx.store.cv_signer(str(params["signer"])))


def _age(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    signer = ctx.store.cv_signer(str(params["signer"]))
    return kenmen_ap.age_file(ctx.persona.holder.birth_date, ctx.key(params), signer)


def _face(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    h, images = ctx.persona.holder, ctx.images()
    return kenmen_ap.face_file(
        birth_date=h.birth_date,
        sex=h.sex,
        card_key=ctx.key(params),
        name_png=images["name"],
        address_png=images["address"],
        photo_jp2=images["photo"],
        expiry=ctx.persona.card.expiry,
        security_code_png=images["security_code"],
        signer=ctx.store.cv_signer(str(params["signer"])),
    )


def _kenmen_ap_info(ctx: BuildContext, _params: Mapping[str, Any]) -> Content:
    return kenmen_ap.ap_info_file(ctx.persona.card.municipality.code, ctx.persona.card.serial)


def _my_number_image(ctx: BuildContext, params: Mapping[str, Any]) -> Content:
    signer = ctx.store.cv_signer(str(params["signer"]))
    return kenmen_ap.my_number_image_file(ctx.images()["my_number"], ctx.key(params), signer)


def _card_record(ctx: BuildContext, _params: Mapping[str, Any]) -> Content:
    card = ctx.persona.card
    return [common_ap.card_record(card.serial, card.municipality.code, card.expiry)]


def _key_reference(_ctx: BuildContext, _params: Mapping[str, Any]) -> Content:
    return common_ap.key_reference_records()


def _resident_code(ctx: BuildContext, _params: Mapping[str, Any]) -> Content:
    """The 住民票コード: one simple-TLV record, or the bare digits (persona card.juki_layout)."""
    return juki_ap.resident_code_content(
        ctx.persona.holder.resident_code, ctx.persona.card.juki_layout
    )


SOURCES: dict[str, Source] = {
    "certificate": _certificate,
    "ca_certificate": _ca_certificate,
    "token_info": _token_info,
    "hex": _hex,
    "filler": _filler,
    "my_number": _my_number,
    "attributes": _attributes,
    "integrity": _integrity,
    "cv_certificate": _cv_certificate,
    "text_ap_info": _text_ap_info,
    "public_key": _public_key,
    "signed_key": _signed_key,
    "age": _age,
    "face": _face,
    "kenmen_ap_info": _kenmen_ap_info,
    "my_number_image": _my_number_image,
    "card_record": _card_record,
    "key_reference": _key_reference,
    "resident_code": _resident_code,
}
"""The content sources a profile's EFs may name (``{ source = "…", <parameters> }``)."""


def _value(persona: Persona, name: str) -> bytes:
    h, card, pins = persona.holder, persona.card, persona.pins
    values: dict[str, Callable[[], str]] = {
        "pins.jpki_auth": lambda: pins.jpki_auth,
        "pins.jpki_sign": lambda: pins.jpki_sign,
        "pins.text": lambda: pins.text,
        "pins.juki": lambda: pins.juki,
        "check_code": lambda: check_code_b(h.birth_date, card.expiry, card.security_code),
        "my_number": lambda: h.my_number,
        "birth_date_key": lambda: birth_date_key(h.birth_date),
    }
    if name == "random":
        return secrets.token_bytes(16)
    if name.startswith("hex:"):
        return bytes.fromhex(name[4:])
    if name not in values:
        raise ProfileError(f"unknown credential value {name!r} (known: {', '.join(VALUE_NAMES)})")
    return values[name]().encode("ascii")


VALUE_NAMES = (
    "pins.jpki_auth",
    "pins.jpki_sign",
    "pins.text",
    "pins.juki",
    "check_code",
    "my_number",
    "birth_date_key",
    "random",
    "hex:<bytes>",
)
"""What a profile credential's ``value`` may name (``random``: 16 bytes nobody knows)."""


def _credential(persona: Persona, fid: int, spec: Mapping[str, Any], where: str) -> Credential:
    fmt = CredentialFormat[str(spec.get("format", "PIN4"))]
    tries = int(spec.get("tries", 3))
    value = _value(persona, str(spec["value"]))
    literal = str(spec["value"]) in ("random",) or str(spec["value"]).startswith("hex:")
    if not literal and not fmt.accepts(value):
        raise PersonaError(f"persona {persona.label!r}: {where}: not {fmt.description}")
    return Credential(
        fid,
        str(spec.get("label", f"{fid:04X}")),
        fmt,
        tries,
        value,
        int(spec.get("remaining", tries)),
        ChangeCommand[str(spec.get("change", "NONE"))],
    )


def _source(spec: Any) -> tuple[str, Mapping[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("source"), str):
        return spec["source"], spec
    raise ProfileError(f"expected a source name or a table with 'source', got {spec!r}")


KeySource = Callable[[str], rsa.RSAPrivateKey]


def _keys(app: Mapping[str, Any], where: str, keys: KeySource | None) -> dict[int, KeyObject]:
    made: dict[int, KeyObject] = {}
    for fid_text, spec in app.get("keys", {}).items():
        algorithm = KeyAlgorithm.parse(spec.get("algorithm"), f"{where}.keys.{fid_text}.algorithm")
        purpose = spec.get("purpose")
        key: PrivateKey
        if keys is not None and purpose is not None and algorithm is KeyAlgorithm.RSA_2048:
            key = keys(str(purpose))
        else:
            key = generate_key(algorithm)
        fid = parse_fid(fid_text, f"{where}.keys")
        made[fid] = KeyObject(fid, str(spec.get("label", "")), key, KeyUse(spec["use"]))
    return made


def build_declared(
    profile: CardProfile,
    persona: Persona,
    store: PkiStore,
    issue: Callable[[Tree, PrivateKey], IssuedCertificate],
    *,
    keys: KeySource | None = None,
    images: Callable[[], Mapping[str, bytes]] = dict,
) -> tuple[list[Application], dict[str, AccessRules], dict[str, str]]:
    """The applications, rules and metadata of ``persona`` on a card of ``profile``.

    ``issue`` certifies a key in a tree (and records the certificate in ``store``); ``keys``
    gives the RSA keys that name a ``purpose``; ``images`` the 券面 images.
    """
    ctx = BuildContext(persona, store, profile, images)
    apps: list[Application] = []
    meta: dict[str, str] = {"profile": profile.name}
    generated: list[dict[int, KeyObject]] = []
    for index, app in enumerate(profile.applications):
        where = f"{profile.source}: applications[{index}]"
        try:
            generated.append(_keys(app, where, keys))
        except (ValueError, KeyError) as exc:
            raise ProfileError(f"{where}: {exc}") from None
    issued_at: list[tuple[Tree, PrivateKey]] = [
        (Tree(app["keys"][f"{fid:04X}"]["tree"]), key.private_key)
        for app, made in zip(profile.applications, generated, strict=True)
        for fid, key in made.items()
        if "tree" in app["keys"][f"{fid:04X}"]
    ]
    for tree, private_key in issued_at:  # certify every key before any EF names a certificate
        ctx.issued[tree] = issue(tree, private_key)
        meta[f"{tree.value}_certificate_serial"] = f"{ctx.issued[tree].certificate.serial_number:X}"
        meta[f"{tree.value}_ca_generation"] = str(ctx.issued[tree].authority.generation)
    for index, (app, made) in enumerate(zip(profile.applications, generated, strict=True)):
        apps.append(_application(ctx, app, made, f"{profile.source}: applications[{index}]"))
    return apps, _rules(profile, persona, meta), meta


def _application(
    ctx: BuildContext, app: Mapping[str, Any], made: dict[int, KeyObject], where: str
) -> Application:
    ctx.keys, ctx.files = made, {}
    records: dict[int, list[bytes]] = {}
    try:
        for fid_text, spec in app.get("files", {}).items():
            name, params = _source(spec)
            if name not in SOURCES:
                raise ProfileError(
                    f"{where}.files.{fid_text}: unknown source {name!r} "
                    f"(known: {', '.join(SOURCES)})"
                )
            fid = parse_fid(fid_text, f"{where}.files")
            content = SOURCES[name](ctx, params)
            if isinstance(content, list):
                records[fid] = content
            else:
                ctx.files[fid] = content
        credentials = {
            parse_fid(fid, f"{where}.credentials"): _credential(
                ctx.persona, parse_fid(fid, where), spec, f"{where}.credentials.{fid}"
            )
            for fid, spec in app.get("credentials", {}).items()
        }
    except (KeyError, ValueError) as exc:
        if isinstance(exc, PersonaError | ProfileError):
            raise
        raise ProfileError(f"{where}: {exc}") from None
    delivery = [key for key in made.values() if key.use is KeyUse.KEY_DELIVERY]
    return Application(
        name=app["name"],
        aid=bytes.fromhex(app["aid"]),
        label=app["label"],
        files=dict(ctx.files),
        records=records,
        keys={fid: key for fid, key in made.items() if key.use is not KeyUse.KEY_DELIVERY},
        credentials=credentials,
        session_key=delivery[0] if delivery else None,
    )


def _rules(profile: CardProfile, persona: Persona, meta: dict[str, str]) -> dict[str, AccessRules]:
    """A rules file with the token's overlays and the persona's overrides, or the profile's
    own ``rules`` tables."""
    if profile.setting("rules", None) is not None:
        overlays = list(profile.setting("overlays", {}).get(persona.card.token, []))
        meta["rule_overlays"] = ",".join(overlays)
        return load_rules(overlays, persona.access)
    meta["rule_overlays"] = ""
    try:
        return {
            app["name"]: AccessRules.from_data(app.get("rules", {}), f"{profile.source}: rules")
            for app in profile.applications
        }
    except RulesError as exc:
        raise ProfileError(str(exc)) from None


def apply_counters(applications: list[Application], persona: Persona, profile: CardProfile) -> None:
    """The persona's ``[counters]`` presets on a card of ``profile``: named credentials of
    today's card, or on another profile the credential holding the persona PIN of that name
    (:meth:`~card_emulator.profiles.CardProfile.counter_credentials`)."""
    by_name = {app.name: app for app in applications}
    places = profile.counter_credentials()
    for name, tries in persona.counters.items():
        application, fid, _limit = places[name]
        by_name[application].credentials[fid].remaining = tries


def profile_atr(profile: CardProfile) -> bytes:
    """The ATR the profile declares."""
    return resolve_atr(str(profile.setting("atr", "classic")))


def profile_policy(profile: CardProfile, persona: Persona) -> CardPolicy:
    """The profile's policy defaults, with every field the persona's ``[policy]`` sets."""
    defaults = CardPolicy().to_data()
    changed = {k: v for k, v in persona.policy.to_data().items() if defaults[k] != v}
    return CardPolicy.from_mapping({**profile.setting("policy", {}), **changed}, "policy")


def certificate_end(profile: CardProfile, issued: dt.date, birth: dt.date) -> dt.datetime:
    """notAfter of the profile's user certificates: the n-th birthday after issuance."""
    years = int(profile.setting("certificate_birthdays", 5))
    return jst_day_end(nth_birthday_after(issued, birth, years))
