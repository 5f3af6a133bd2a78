"""CRLs and ARLs of one CA generation (RFC 5280 §5), DER, built from recorded revocations.

Each CA generation signs its own lists with its own key: the issuer DN is the tree's (shared by
all generations, as on the real hierarchy) and the AuthorityKeyIdentifier tells generations
apart. ``thisUpdate`` is the PKI clock's now, ``nextUpdate`` that plus the declared validity, and
the CRLNumber is the ``thisUpdate`` in seconds since the epoch — monotonic as long as the clock
only moves forward (time travel backwards gives smaller numbers, as it must).

* The **CRL** covers the generation's user certificates: every certificate revoked or on hold
  (reason ``certificateHold``) at ``thisUpdate`` and not yet expired — an entry is dropped once
  its certificate expires (RFC 5280 §3.3). It is a complete CRL: no IssuingDistributionPoint, so
  it applies whichever distribution point a relying party followed.
* The **ARL** (authority revocation list) covers CA certificates issued by the generation; the
  test PKI issues none, so it is empty, marked ``onlyContainsCACerts``.

The reasonCode extension is left out for ``unspecified`` (RFC 5280 §5.3.1 says SHOULD).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from jpki.ca import CertificateAuthority
from jpki.keys import signature_hash
from jpki.revocation import RevocationReason

__all__ = ["CrlEntry", "build_arl", "build_crl", "crl_number"]


@dataclass(frozen=True)
class CrlEntry:
    """One revoked (or held) certificate."""

    serial: int
    revoked_at: dt.datetime
    reason: RevocationReason


def crl_number(moment: dt.datetime) -> int:
    """The CRLNumber of a list with ``thisUpdate`` ``moment`` (seconds since the epoch)."""
    return max(1, int(moment.timestamp()))


def _seconds(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _builder(
    authority: CertificateAuthority, this_update: dt.datetime, validity: dt.timedelta
) -> x509.CertificateRevocationListBuilder:
    this_update = _seconds(this_update)
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.name)
        .last_update(this_update)
        .next_update(this_update + validity)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
            critical=False,
        )
        .add_extension(x509.CRLNumber(crl_number(this_update)), critical=False)
    )


def build_crl(
    authority: CertificateAuthority,
    entries: Iterable[CrlEntry],
    *,
    this_update: dt.datetime,
    validity: dt.timedelta,
) -> x509.CertificateRevocationList:
    """The CRL of ``authority`` listing ``entries``, signed sha256WithRSAEncryption."""
    builder = _builder(authority, this_update, validity)
    for entry in sorted(entries, key=lambda e: e.serial):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(_seconds(entry.revoked_at))
        )
        if entry.reason is not RevocationReason.UNSPECIFIED:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason.flag), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(authority.key, signature_hash(authority.key))


def build_arl(
    authority: CertificateAuthority, *, this_update: dt.datetime, validity: dt.timedelta
) -> x509.CertificateRevocationList:
    """The (empty) authority revocation list of ``authority``."""
    scope = x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=True,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    builder = _builder(authority, this_update, validity).add_extension(scope, critical=True)
    return builder.sign(authority.key, signature_hash(authority.key))
