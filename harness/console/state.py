"""What the console shows of a reader: one frozen, JSON-ready record per reader.

A snapshot holds names, counters and states, never a secret: no PIN, password or 照合番号
value, no key, no APDU data. Credentials are named as ``apdu.vocabulary.CREDENTIALS`` names them;
certificate states come from the attached PKI's records of the card's own certificates (by the
serial numbers personalization wrote into the card's metadata).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from apdu import CodecError, tlv
from apdu.vocabulary import APPLICATIONS, CREDENTIALS, Text, credential_name
from card_emulator import Card
from card_emulator.card import SecurityStatus
from card_emulator.objects import Credential
from harness.console.controlled_card import ControlledCard
from jpki.database import CertificateRecord
from jpki.names import Tree


class CertificateLookup(Protocol):
    """Where certificate records come from: a :class:`PkiStore` or a cache of one."""

    def certificates(
        self, *, persona: str | None = None, tree: Tree | None = None, serial: int | None = None
    ) -> list[CertificateRecord]: ...


_SERIAL_KEYS = {Tree.AUTH: "auth_certificate_serial", Tree.SIGN: "sign_certificate_serial"}


@dataclass(frozen=True, slots=True)
class CredentialState:
    """One credential's retry counter."""

    name: str | None
    """The ``CREDENTIALS`` name (``jpki_auth``...); ``None`` for a credential without one."""
    application: str
    fid: int
    label: str
    tries_left: int
    max_tries: int

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0

    @classmethod
    def of(cls, application: str, credential: Credential) -> CredentialState:
        return _credential_state(
            application,
            credential.fid,
            credential.label,
            credential.remaining,
            credential.max_tries,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "application": self.application,
            "fid": f"{self.fid:04X}",
            "label": self.label,
            "tries_left": self.tries_left,
            "max_tries": self.max_tries,
            "blocked": self.blocked,
        }


@dataclass(frozen=True, slots=True)
class CertificateView:
    """One of the card's JPKI certificates and its state in the attached PKI."""

    tree: str
    """``auth`` (利用者証明用) or ``sign`` (署名用)."""
    serial: str
    """Serial number, uppercase hex."""
    state: str | None
    """``valid``, ``revoked``, ``hold``, ``expired``, ``not_yet_valid``; ``unrecorded`` when the
    attached PKI has no record of it; ``None`` without a PKI."""
    reason: str | None = None
    since: str | None = None
    not_after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tree": self.tree,
            "serial": self.serial,
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "not_after": self.not_after,
        }


@dataclass(frozen=True, slots=True)
class FaultsState:
    """The fault scenario applied to a card, and how many of its faults fired."""

    scenario: str
    faults: tuple[str, ...]
    """Each fault as ``kind`` (``kind @ match`` when it matches some commands only)."""
    fired: int

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "faults": list(self.faults), "fired": self.fired}


@dataclass(frozen=True, slots=True)
class ReaderState:
    """One reader and the card in it, at one moment."""

    index: int
    reader: str
    inserted: bool
    powered: bool
    atr: str
    persona: str | None
    """The persona label the card was personalized from."""
    holder: str | None
    """The holder's name (氏名), as the card's 券面事項入力補助AP holds it."""
    application: str | None
    """The selected application's name (``jpki``...); ``None`` at the issuer security domain."""
    verified: tuple[str, ...]
    """The credentials verified now (``CREDENTIALS`` names)."""
    secure_messaging: bool
    storage_failed: bool
    credentials: tuple[CredentialState, ...]
    certificates: tuple[CertificateView, ...]
    faults: FaultsState | None

    def credential(self, name: str) -> CredentialState:
        """The credential called ``name`` (KeyError if the card has none)."""
        for credential in self.credentials:
            if credential.name == name:
                return credential
        raise KeyError(name)

    def packed(self) -> tuple[Any, ...]:
        """This state as nested tuples of plain values, which pickle several times faster than
        the dataclasses (the console process asks for snapshots many times a second);
        :meth:`unpacked` makes it again."""
        return (
            self.index,
            self.reader,
            self.inserted,
            self.powered,
            self.atr,
            self.persona,
            self.holder,
            self.application,
            self.verified,
            self.secure_messaging,
            self.storage_failed,
            tuple(
                (c.name, c.application, c.fid, c.label, c.tries_left, c.max_tries)
                for c in self.credentials
            ),
            tuple(
                (v.tree, v.serial, v.state, v.reason, v.since, v.not_after)
                for v in self.certificates
            ),
            None
            if self.faults is None
            else (self.faults.scenario, self.faults.faults, self.faults.fired),
        )

    @classmethod
    def unpacked(cls, packed: tuple[Any, ...]) -> ReaderState:
        """The state :meth:`packed` made of it."""
        (
            index,
            reader,
            inserted,
            powered,
            atr,
            persona,
            holder,
            application,
            verified,
            secure_messaging,
            storage_failed,
            credentials,
            certificates,
            faults,
        ) = packed
        return cls(
            index,
            reader,
            inserted,
            powered,
            atr,
            persona,
            holder,
            application,
            verified,
            secure_messaging,
            storage_failed,
            tuple(CredentialState(*each) for each in credentials),
            tuple(CertificateView(*each) for each in certificates),
            FaultsState(*faults) if faults is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        app = APPLICATIONS.get(self.application or "")
        return {
            "index": self.index,
            "reader": self.reader,
            "inserted": self.inserted,
            "powered": self.powered,
            "atr": self.atr,
            "persona": self.persona,
            "holder": self.holder,
            "application": self.application,
            "application_label": app.label if app is not None else None,
            "verified": list(self.verified),
            "secure_messaging": self.secure_messaging,
            "storage_failed": self.storage_failed,
            "credentials": [c.to_json() for c in self.credentials],
            "certificates": [c.to_json() for c in self.certificates],
            "faults": self.faults.to_json() if self.faults is not None else None,
        }


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """What does not change while a card is in use: persona, holder, certificate serials."""

    persona: str | None
    holder: str | None
    serials: tuple[tuple[Tree, str], ...]

    @classmethod
    def of(cls, card: Card) -> CardIdentity:
        meta = card.content.meta
        serials = tuple((tree, meta[key]) for tree, key in _SERIAL_KEYS.items() if key in meta)
        return cls(meta.get("persona_label"), holder_name(card), serials)


def holder_name(card: Card) -> str | None:
    """The holder's name (氏名, ``DF22`` of the ``FF20`` attributes in EF ``0002``) as the card
    holds it: in today's 券面事項入力補助AP or a next-generation card's (仮称)券面等AP; ``None``
    when no application holds a readable one."""
    for app in card.content.applications:
        raw = app.files.get(Text.EF_ATTRIBUTES)
        if raw is None or raw[:2] != b"\xff\x20":
            continue
        try:
            return tlv.decode_one(raw).child(0xDF22).value.decode("utf-8")
        except (CodecError, ValueError):
            return None
    return None


def _moment_text(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def certificate_views(
    identity: CardIdentity, pki: CertificateLookup | None, moment: dt.datetime
) -> tuple[CertificateView, ...]:
    """The card's certificates, with their state at ``moment`` in ``pki`` when given."""
    views = []
    for tree, serial in identity.serials:
        if pki is None:
            views.append(CertificateView(tree.value, serial, None))
            continue
        records = pki.certificates(persona=identity.persona, tree=tree, serial=int(serial, 16))
        if not records:
            views.append(CertificateView(tree.value, serial, "unrecorded"))
            continue
        record = records[-1]
        status = record.status(moment)
        reason = status.reason
        views.append(
            CertificateView(
                tree.value,
                serial,
                status.state.value,
                reason.value if reason is not None else None,
                _moment_text(status.revocation.since),
                _moment_text(record.not_after),
            )
        )
    return tuple(views)


@functools.lru_cache(maxsize=4096)
def _credential_state(
    application: str, fid: int, label: str, remaining: int, max_tries: int
) -> CredentialState:
    """:meth:`CredentialState.of`, kept: a snapshot reads some fifteen counters that seldom
    change, in the card's process, many times a second."""
    name = credential_name(application, fid)
    shown = CREDENTIALS[name].label if name is not None else label
    return CredentialState(name, application, fid, shown, remaining, max_tries)


def _sorted_credentials(credentials: Mapping[int, Credential]) -> list[Credential]:
    return [credentials[fid] for fid in sorted(credentials)]


def _faults_state(controlled: ControlledCard) -> FaultsState | None:
    faulty = controlled.faults
    if faulty is None:
        return None
    kinds = tuple(
        fault.kind if not fault.match.values else f"{fault.kind} @ {fault.match}"
        for fault in faulty.scenario.faults
    )
    return FaultsState(faulty.scenario.name, kinds, len(faulty.fired))


class _CardFacts(NamedTuple):
    """What a state reads of the card itself (under its lock)."""

    identity: CardIdentity
    status: SecurityStatus
    credentials: tuple[CredentialState, ...]
    faults: FaultsState | None
    atr: str
    powered: bool
    inserted: bool


def _card_facts(controlled: ControlledCard, identify: Callable[[Card], CardIdentity]) -> _CardFacts:
    with controlled.lock:
        card = controlled.card
        identity = identify(card)
        status = card.security_status()
        credentials = tuple(
            CredentialState.of(app.name, credential)
            for app in card.content.applications
            for credential in _sorted_credentials(app.credentials)
        )
        faults = _faults_state(controlled)
        atr = controlled.atr.hex(" ").upper()
        powered = card.powered
    return _CardFacts(identity, status, credentials, faults, atr, powered, controlled.inserted)


def reader_state(
    index: int,
    reader: str,
    controlled: ControlledCard,
    *,
    identify: Callable[[Card], CardIdentity],
    pki: CertificateLookup | None,
    moment: dt.datetime,
) -> ReaderState:
    """The state of ``reader`` now; the card is read under its lock, the PKI outside it.
    ``identify`` gives a card's :class:`CardIdentity` (a cache: :meth:`CardIdentity.of`)."""
    facts = _card_facts(controlled, identify)
    status = facts.status
    verified = tuple(
        credential_name(status.application, fid) or f"{status.application} {fid:04X}"
        for fid in sorted(status.verified)
        if status.application is not None
    )
    return ReaderState(
        index=index,
        reader=reader,
        inserted=facts.inserted,
        powered=facts.powered and facts.inserted,
        atr=facts.atr,
        persona=facts.identity.persona,
        holder=facts.identity.holder,
        application=status.application,
        verified=verified,
        secure_messaging=status.secure_messaging,
        storage_failed=status.storage_failed,
        credentials=facts.credentials,
        certificates=certificate_views(facts.identity, pki, moment),
        faults=facts.faults,
    )
