"""Personalization: persona → card content (keys generated on card, data signed, images made).

The caller passes the test PKI, a :class:`~jpki.pki_store.PkiStore` (an authentication and a
signature tree per name style, each with CA key generations, and the CV hierarchies that sign
the 券面 APs' data): a directory store that processes share (the harness's default is
``$MYNACARD_PKI``) or an in-memory one that writes nothing. Personalization never picks one
itself. Each certificate comes from the CA generation in force on
the persona's ``certificates.issued`` date, and is recorded in the PKI's database under the
persona's label (with the revocation state the persona asks for), so ``mynacard pki revoke
--persona LABEL`` and the OCSP / CRL services know it. Each card also carries its issuing CA
certificates (``000B`` / ``0002``) and CV certificates (``0004``).

Every card key comes from a :data:`KeySource` (default: a fresh RSA-2048 key each). Bulk issuance
(``mynacard issue``) passes one that shares the non-JPKI keys between the cards of a batch; the
keys a source is asked for are named by :data:`KEY_PURPOSES`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from apdu import tlv
from apdu.vocabulary import DEFAULT_ATR, resolve_atr
from card_emulator import render
from card_emulator.content import CardContent
from card_emulator.declared import (
    apply_counters,
    build_declared,
    certificate_end,
    profile_atr,
    profile_policy,
)
from card_emulator.objects import Application
from card_emulator.persona import Persona, PersonaError
from card_emulator.profiles import CardProfile, load_profile
from jpki.card_data_signer import CardDataSigner
from jpki.clock import Clock, default_clock, jst_day_end, jst_day_start
from jpki.cv_certificate import CvIssuer, KeyId
from jpki.database import CertificateRecord
from jpki.holder import HolderIdentity, Sex
from jpki.keys import KeyAlgorithm, PrivateKey, PublicKey, generate_rsa_key
from jpki.names import Municipality, NameStyle, Tree
from jpki.pki_store import IssuedCertificate, PkiError, PkiStore
from jpki.revocation import EventKind, RevocationError, RevocationEvent, RevocationReason

MF_ISSUER_KEY_REFERENCE = KeyId.from_parts("6900042")
"""GET DATA ``0042``: a 16-byte key reference (the real value is not published)."""

KeySource = Callable[[str], rsa.RSAPrivateKey]
"""Gives the private key for one card key, named by its purpose (one of :data:`KEY_PURPOSES`)."""

KEY_PURPOSES: tuple[str, ...] = (
    "jpki_auth",  # JPKI-AP 0017 利用者証明用秘密鍵 (certified)
    "jpki_sign",  # JPKI-AP 001A 署名用秘密鍵 (certified)
    "text_ap",  # 券面事項入力補助AP key 0013
    "text_sm",  # 券面事項入力補助AP key-delivery key (SET SESSION KEY; EF 0006 has its public half)
    "kenmen_card",  # 券面AP key 001A
    "common",  # common AP INTERNAL AUTHENTICATE key 0019
)
"""The card keys personalization asks a :data:`KeySource` for, in the order it asks."""


def fresh_keys(_purpose: str) -> rsa.RSAPrivateKey:
    """The default :data:`KeySource`: a new RSA-2048 key for every purpose."""
    return generate_rsa_key()


def _holder_identity(persona: Persona) -> HolderIdentity:
    h = persona.holder
    return HolderIdentity(
        name=h.name, sex=Sex(str(h.sex)), birth_date=h.birth_date, address=h.address
    )


def _issue(
    store: PkiStore,
    persona: Persona,
    tree: Tree,
    key: PrivateKey,
    *,
    not_after: dt.datetime,
    clock: Clock,
) -> IssuedCertificate:
    settings = persona.certificates
    style = NameStyle.PRODUCTION if settings.style == "production" else NameStyle.TEST
    municipality = Municipality(
        prefecture=persona.card.municipality.prefecture,
        city=persona.card.municipality.city,
        code=persona.card.municipality.code,
    )
    try:
        return store.issue_user_certificate(
            tree,
            style,
            key.public_key(),
            persona=persona.label,
            not_before=jst_day_start(settings.issued),
            not_after=not_after,
            holder=_holder_identity(persona) if tree is Tree.SIGN else None,
            municipality=municipality,
            clock=clock,
        )
    except PkiError as exc:
        raise PersonaError(f"persona {persona.label!r}: certificates.issued: {exc}") from None


def _apply_state(
    store: PkiStore, persona: Persona, record: CertificateRecord, clock: Clock
) -> None:
    """Record the revocation state the persona asks for (``[certificates] *_state``)."""
    settings = persona.certificates
    state, reason = (
        (settings.auth_state, settings.auth_reason)
        if record.tree is Tree.AUTH
        else (settings.sign_state, settings.sign_reason)
    )
    if state == "valid":
        return
    at = settings.revoked_at or record.not_before
    if state == "revoked":
        event = RevocationEvent(EventKind.REVOKE, at, reason or RevocationReason.UNSPECIFIED)
    else:
        event = RevocationEvent(EventKind.HOLD, at)
    try:
        store.change(record, event, clock=clock)
    except RevocationError as exc:
        raise PersonaError(f"persona {persona.label!r}: certificates.revoked_at: {exc}") from None


def _check_issuable(
    store: PkiStore,
    persona: Persona,
    ends: dict[Tree, dt.datetime],
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
) -> None:
    settings = persona.certificates
    style = NameStyle.PRODUCTION if settings.style == "production" else NameStyle.TEST
    not_before = jst_day_start(settings.issued)
    for tree, not_after in ends.items():
        try:
            store.authority_for_issuance(tree, style, not_before, not_after, algorithm)
        except PkiError as exc:
            raise PersonaError(f"persona {persona.label!r}: certificates.issued: {exc}") from None
        state = settings.auth_state if tree is Tree.AUTH else settings.sign_state
        if state != "valid" and settings.revoked_at and settings.revoked_at > not_after:
            raise PersonaError(
                f"persona {persona.label!r}: certificates.revoked_at: "
                f"{settings.revoked_at.isoformat()} is after the {tree.value} certificate ends "
                f"({not_after.isoformat()})"
            )


def _images(persona: Persona, given: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The 券面 images: ``given`` ones as they are, files the persona names, else rendered."""
    h, card = persona.holder, persona.card
    made: dict[str, tuple[str, Callable[[], bytes]]] = {
        "name": ("holder.name", lambda: render.render_name_png(h.name)),
        "address": ("holder.address", lambda: render.render_address_png(h.address)),
        "photo": ("holder.my_number", lambda: render.placeholder_photo_jp2(h.my_number)),
        "my_number": ("holder.my_number", lambda: render.render_my_number_png(h.my_number)),
        "security_code": (
            "card.security_code",
            lambda: render.render_security_code_png(card.security_code),
        ),
    }
    images: dict[str, bytes] = {}
    for kind, (field, make) in made.items():
        if given is not None and kind in given:
            images[kind] = given[kind]
            continue
        if kind in persona.images:
            images[kind] = render.load_image_file(persona.images[kind], kind)
            continue
        try:
            images[kind] = make()
        except ValueError as exc:
            raise PersonaError(f"{field}: cannot be drawn on the card face ({exc})") from None
    return images


GP_CARD_RECOGNITION_DATA = tlv.encode(
    0x73,
    tlv.encode(0x06, bytes.fromhex("2A864886FC6B01"))  # card recognition data
    + tlv.encode(0x60, tlv.encode(0x06, bytes.fromhex("2A864886FC6B02020101")))  # GP 2.1.1
    + tlv.encode(0x63, tlv.encode(0x06, bytes.fromhex("2A864886FC6B03")))  # card id scheme
    + tlv.encode(0x64, tlv.encode(0x06, bytes.fromhex("2A864886FC6B040215"))),  # SCP02 i=15
)
"""GET DATA ``0066``: a GlobalPlatform card recognition template (its content on the real card
is not published; this is the common GP 2.1.1 / SCP02 example)."""


def _card_data_objects(
    persona: Persona, mf_chain: CardDataSigner, card_key: rsa.RSAPublicKey
) -> dict[int, bytes]:
    """GET DATA objects at the issuer security domain (card-facts §1.3, myna-card ``mf.rs``).

    ``00F8`` and ``7F21`` are a CV chain without their ``7F21`` headers, as GET DATA returns
    them: the MF root certifies an intermediate (named in ``00F7``), which certifies a card key
    (which one is not published: ours is the 券面AP card key).
    """
    card = persona.card
    lower = CvIssuer(mf_chain.certificate.subject_key_id, mf_chain.private_key).issue(
        card_key, KeyId.from_parts(f"{card.municipality.code}20", "000")
    )
    return {
        0x0042: bytes(MF_ISSUER_KEY_REFERENCE),
        0x0045: card.serial.encode("ascii"),
        0x0066: GP_CARD_RECOGNITION_DATA,
        0x00F0: card.municipality.code.encode("ascii"),
        0x00F2: card.expiry.strftime("%Y%m%d").encode("ascii"),
        0x00F7: bytes(mf_chain.certificate.subject_key_id),
        0x00F8: tlv.decode_one(mf_chain.certificate.to_bytes()).value,
        0x7F21: tlv.decode_one(lower.to_bytes()).value,
        0x5F51: card.atr[1:],  # the contact ATR without TS
    }


def personalize(
    persona: Persona,
    *,
    store: PkiStore,
    clock: Clock | None = None,
    keys: KeySource | None = None,
    images: Mapping[str, bytes] | None = None,
) -> CardContent:
    """A new card for ``persona``: fresh keys and certificates, full (or preset) counters.

    Every certificate and every data signer comes from ``store``: the certificates are issued
    by it and recorded there at
    ``clock``'s now (default: the default clock); their validity and CA generation follow the
    persona's ``certificates.issued``. ``keys`` supplies every card key by purpose (default
    :func:`fresh_keys`: a new key each); a source that hands the same JPKI key to two cards makes
    cards that are not distinct holders, so give each card its own ``jpki_*`` keys. ``images``
    gives 券面 images by kind (``name``, ``address``, ``photo``, ``my_number``,
    ``security_code``) to use as they are, e.g. one rendering of an address many cards share;
    the others come from the persona's files or are rendered from its data.
    """
    profile = load_profile(persona.profile)
    return _content(persona, profile, store, clock, keys=keys or fresh_keys, images=images)


def _rsa(key: PublicKey) -> rsa.RSAPublicKey:
    assert isinstance(key, rsa.RSAPublicKey)  # today's card: every key is RSA-2048
    return key


def _content(
    persona: Persona,
    profile: CardProfile,
    store: PkiStore,
    clock: Clock | None,
    *,
    keys: KeySource,
    images: Mapping[str, bytes] | None,
) -> CardContent:
    """A card of ``profile`` from its data (:mod:`card_emulator.declared`)."""
    clock = clock or default_clock()
    settings = persona.certificates
    algorithm = KeyAlgorithm.parse(profile.setting("key_algorithm", "rsa-2048"), "key_algorithm")
    default_end = certificate_end(profile, settings.issued, persona.holder.birth_date)
    ends = {
        Tree.AUTH: jst_day_end(settings.auth_not_after) if settings.auth_not_after else default_end,
        Tree.SIGN: jst_day_end(settings.sign_not_after) if settings.sign_not_after else default_end,
    }
    _check_issuable(store, persona, ends, algorithm)  # before anything is recorded

    def issue(tree: Tree, key: PrivateKey) -> IssuedCertificate:
        issued = _issue(store, persona, tree, key, not_after=ends[tree], clock=clock)
        _apply_state(store, persona, issued.record, clock)
        return issued

    made: dict[str, bytes] = {}

    def card_images() -> Mapping[str, bytes]:
        if not made:
            made.update(_images(persona, images))
        return made

    applications, rules, meta = build_declared(
        profile, persona, store, issue, keys=keys, images=card_images
    )
    apply_counters(applications, persona, profile)
    # the persona's card.atr wins unless it is the default, which means "the profile's"
    default = persona.card.atr == resolve_atr(DEFAULT_ATR)
    content = CardContent(
        atr=profile_atr(profile) if default else persona.card.atr,
        applications=applications,
        rules=rules,
        policy=profile_policy(profile, persona),
        meta={
            "persona_label": persona.label,
            "persona_digest": persona.digest,
            "token": persona.card.token,
            **meta,
        },
        data_objects=_data_objects(profile, persona, store, applications),
    )
    content.check()
    return content


def _data_objects(
    profile: CardProfile, persona: Persona, store: PkiStore, applications: list[Application]
) -> dict[int, bytes]:
    """The card-level GET DATA objects the profile declares (``data_objects``), if any."""
    spec = profile.setting("data_objects", None)
    if spec is None:
        return {}
    app_name, _, fid = str(spec["card_key"]).partition(":")
    app = next(app for app in applications if app.name == app_name)
    card_key = app.keys[int(fid, 16)]
    return _card_data_objects(persona, store.cv_signer("mf"), _rsa(card_key.public_key))


_personalized: dict[tuple[str, str], CardContent] = {}
_personalized_lock = threading.Lock()


def personalized_copy(
    persona: Persona, store: PkiStore, *, keys: KeySource | None = None
) -> CardContent:
    """:func:`personalize` by ``store``, each distinct persona once per store and process; every
    call returns independent credentials (full or preset counters), keys and certificates shared.
    ``keys`` supplies the card keys of that one personalization (default :func:`fresh_keys`).
    """
    key = (store.location, persona.digest)
    with _personalized_lock:
        content = _personalized.get(key)
        if content is None:
            content = _personalized[key] = personalize(persona, store=store, keys=keys)
        return content.fresh_copy()
