"""Personalization: persona → card content (keys generated on card, certificates issued).

Until the declared test PKI exists, certificates are issued by a process-wide pair of test CAs
(one authentication tree, one signature tree per name style), created on first use. Each card
carries its CA certificates in ``000B`` / ``0002``, so it is self-consistent.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading

from card_emulator.access import load_rules
from card_emulator.apps import jpki as jpki_ap
from card_emulator.content import CardContent
from card_emulator.objects import Application, KeyObject, KeyUse
from card_emulator.persona import Persona
from jpki.ca import CertificateAuthority
from jpki.holder import HolderIdentity, Sex
from jpki.keys import generate_rsa_key
from jpki.names import Municipality, NameStyle, Tree, make_subject_id
from jpki.profile import random_serial_number, validity_end

JST = dt.timezone(dt.timedelta(hours=9), "JST")
DEFAULT_CA_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
DEFAULT_CA_NOT_AFTER = dt.datetime(2045, 12, 31, 14, 59, 59, tzinfo=dt.UTC)

_cache: dict[str, CardContent] = {}
_cache_lock = threading.Lock()


@functools.cache
def default_ca(tree: Tree, style: NameStyle) -> CertificateAuthority:
    """The process-wide test CA of one tree and name style (generation 1)."""
    return CertificateAuthority.create(
        tree,
        style=style,
        generation=1,
        not_before=DEFAULT_CA_NOT_BEFORE,
        not_after=DEFAULT_CA_NOT_AFTER,
    )


def _end_of_day_jst(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), JST).astimezone(dt.UTC)


def _start_of_day_jst(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), JST).astimezone(dt.UTC)


def _holder_identity(persona: Persona) -> HolderIdentity:
    h = persona.holder
    return HolderIdentity(
        name=h.name, sex=Sex(str(h.sex)), birth_date=h.birth_date, address=h.address
    )


def _jpki_application(persona: Persona) -> tuple[Application, dict[str, str]]:
    style = NameStyle.PRODUCTION if persona.certificates.style == "production" else NameStyle.TEST
    issued = persona.certificates.issued
    not_before = _start_of_day_jst(issued)
    municipality = Municipality(
        prefecture=persona.card.municipality.prefecture,
        city=persona.card.municipality.city,
        code=persona.card.municipality.code,
    )
    default_end = validity_end(issued, persona.holder.birth_date)
    ends = {
        Tree.AUTH: _end_of_day_jst(persona.certificates.auth_not_after)
        if persona.certificates.auth_not_after
        else default_end,
        Tree.SIGN: _end_of_day_jst(persona.certificates.sign_not_after)
        if persona.certificates.sign_not_after
        else default_end,
    }
    keys = {tree: generate_rsa_key() for tree in Tree}
    cas = {tree: default_ca(tree, style) for tree in Tree}
    certificates = {}
    for tree in Tree:
        serial = random_serial_number()
        certificates[tree] = cas[tree].issue_user_certificate(
            keys[tree].public_key(),
            subject_id=make_subject_id(serial, issued),
            not_before=not_before,
            not_after=ends[tree],
            holder=_holder_identity(persona) if tree is Tree.SIGN else None,
            municipality=municipality,
            serial_number=serial,
        )
    app = jpki_ap.build(
        token=persona.card.token,
        serial=persona.card.serial,
        auth_certificate=certificates[Tree.AUTH],
        auth_ca=cas[Tree.AUTH].certificate,
        auth_key=KeyObject(jpki_ap.KEY_AUTH, "利用者証明用秘密鍵", keys[Tree.AUTH], KeyUse.SIGN),
        sign_certificate=certificates[Tree.SIGN],
        sign_ca=cas[Tree.SIGN].certificate,
        sign_key=KeyObject(jpki_ap.KEY_SIGN, "署名用秘密鍵", keys[Tree.SIGN], KeyUse.SIGN),
        auth_pin=persona.pins.jpki_auth,
        sign_password=persona.pins.jpki_sign,
        auth_tries=persona.counters.get("jpki_auth", jpki_ap.AUTH_PIN_TRIES),
        sign_tries=persona.counters.get("jpki_sign", jpki_ap.SIGN_PASSWORD_TRIES),
    )
    meta = {
        "auth_certificate_serial": f"{certificates[Tree.AUTH].serial_number:X}",
        "sign_certificate_serial": f"{certificates[Tree.SIGN].serial_number:X}",
    }
    return app, meta


def personalize(persona: Persona) -> CardContent:
    """A new card for ``persona``: fresh keys and certificates, full (or preset) counters."""
    overlays = ["smartphone"] if persona.smartphone else []
    rules = load_rules(overlays, persona.access)
    jpki_app, jpki_meta = _jpki_application(persona)
    content = CardContent(
        atr=persona.card.atr,
        applications=[jpki_app],
        rules=rules,
        policy=persona.policy,
        meta={
            "persona_label": persona.label,
            "persona_digest": persona.digest,
            "token": persona.card.token,
            "rule_overlays": ",".join(overlays),
            **jpki_meta,
        },
    )
    content.check()
    return content


def personalize_cached(persona: Persona) -> CardContent:
    """Like :func:`personalize`, but personalizes each distinct persona file once per process.

    Every call returns independent credentials (full or preset counters); keys and certificates
    are shared between the cards of one persona within a process.
    """
    with _cache_lock:
        content = _cache.get(persona.digest)
        if content is None:
            content = _cache[persona.digest] = personalize(persona)
        return content.fresh_copy()
