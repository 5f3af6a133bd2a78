"""Relying-party validation for tests: build the chain, check revocation by OCSP or CRL.

What a kiosk does with a card's certificate, in one call::

    verdict = validate(cert, trust_roots=store.trust_roots(), moment=clock.now(), method="ocsp")
    verdict.outcome  # Outcome.VALID / EXPIRED / REVOKED / HOLD / UNTRUSTED / ...

This module only *fetches* revocation information (the OCSP URL of the certificate's AIA, or
the HTTP URI of its CRL distribution points — optionally re-based onto where the test server
really listens) and checks the OCSP nonce; path building, path validation (RFC 5280 §6), CRL and
OCSP response validation, the delegated-responder rules and freshness are all done by
**pyhanko-certvalidator**, at the given moment, so time travel works.

Library choice (both evaluated with pip on this project's Python 3.11 / OpenSSL 3.0.19):

* ``certvalidator`` 0.11.1 (wbond) — last released in 2016. It installs, but every signature
  check goes through ``oscrypto``, and oscrypto 1.3.0 (its latest release) cannot even load
  here: ``LibraryNotFoundError: Error detecting the version of libcrypto`` (it does not parse
  OpenSSL 3.0.x version strings with two-digit patch numbers). Unmaintained and broken: out.
* ``pyhanko-certvalidator`` 0.33.0 — its maintained fork, released regularly by the pyHanko
  project. It verifies signatures with ``cryptography`` (oscrypto is imported only for the OS
  trust list, which we never use: trust roots are always passed), validates at any moment with
  supplied CRLs / OCSP responses and no network of its own (``allow_fetching=False``), handles
  delegated OCSP responders with ``id-pkix-ocsp-nocheck`` and is typed (``py.typed``). Chosen.

Its API is async; :func:`validate` runs it with :func:`asyncio.run` (so do not call it from a
running event loop). Its default one-second time tolerance applies to validity checks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from jpki.revocation import RevocationReason

__all__ = [
    "FetchError",
    "Outcome",
    "Verdict",
    "crl_url_of",
    "fetch_crl",
    "fetch_ocsp",
    "find_issuer",
    "ocsp_url_of",
    "validate",
]

Method = Literal["ocsp", "crl", "none"]
_TIMEOUT: Final = 10.0
_MAX_RESPONSE: Final = 1 << 20
_REASONS: Final = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "key_compromise": RevocationReason.KEY_COMPROMISE,
    "ca_compromise": RevocationReason.CA_COMPROMISE,
    "affiliation_changed": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessation_of_operation": RevocationReason.CESSATION_OF_OPERATION,
    "certificate_hold": RevocationReason.CERTIFICATE_HOLD,
}


class FetchError(Exception):
    """Revocation information could not be fetched (no URL, HTTP error, bad nonce, …)."""


class Outcome(Enum):
    """What a relying party concludes."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    HOLD = "hold"
    UNTRUSTED = "untrusted"
    """No path to a trust root."""
    NO_REVOCATION_INFO = "no_revocation_info"
    """Revocation status could not be established (fetch failed, stale or unusable answer)."""
    INVALID = "invalid"
    """Any other path validation failure (signature, extensions, …)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome, with the revocation reason and time when revoked or held."""

    outcome: Outcome
    method: Method
    message: str = ""
    reason: RevocationReason | None = None
    revoked_at: dt.datetime | None = None


def _rebase(url: str, base_url: str | None) -> str:
    if base_url is None:
        return url
    original, base = urlsplit(url), urlsplit(base_url)
    path = base.path.rstrip("/") + original.path
    return urlunsplit((base.scheme, base.netloc, path, original.query, ""))


def ocsp_url_of(certificate: x509.Certificate) -> str | None:
    """The first AIA OCSP URL of ``certificate``, if any."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for description in aia.value:
        if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            description.access_location, x509.UniformResourceIdentifier
        ):
            return str(description.access_location.value)
    return None


def crl_url_of(certificate: x509.Certificate) -> str | None:
    """The first http(s) URI among ``certificate``'s CRL distribution points, if any."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return None
    for point in points.value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(
                ("http://", "https://")
            ):
                return str(name.value)
    return None


def find_issuer(
    certificate: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The candidate whose key signed ``certificate`` (to name it in an OCSP CertID)."""
    for candidate in candidates:
        if candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _http(url: str, data: bytes | None, content_type: str | None, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"not an http URL: {url}")
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310 - scheme checked above
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(_MAX_RESPONSE + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: {exc}") from None
    if len(body) > _MAX_RESPONSE:
        raise FetchError(f"{url}: response over {_MAX_RESPONSE} bytes")
    return bytes(body)


def fetch_ocsp(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    url: str | None = None,
    base_url: str | None = None,
    timeout: float = _TIMEOUT,
) -> bytes:
    """POST an OCSP request (SHA-1 CertID, random nonce) and return the DER response.

    ``url`` defaults to the certificate's AIA OCSP URL, re-based onto ``base_url`` if given.
    The nonce must come back unchanged in a successful response (FetchError otherwise).
    """
    target = url or ocsp_url_of(certificate)
    if target is None:
        raise FetchError("the certificate names no OCSP responder (AIA)")
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - SHA-1 CertIDs are the RFC 5019 norm
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    body = _http(
        _rebase(target, base_url),
        request.public_bytes(Encoding.DER),
        "application/ocsp-request",
        timeout,
    )
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        raise FetchError(f"not an OCSP response: {exc}") from None
    if response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            raise FetchError("the OCSP response does not echo our nonce")
    return body


def fetch_crl(
    certificate: x509.Certificate,
    *,
    url: str | None = None,
    base_url: str | None = None,
    timeout: float = _TIMEOUT,
) -> bytes:
    """GET the DER CRL of ``certificate``'s HTTP distribution point (re-based if asked)."""
    target = url or crl_url_of(certificate)
    if target is None:
        raise FetchError("the certificate names no HTTP CRL distribution point")
    return _http(_rebase(target, base_url), None, None, timeout)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def validate(
    certificate: x509.Certificate,
    *,
    trust_roots: Sequence[x509.Certificate],
    moment: dt.datetime,
    method: Method = "ocsp",
    intermediates: Sequence[x509.Certificate] = (),
    base_url: str | None = None,
    ocsp_responses: Sequence[bytes] | None = None,
    crls: Sequence[bytes] | None = None,
    timeout: float = _TIMEOUT,
) -> Verdict:
    """Validate ``certificate`` at ``moment`` against ``trust_roots``, checking revocation.

    ``method`` ``"ocsp"`` asks the certificate's OCSP responder, ``"crl"`` fetches its HTTP CRL
    (both re-based onto ``base_url`` when given), ``"none"`` skips revocation. Pass
    ``ocsp_responses`` / ``crls`` to use those instead of fetching. With a method other than
    ``"none"`` revocation information is required: without it the outcome is
    ``NO_REVOCATION_INFO``.
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    ocsps: list[bytes] = list(ocsp_responses or ())
    crl_list: list[bytes] = list(crls or ())
    try:
        if method == "ocsp" and ocsp_responses is None:
            issuer = find_issuer(certificate, [*intermediates, *trust_roots])
            if issuer is None:
                return Verdict(Outcome.UNTRUSTED, method, "no known issuer for the OCSP request")
            ocsps.append(fetch_ocsp(certificate, issuer, base_url=base_url, timeout=timeout))
        elif method == "crl" and crls is None:
            crl_list.append(fetch_crl(certificate, base_url=base_url, timeout=timeout))
    except FetchError as exc:
        return Verdict(Outcome.NO_REVOCATION_INFO, method, str(exc))
    context = ValidationContext(
        trust_roots=[_asn1(root) for root in trust_roots],
        other_certs=[_asn1(extra) for extra in intermediates],
        moment=moment,
        allow_fetching=False,
        ocsps=ocsps,
        crls=crl_list,
        revocation_mode="soft-fail" if method == "none" else "require",
    )
    validator = CertificateValidator(_asn1(certificate), validation_context=context)
    try:
        asyncio.run(validator.async_validate_path())
    except RevokedError as exc:
        reason = _REASONS.get(str(exc.reason.native), RevocationReason.UNSPECIFIED)
        outcome = Outcome.HOLD if reason is RevocationReason.CERTIFICATE_HOLD else Outcome.REVOKED
        return Verdict(outcome, method, exc.failure_msg, reason, exc.revocation_dt)
    except ExpiredError as exc:
        return Verdict(Outcome.EXPIRED, method, exc.failure_msg)
    except NotYetValidError as exc:
        return Verdict(Outcome.NOT_YET_VALID, method, exc.failure_msg)
    except InsufficientRevinfoError as exc:
        return Verdict(Outcome.NO_REVOCATION_INFO, method, exc.failure_msg)
    except PathBuildingError as exc:
        return Verdict(Outcome.UNTRUSTED, method, str(exc))
    except (PathValidationError, ValidationError) as exc:
        return Verdict(Outcome.INVALID, method, exc.failure_msg)
    return Verdict(Outcome.VALID, method)
