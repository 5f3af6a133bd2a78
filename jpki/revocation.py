"""Certificate states and JPKI revocation reasons, as a pure function of recorded events and time.

A user certificate's revocation history is a list of events — ``revoke`` (失効), ``hold``
(一時保留) and ``release`` (一時保留の解除) — each with the moment it takes effect. Its state at any
moment is computed from the events that took effect by then, so the PKI answers consistently
whatever the clock says: a certificate revoked "in 2027" is good to a relying party that asks
"in 2026" (time travel), and past its notAfter it is expired to everyone.

Reasons are the RFC 5280 CRLReason values used by JPKI:

==========================  ====  ==============================================================
``unspecified``              0    (RFC 5280: the reasonCode extension is then left out of CRLs)
``keyCompromise``            1    鍵の危殆化 — e.g. the card was lost or stolen
``cACompromise``             2    認証局の危殆化
``affiliationChanged``       3    記載内容変更 — 基本4情報 changed (a move): the 署名用 certificate
``superseded``               4    更新 — replaced by a new certificate
``cessationOfOperation``     5    業務停止
``certificateHold``          6    一時保留 — only through :attr:`EventKind.HOLD`, never ``revoke``
==========================  ====  ==============================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509

from apdu.errors import MynacardError

__all__ = [
    "CertificateState",
    "CertificateStatus",
    "EventKind",
    "RevocationError",
    "RevocationEvent",
    "RevocationReason",
    "RevocationStatus",
    "certificate_status",
    "check_new_event",
    "parse_reason",
    "revocation_status",
]


class RevocationError(MynacardError, ValueError):
    """A revocation request that cannot be applied (the message says why)."""


class RevocationReason(Enum):
    """CRLReason values (RFC 5280 §5.3.1) used by JPKI; the value is the RFC's ASN.1 name."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"

    @property
    def code(self) -> int:
        """The CRLReason enumeration value."""
        return _CODES[self]

    @property
    def japanese(self) -> str:
        """The Japanese term (記載内容変更 = affiliationChanged, 更新 = superseded, …)."""
        return _JAPANESE[self]

    @property
    def flag(self) -> x509.ReasonFlags:
        """The ``cryptography`` equivalent."""
        return x509.ReasonFlags(_FLAG_NAMES[self])


_CODES = {reason: index for index, reason in enumerate(RevocationReason)}
_JAPANESE = {
    RevocationReason.UNSPECIFIED: "理由なし",
    RevocationReason.KEY_COMPROMISE: "鍵の危殆化",
    RevocationReason.CA_COMPROMISE: "認証局の危殆化",
    RevocationReason.AFFILIATION_CHANGED: "記載内容変更",
    RevocationReason.SUPERSEDED: "更新",
    RevocationReason.CESSATION_OF_OPERATION: "業務停止",
    RevocationReason.CERTIFICATE_HOLD: "一時保留",
}
_FLAG_NAMES = {
    RevocationReason.UNSPECIFIED: "unspecified",
    RevocationReason.KEY_COMPROMISE: "keyCompromise",
    RevocationReason.CA_COMPROMISE: "cACompromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliationChanged",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessationOfOperation",
    RevocationReason.CERTIFICATE_HOLD: "certificateHold",
}


def _fold(text: str) -> str:
    return text.replace("_", "").replace("-", "").replace(" ", "").casefold()


_BY_SPELLING = {
    **{_fold(reason.value): reason for reason in RevocationReason},
    **{_fold(reason.name): reason for reason in RevocationReason},
    **{reason.japanese: reason for reason in RevocationReason},
    "moved": RevocationReason.AFFILIATION_CHANGED,
}


def parse_reason(text: str, *, allow_hold: bool = False) -> RevocationReason:
    """``affiliationChanged`` / ``affiliation_changed`` / ``記載内容変更`` / ``moved`` → the reason.

    ``certificateHold`` is refused unless ``allow_hold``: a hold is its own operation.
    """
    reason = _BY_SPELLING.get(_fold(text))
    if reason is None:
        known = ", ".join(
            r.value for r in RevocationReason if r is not RevocationReason.CERTIFICATE_HOLD
        )
        raise RevocationError(f"unknown revocation reason {text!r} (known: {known})")
    if reason is RevocationReason.CERTIFICATE_HOLD and not allow_hold:
        raise RevocationError("certificateHold (一時保留) is set with 'hold', not as a reason")
    return reason


class EventKind(Enum):
    """What happened to a certificate."""

    REVOKE = "revoke"
    """失効 — final."""
    HOLD = "hold"
    """一時保留 — revoked with reason certificateHold until released."""
    RELEASE = "release"
    """一時保留の解除 — back to good."""


@dataclass(frozen=True)
class RevocationEvent:
    """One recorded change of a certificate's revocation status, effective at ``at``."""

    kind: EventKind
    at: dt.datetime
    reason: RevocationReason | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        if self.kind is EventKind.REVOKE:
            if self.reason is None or self.reason is RevocationReason.CERTIFICATE_HOLD:
                raise ValueError("a revocation needs a reason other than certificateHold")
        elif self.reason is not None:
            raise ValueError(f"a {self.kind.value} event carries no reason")


@dataclass(frozen=True)
class RevocationStatus:
    """Revocation status at one moment, regardless of the validity period."""

    revoked: bool = False
    on_hold: bool = False
    reason: RevocationReason | None = None
    """The revocation reason, ``CERTIFICATE_HOLD`` while on hold, else None."""
    since: dt.datetime | None = None
    """When the revocation (or hold) took effect."""

    @property
    def good(self) -> bool:
        """Neither revoked nor on hold."""
        return not (self.revoked or self.on_hold)


def _ordered(events: Iterable[RevocationEvent]) -> list[RevocationEvent]:
    return sorted(events, key=lambda event: event.at)


def revocation_status(events: Iterable[RevocationEvent], moment: dt.datetime) -> RevocationStatus:
    """The revocation status at ``moment`` from the events effective by then."""
    status = RevocationStatus()
    for event in _ordered(events):
        if event.at > moment:
            break
        if status.revoked:
            continue  # revocation is final
        if event.kind is EventKind.REVOKE:
            status = RevocationStatus(revoked=True, reason=event.reason, since=event.at)
        elif event.kind is EventKind.HOLD:
            status = RevocationStatus(
                on_hold=True, reason=RevocationReason.CERTIFICATE_HOLD, since=event.at
            )
        else:
            status = RevocationStatus()
    return status


def check_new_event(events: Sequence[RevocationEvent], new: RevocationEvent) -> None:
    """Raise :class:`RevocationError` unless ``new`` may follow ``events``.

    Events are appended in time order; a revocation is final; a hold needs a good certificate
    and a release a held one.
    """
    ordered = _ordered(events)
    if ordered and new.at < ordered[-1].at:
        raise RevocationError(
            f"{new.kind.value} at {new.at.isoformat()} is before the certificate's last recorded "
            f"change ({ordered[-1].kind.value} at {ordered[-1].at.isoformat()})"
        )
    before = revocation_status(ordered, new.at)
    if before.revoked:
        raise RevocationError(
            f"already revoked ({before.reason.value if before.reason else '?'}) since "
            f"{before.since.isoformat() if before.since else '?'}"
        )
    if new.kind is EventKind.HOLD and before.on_hold:
        raise RevocationError("already on hold (一時保留)")
    if new.kind is EventKind.RELEASE and not before.on_hold:
        raise RevocationError("not on hold, nothing to release")


class CertificateState(Enum):
    """What a relying party should conclude about a certificate at one moment."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    HOLD = "hold"
    NOT_YET_VALID = "not_yet_valid"


@dataclass(frozen=True)
class CertificateStatus:
    """State at one moment: validity first (past notAfter it is 'expired'), then revocation."""

    state: CertificateState
    revocation: RevocationStatus

    @property
    def reason(self) -> RevocationReason | None:
        """The revocation reason (``CERTIFICATE_HOLD`` while on hold), if any."""
        return self.revocation.reason


def certificate_status(
    not_before: dt.datetime,
    not_after: dt.datetime,
    events: Iterable[RevocationEvent],
    moment: dt.datetime,
) -> CertificateStatus:
    """The state of a certificate with this validity period and history at ``moment``."""
    revocation = revocation_status(events, moment)
    if moment < not_before:
        state = CertificateState.NOT_YET_VALID
    elif moment > not_after:
        state = CertificateState.EXPIRED
    elif revocation.revoked:
        state = CertificateState.REVOKED
    elif revocation.on_hold:
        state = CertificateState.HOLD
    else:
        state = CertificateState.VALID
    return CertificateStatus(state, revocation)
