"""The ``[certificates]`` table of a persona: name style, issue and expiry dates, revocation.

Dates are checked against the holder's birth and the card's issuance, and a ``revoked_at``
against the life of every certificate it revokes or holds, so personalization never issues a
certificate that contradicts itself.
"""

from __future__ import annotations

import datetime as dt

from card_emulator.persona_fields import PersonaTable
from card_emulator.persona_model import (
    CERTIFICATE_STATES,
    CardData,
    CertificateSettings,
    PersonaError,
)
from jpki.clock import JST, jst_day_end
from jpki.profile import validity_end
from jpki.revocation import RevocationError, RevocationReason, parse_reason
from jpki.toml_fields import shown


def certificate_settings(t: PersonaTable, card: CardData, birth: dt.date) -> CertificateSettings:
    """The validated ``[certificates]`` table ``t`` of a card issued on ``card.issued``."""
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


def _certificate_state(t: PersonaTable, which: str) -> tuple[str, RevocationReason | None]:
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
    t: PersonaTable, issued: dt.date, *certificates: tuple[str, str, dt.datetime]
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
