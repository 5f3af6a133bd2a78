"""Personalization of a declared profile: a card built from profile data alone.

Every EF names a content source (:data:`SOURCES`), every key an algorithm and the tree whose
certificate it gets, every credential a format, try limit and value (:data:`VALUES`); the
access rules are the profile's own. Adding a profile that uses these sources needs no code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from apdu import tlv
from apdu.vocabulary import resolve_atr
from card_emulator.access import AccessRules, RulesError, parse_fid
from card_emulator.apps import jpki as jpki_ap
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
from jpki.keys import KeyAlgorithm, PrivateKey, generate_key
from jpki.names import Tree
from jpki.pki_store import IssuedCertificate, PkiStore
from jpki.profile import nth_birthday_after


@dataclass
class BuildContext:
    """What content sources see: the persona, the PKI, certificates and the EFs made so far."""

    persona: Persona
    store: PkiStore
    profile: CardProfile
    issued: dict[Tree, IssuedCertificate] = field(default_factory=dict)
    files: dict[int, bytes] = field(default_factory=dict)
    """The EFs of the application being built, in declaration order."""


Source = Callable[[BuildContext, Mapping[str, Any]], bytes]


def _tree(params: Mapping[str, Any]) -> Tree:
    return Tree(params.get("tree", "auth"))


def _certificate(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return ctx.issued[_tree(params)].certificate.public_bytes(Encoding.DER)


def _ca_certificate(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return ctx.issued[_tree(params)].authority.certificate.public_bytes(Encoding.DER)


def _token_info(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return jpki_ap.token_info(params.get("token", ctx.persona.card.token), ctx.persona.card.serial)


def _hex(_ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return bytes.fromhex(str(params["value"]))


def _filler(_ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return bytes([int(params.get("byte", 0xFF))]) * int(params.get("size", 16))


def _my_number(ctx: BuildContext, _params: Mapping[str, Any]) -> bytes:
    return text_ap.my_number_file(ctx.persona.holder.my_number)


def _field_value(ctx: BuildContext, name: str) -> bytes:
    h = ctx.persona.holder
    values: dict[str, Callable[[], bytes]] = {
        "name": lambda: h.name.encode("utf-8"),
        "address": lambda: h.address.encode("utf-8"),
        "birth_date": lambda: h.birth_date.strftime("%Y%m%d").encode("ascii"),
        "sex": lambda: str(h.sex).encode("ascii"),
        "my_number": lambda: h.my_number.encode("ascii"),
        "expiry": lambda: ctx.persona.card.expiry.strftime("%Y%m%d").encode("ascii"),
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


def _attributes(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    """``tag { DF21 offsets, <field TLVs> }``; ``fields`` maps a tag (hex) to a holder field."""
    fields = params["fields"]
    items = [tlv.encode(int(tag, 16), _field_value(ctx, name)) for tag, name in fields.items()]
    return with_offset_table(int(params.get("tag", "FF20"), 16), items)


def _integrity(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
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


def _cv_certificate(ctx: BuildContext, params: Mapping[str, Any]) -> bytes:
    return ctx.store.cv_signer(str(params.get("signer", "text"))).certificate.to_bytes()


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
}
"""The content sources a profile's EFs may name (``{ source = "…", <parameters> }``)."""


def _value(persona: Persona, name: str) -> str:
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
    if name not in values:
        raise ProfileError(f"unknown credential value {name!r} (known: {', '.join(values)})")
    return values[name]()


VALUE_NAMES = (
    "pins.jpki_auth",
    "pins.jpki_sign",
    "pins.text",
    "pins.juki",
    "check_code",
    "my_number",
    "birth_date_key",
)
"""What a profile credential's ``value`` may name."""


def _credential(persona: Persona, fid: int, spec: Mapping[str, Any], where: str) -> Credential:
    fmt = CredentialFormat[str(spec.get("format", "PIN4"))]
    tries = int(spec.get("tries", 3))
    value = _value(persona, str(spec["value"]))
    if not fmt.accepts(value.encode("ascii", "replace")):
        raise PersonaError(f"persona {persona.label!r}: {where}: not {fmt.description}")
    return Credential(
        fid,
        str(spec.get("label", f"{fid:04X}")),
        fmt,
        tries,
        value.encode("ascii"),
        tries,
        ChangeCommand[str(spec.get("change", "NONE"))],
    )


def _source(spec: Any) -> tuple[str, Mapping[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("source"), str):
        return spec["source"], spec
    raise ProfileError(f"expected a source name or a table with 'source', got {spec!r}")


def _keys(app: Mapping[str, Any], where: str) -> dict[int, tuple[Mapping[str, Any], PrivateKey]]:
    keys: dict[int, tuple[Mapping[str, Any], PrivateKey]] = {}
    for fid_text, spec in app.get("keys", {}).items():
        algorithm = KeyAlgorithm.parse(spec.get("algorithm"), f"{where}.keys.{fid_text}.algorithm")
        keys[parse_fid(fid_text, f"{where}.keys")] = (spec, generate_key(algorithm))
    return keys


def build_declared(
    profile: CardProfile,
    persona: Persona,
    store: PkiStore,
    issue: Callable[[Tree, PrivateKey], IssuedCertificate],
) -> tuple[list[Application], dict[str, AccessRules], dict[str, str]]:
    """The applications, rules and metadata of ``persona`` on a card of ``profile``.

    ``issue`` certifies a key in a tree (and records the certificate in ``store``).
    """
    ctx = BuildContext(persona, store, profile)
    apps: list[Application] = []
    rules: dict[str, AccessRules] = {}
    meta: dict[str, str] = {"profile": profile.name}
    generated = []
    for index, app in enumerate(profile.applications):
        where = f"{profile.source}: applications[{index}]"
        try:
            generated.append(_keys(app, where))
        except (ValueError, RulesError) as exc:
            raise ProfileError(str(exc)) from None
    for keys in generated:  # certify every key before any EF names a certificate
        for spec, key in keys.values():
            if "tree" in spec:
                tree = Tree(spec["tree"])
                ctx.issued[tree] = issue(tree, key)
                meta[f"{tree.value}_certificate_serial"] = (
                    f"{ctx.issued[tree].certificate.serial_number:X}"
                )
                meta[f"{tree.value}_ca_generation"] = str(ctx.issued[tree].authority.generation)
    for index, (app, keys) in enumerate(zip(profile.applications, generated, strict=True)):
        where = f"{profile.source}: applications[{index}]"
        ctx.files = {}
        try:
            for fid_text, spec in app.get("files", {}).items():
                name, params = _source(spec)
                if name not in SOURCES:
                    raise ProfileError(
                        f"{where}.files.{fid_text}: unknown source {name!r} "
                        f"(known: {', '.join(SOURCES)})"
                    )
                ctx.files[parse_fid(fid_text, f"{where}.files")] = SOURCES[name](ctx, params)
            records = {
                parse_fid(fid, f"{where}.records"): [bytes.fromhex(r) for r in items]
                for fid, items in app.get("records", {}).items()
            }
            credentials = {
                parse_fid(fid, f"{where}.credentials"): _credential(
                    persona, parse_fid(fid, where), spec, f"{where}.credentials.{fid}"
                )
                for fid, spec in app.get("credentials", {}).items()
            }
            rules[app["name"]] = AccessRules.from_data(app.get("rules", {}), f"{where}.rules")
        except (KeyError, ValueError) as exc:
            if isinstance(exc, PersonaError | ProfileError):
                raise
            raise ProfileError(f"{where}: {exc}") from None
        apps.append(
            Application(
                name=app["name"],
                aid=bytes.fromhex(app["aid"]),
                label=app["label"],
                files=dict(ctx.files),
                records=records,
                keys={
                    fid: KeyObject(fid, str(spec.get("label", "")), key, KeyUse(spec["use"]))
                    for fid, (spec, key) in keys.items()
                },
                credentials=credentials,
            )
        )
    return apps, rules, meta


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
