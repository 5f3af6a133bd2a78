"""The revocation status of a PKI's issued certificates: changing it and publishing it.

:class:`PkiStatus` is the part of :class:`~jpki.pki_store.PkiStore` that works on the
certificate database: revoke, hold or release a persona's certificates (events effective at a
moment), and answer for them as a CRL, an ARL or an OCSP responder at any moment.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

from cryptography import x509

from jpki.clock import Clock, default_clock
from jpki.crl import CrlEntry, build_arl, build_crl
from jpki.database import CertificateDatabase, CertificateRecord, authority_id
from jpki.declaration import PkiDeclaration
from jpki.names import NameStyle, Tree
from jpki.ocsp import CertStatus, OcspAnswer, OcspIssuer, respond
from jpki.pki_material import PkiError, PkiMaterial
from jpki.revocation import (
    CertificateState,
    EventKind,
    RevocationError,
    RevocationEvent,
    RevocationReason,
)

__all__ = ["PkiStatus"]


class PkiStatus:
    """Revocation and publication over the database: a base of :class:`~jpki.pki_store.PkiStore`."""

    material: PkiMaterial
    declaration: PkiDeclaration
    database: CertificateDatabase

    # --- revocation -------------------------------------------------------------------------

    def certificates(
        self, *, persona: str | None = None, tree: Tree | None = None, serial: int | None = None
    ) -> list[CertificateRecord]:
        """Recorded user certificates matching every given criterion, oldest first."""
        return self.database.find(persona=persona, tree=tree, serial=serial)

    def change(
        self, record: CertificateRecord, event: RevocationEvent, *, clock: Clock | None = None
    ) -> CertificateRecord:
        """Append ``event`` to one certificate's history (RevocationError if it may not)."""
        if event.at < record.not_before:
            raise RevocationError(
                f"{event.kind.value} at {event.at.isoformat()} is before the certificate was "
                f"issued ({record.not_before.isoformat()})"
            )
        self.database.add_event(
            record.authority, record.serial, event, recorded_at=(clock or default_clock()).now()
        )
        updated = self.database.get(record.authority, record.serial)
        assert updated is not None
        return updated

    def _change_persona(
        self,
        persona: str,
        *,
        trees: Sequence[Tree],
        kind: EventKind,
        reason: RevocationReason | None,
        at: dt.datetime | None,
        clock: Clock | None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        moment = at or (clock or default_clock()).now()
        records = [r for tree in trees for r in self.certificates(persona=persona, tree=tree)]
        if not records:
            which = "/".join(tree.value for tree in trees)
            raise PkiError(f"no {which} certificates recorded for persona {persona!r}")
        results: list[tuple[CertificateRecord, str | None]] = []
        for record in records:
            if record.status(moment).state is CertificateState.EXPIRED:
                results.append((record, "expired, left unchanged"))
                continue
            try:
                updated = self.change(record, RevocationEvent(kind, moment, reason), clock=clock)
            except RevocationError as exc:
                results.append((record, str(exc)))
            else:
                results.append((updated, None))
        return results

    def revoke(
        self,
        persona: str,
        trees: Sequence[Tree],
        reason: RevocationReason,
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Revoke every unexpired certificate of ``persona`` in ``trees`` from ``at`` (失効).

        Returns each certificate with None if changed, else why not (already revoked, …).
        """
        return self._change_persona(
            persona, trees=trees, kind=EventKind.REVOKE, reason=reason, at=at, clock=clock
        )

    def hold(
        self,
        persona: str,
        trees: Sequence[Tree],
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Put certificates on hold (一時保留): revoked with reason certificateHold."""
        return self._change_persona(
            persona, trees=trees, kind=EventKind.HOLD, reason=None, at=at, clock=clock
        )

    def release(
        self,
        persona: str,
        trees: Sequence[Tree],
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Release held certificates (一時保留の解除): good again."""
        return self._change_persona(
            persona, trees=trees, kind=EventKind.RELEASE, reason=None, at=at, clock=clock
        )

    # --- publication ------------------------------------------------------------------------

    def crl(
        self, tree: Tree, style: NameStyle, generation: int, *, at: dt.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """The CRL of one generation at ``at`` (default: clock now)."""
        authority = self.material.authority(tree, style, generation)
        moment = at or default_clock().now()
        entries = []
        for record in self.database.revocations(authority_id(style, tree, generation)):
            status = record.status(moment)
            if status.state in (CertificateState.REVOKED, CertificateState.HOLD):
                revocation = status.revocation
                assert revocation.since is not None and revocation.reason is not None
                entries.append(CrlEntry(record.serial, revocation.since, revocation.reason))
        return build_crl(
            authority, entries, this_update=moment, validity=self.declaration.crl_validity
        )

    def arl(
        self, tree: Tree, style: NameStyle, generation: int, *, at: dt.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """The ARL of one generation at ``at`` (default: clock now)."""
        return build_arl(
            self.material.authority(tree, style, generation),
            this_update=at or default_clock().now(),
            validity=self.declaration.crl_validity,
        )

    def ocsp_issuers(
        self, tree: Tree | None = None, style: NameStyle | None = None
    ) -> list[OcspIssuer]:
        """What an OCSP responder for ``tree`` / ``style`` (None: all) answers for.

        Generations an in-memory store has not made yet are left out: no certificate of theirs
        exists, so no request can name them (a directory store has made them all)."""

        def make(each_tree: Tree, each_style: NameStyle, generation: int) -> OcspIssuer:
            responder = self.material.responder(each_tree, each_style, generation)
            return OcspIssuer(
                self.material.authority(each_tree, each_style, generation),
                responder.key,
                responder.certificate,
            )

        issuers = []
        for each_style in self.declaration.styles:
            for each_tree in Tree:
                if style not in (None, each_style) or tree not in (None, each_tree):
                    continue
                for declared in self.declaration.trees[each_tree].generations:
                    number = declared.generation
                    if not self.material.has_authority(each_tree, each_style, number):
                        continue
                    issuers.append(
                        self.material.cached(
                            ("issuer", each_style.value, each_tree.value, str(number)),
                            functools.partial(make, each_tree, each_style, number),
                        )
                    )
        return issuers

    def ocsp_status(self, issuer: OcspIssuer, serial: int, moment: dt.datetime) -> OcspAnswer:
        """The OCSP answer for ``serial`` of ``issuer`` at ``moment``."""
        authority = issuer.authority
        record = self.database.get(
            authority_id(authority.style, authority.tree, authority.generation), serial
        )
        if record is None or moment < record.not_before:
            return OcspAnswer(CertStatus.UNKNOWN)
        revocation = record.status(moment).revocation
        if revocation.good:
            return OcspAnswer(CertStatus.GOOD)
        return OcspAnswer(CertStatus.REVOKED, revocation.since, revocation.reason)

    def ocsp_response(
        self,
        request: bytes,
        *,
        tree: Tree | None = None,
        style: NameStyle | None = None,
        at: dt.datetime | None = None,
    ) -> bytes:
        """The DER OCSP response to ``request`` from the responder of ``tree`` / ``style``."""
        return respond(
            request,
            self.ocsp_issuers(tree, style),
            self.ocsp_status,
            moment=at or default_clock().now(),
            validity=self.declaration.ocsp_validity,
        )
