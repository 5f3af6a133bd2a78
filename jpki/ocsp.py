"""RFC 6960 OCSP responder core: DER request in, DER response out, never an exception.

* A request that does not parse (or has a critical extension we do not know, more than
  :data:`MAX_CERT_IDS` CertIDs, or a nonce outside 1-128 octets, RFC 8954) gets an unsigned
  ``malformedRequest`` response; an unexpected failure gets ``internalError``.
* Each CertID is matched by issuer name and key hash (SHA-1 or SHA-2) against the CA
  generations this responder serves. None matches → ``unauthorized`` (we may not sign for that
  issuer). Otherwise the response is signed by the delegated responder of the first matched
  issuer's tree; each CertID is answered ``good``, ``revoked`` (time and reason; a hold is
  ``revoked`` with reason ``certificateHold``) or ``unknown`` (serial never issued, or not yet
  issued at the clock's moment, or an issuer this responder does not sign for).
* ``producedAt`` and ``thisUpdate`` are the clock's moment, ``nextUpdate`` that plus the declared
  validity; the request's nonce extension is echoed byte for byte. ResponderID is by key (the
  responder key is shared by all generations of a tree; its certificate for each answered
  generation is included). Request signatures are not required and not checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from jpki.ca import CertificateAuthority
from jpki.keys import PrivateKey, PublicKey, signature_hash
from jpki.revocation import RevocationReason

__all__ = [
    "MAX_CERT_IDS",
    "MAX_NONCE_LENGTH",
    "CertStatus",
    "OcspAnswer",
    "OcspIssuer",
    "error_response",
    "respond",
]

MAX_CERT_IDS: Final = 32
MAX_NONCE_LENGTH: Final = 128
_HASHES: Final = ("sha1", "sha224", "sha256", "sha384", "sha512")
_KNOWN_REQUEST_EXTENSIONS: Final = (
    "nonce",
    "acceptable_responses",
    "preferred_signature_algorithms",
)


class CertStatus(Enum):
    """The three answers of RFC 6960 §2.2."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OcspAnswer:
    """What the responder says about one certificate."""

    status: CertStatus
    revoked_at: dt.datetime | None = None
    reason: RevocationReason | None = None


def _key_bits(public_key: PublicKey) -> bytes:
    spki = asn1_keys.PublicKeyInfo.load(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return bytes(spki["public_key"].contents[1:])  # the BIT STRING value without unused-bits


@dataclass(frozen=True)
class OcspIssuer:
    """A CA generation this responder answers for, with its delegated responder."""

    authority: CertificateAuthority
    responder_key: PrivateKey = field(repr=False)
    responder_certificate: x509.Certificate
    _hashes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.authority.name.public_bytes()
        key = _key_bits(self.authority.key.public_key())
        for algorithm in _HASHES:
            self._hashes[algorithm] = (
                hashlib.new(algorithm, name).digest(),
                hashlib.new(algorithm, key).digest(),
            )

    def matches(self, algorithm: str, name_hash: bytes, key_hash: bytes) -> bool:
        """True if a CertID with these issuer hashes names this CA generation."""
        return self._hashes.get(algorithm) == (name_hash, key_hash)

    @property
    def responder_key_hash(self) -> bytes:
        """SHA-1 of the responder's public key: the ResponderID ``byKey``."""
        return hashlib.sha1(_key_bits(self.responder_key.public_key())).digest()  # noqa: S324


StatusLookup = Callable[[OcspIssuer, int, dt.datetime], OcspAnswer]


def error_response(status: str) -> bytes:
    """An unsigned response with ``status`` (``malformed_request``, ``internal_error``, …)."""
    return bytes(asn1_ocsp.OCSPResponse({"response_status": status}).dump())


class _MalformedError(Exception):
    pass


def _generalized(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _parse(data: bytes) -> tuple[list[Any], Any]:
    """The request's CertIDs and its nonce extension value (or None); _MalformedError otherwise."""
    request = asn1_ocsp.OCSPRequest.load(data, strict=True)
    request.native  # noqa: B018 - parse every field now, so structure errors surface here
    tbs = request["tbs_request"]
    if tbs["version"].native != "v1":
        raise _MalformedError("unsupported version")
    cert_ids = [item["req_cert"] for item in tbs["request_list"]]
    if not 1 <= len(cert_ids) <= MAX_CERT_IDS:
        raise _MalformedError(f"{len(cert_ids)} CertIDs")
    nonce = None
    extensions = tbs["request_extensions"]
    for extension in extensions if extensions.native is not None else ():
        name = extension["extn_id"].native
        if name == "nonce":
            inner = extension["extn_value"].parsed
            if not isinstance(inner, core.OctetString):
                raise _MalformedError("nonce is not an OCTET STRING")
            if not 1 <= len(inner.native) <= MAX_NONCE_LENGTH:
                raise _MalformedError("nonce length outside 1-128 octets (RFC 8954)")
            nonce = extension["extn_value"]
        elif extension["critical"].native and name not in _KNOWN_REQUEST_EXTENSIONS:
            raise _MalformedError(f"unsupported critical extension {name}")
    return cert_ids, nonce


def _cert_status(answer: OcspAnswer) -> asn1_ocsp.CertStatus:
    if answer.status is CertStatus.GOOD:
        return asn1_ocsp.CertStatus(name="good", value=core.Null())
    if answer.status is CertStatus.UNKNOWN:
        return asn1_ocsp.CertStatus(name="unknown", value=core.Null())
    assert answer.revoked_at is not None and answer.reason is not None
    return asn1_ocsp.CertStatus(
        name="revoked",
        value={
            "revocation_time": _generalized(answer.revoked_at),
            "revocation_reason": answer.reason.code,
        },
    )


def _match(issuers: Sequence[OcspIssuer], cert_id: Any) -> OcspIssuer | None:
    algorithm = cert_id["hash_algorithm"]["algorithm"].native
    name_hash = bytes(cert_id["issuer_name_hash"].native)
    key_hash = bytes(cert_id["issuer_key_hash"].native)
    for issuer in issuers:
        if issuer.matches(algorithm, name_hash, key_hash):
            return issuer
    return None


def _same_responder(a: OcspIssuer, b: OcspIssuer) -> bool:
    return a.responder_key_hash == b.responder_key_hash


def respond(
    request: bytes,
    issuers: Sequence[OcspIssuer],
    lookup: StatusLookup,
    *,
    moment: dt.datetime,
    validity: dt.timedelta,
) -> bytes:
    """The DER OCSPResponse to ``request`` at ``moment``; never raises."""
    try:
        cert_ids, nonce = _parse(request)
    except Exception:  # anything unparseable is a malformed request
        return error_response("malformed_request")
    try:
        return _respond(
            cert_ids,
            nonce=nonce,
            issuers=issuers,
            lookup=lookup,
            moment=moment,
            validity=validity,
        )
    except Exception:  # a responder answers, it does not crash
        return error_response("internal_error")


def _sign(key: PrivateKey, data: bytes) -> tuple[bytes, str]:
    """The signature over ``data`` and its algorithm: sha256_rsa, or sha384_ecdsa (P-384)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(signature_hash(key))), "sha384_ecdsa"
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"


def _respond(
    cert_ids: list[Any],
    *,
    nonce: Any,
    issuers: Sequence[OcspIssuer],
    lookup: StatusLookup,
    moment: dt.datetime,
    validity: dt.timedelta,
) -> bytes:
    matched = [_match(issuers, cert_id) for cert_id in cert_ids]
    signer = next((issuer for issuer in matched if issuer is not None), None)
    if signer is None:
        return error_response("unauthorized")
    now = _generalized(moment)
    responses = []
    used: list[OcspIssuer] = []
    for cert_id, issuer in zip(cert_ids, matched, strict=True):
        if issuer is None or not _same_responder(issuer, signer):
            answer = OcspAnswer(CertStatus.UNKNOWN)
        else:
            answer = lookup(issuer, int(cert_id["serial_number"].native), moment)
            if all(issuer is not seen for seen in used):
                used.append(issuer)
        responses.append(
            {
                "cert_id": cert_id,
                "cert_status": _cert_status(answer),
                "this_update": now,
                "next_update": now + validity,
            }
        )
    data: dict[str, Any] = {
        "responder_id": asn1_ocsp.ResponderId(name="by_key", value=signer.responder_key_hash),
        "produced_at": now,
        "responses": responses,
    }
    if nonce is not None:
        data["response_extensions"] = [
            {
                "extn_id": "nonce",
                "critical": False,
                "extn_value": core.ParsableOctetString(bytes(nonce.contents)),
            }
        ]
    tbs = asn1_ocsp.ResponseData(data)
    signature, algorithm = _sign(signer.responder_key, tbs.dump())
    certificates = [
        asn1_x509.Certificate.load(
            issuer.responder_certificate.public_bytes(serialization.Encoding.DER)
        )
        for issuer in used
    ]
    basic = asn1_ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature": signature,
            "certs": certificates,
        }
    )
    response = asn1_ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    )
    return bytes(response.dump())
