"""A certificate summarised by its profile, never by a value that names a holder or a card.

Kept: X.509 version, public-key algorithm and size, signature algorithm, the OIDs of the
extensions present (and which are critical), the validity period's length in days, the DER
length. Never kept: serial number, names, key or signature bytes, dates, extension values.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apdu import tlv
from apdu.errors import CodecError


def der_length(data: bytes) -> int | None:
    """Total length of the DER SEQUENCE at the start of ``data`` (its first bytes suffice), or
    ``None`` when it does not start with one."""
    if not data or data[0] != 0x30:
        return None
    try:
        _, header, length = tlv.read_header(data[:8])
    except CodecError:
        return None
    return header + length


def summarise(der: bytes) -> dict[str, Any] | None:
    """The profile of the certificate ``der``, or ``None`` when it is not one."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_type, key_bits = "rsa", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_bits = f"ec/{key.curve.name}", key.key_size
    else:
        key_type, key_bits = type(key).__name__, 0
    extensions = sorted(ext.oid.dotted_string for ext in cert.extensions)
    critical = sorted(ext.oid.dotted_string for ext in cert.extensions if ext.critical)
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    return {
        "version": cert.version.value + 1,
        "public_key": key_type,
        "key_bits": key_bits,
        "signature_algorithm": cert.signature_algorithm_oid.dotted_string,
        "extensions": extensions,
        "critical": critical,
        "validity_days": validity.days,
        "der_length": len(der),
    }
