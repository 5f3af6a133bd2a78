"""A readable summary of a My Number card, read through the host-side client."""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from jpki.holder import holder_from_certificate
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential, verify_signature

DEMO_MESSAGE = "mynacard demo: 本人確認".encode()


def _name(name: x509.Name) -> str:
    """A DN in certificate order (C first), as JPKI documents write it."""
    return ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in name)


def _validity(cert: x509.Certificate) -> str:
    start = cert.not_valid_before_utc.strftime("%Y-%m-%d")
    end = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{start} → {end}"


def jpki_summary(
    client: MynaClient,
    *,
    auth_pin: str | None = None,
    sign_password: str | None = None,
    emit: Callable[[str], None] = print,
) -> bool:
    """Print what the JPKI-AP holds; with PINs, also verify and sign. True if all checks pass."""
    ok = True
    token = client.token_info()
    kind = "smartphone secure element" if token.smartphone else "physical card"
    emit(f"  token            {token.label} ({kind}), serial {token.serial}")
    auth = client.certificate(0x000A)
    auth_ca = client.certificate(0x000B)
    sign_ca = client.certificate(0x0002)
    emit(f"  auth certificate {_name(auth.subject)}, serial {auth.serial_number:X}")
    emit(f"                   valid {_validity(auth)}")
    emit(f"                   issuer {_name(auth.issuer)}")
    emit(f"  auth CA          {_name(auth_ca.subject)}")
    emit(f"  sign CA          {_name(sign_ca.subject)}")
    client.select_jpki()
    auth_left = client.retries(JpkiCredential.AUTH_PIN)
    sign_left = client.retries(JpkiCredential.SIGN_PASSWORD)
    emit(f"  tries left       利用者証明用暗証番号 {auth_left}/3, 署名用パスワード {sign_left}/5")
    if auth_pin is not None:
        client.verify(JpkiCredential.AUTH_PIN, auth_pin)
        public = auth.public_key()
        signature = client.jpki.sign_for(JpkiCredential.AUTH_PIN, DEMO_MESSAGE, public)
        hashed = "SHA-384 ECDSA" if isinstance(public, ec.EllipticCurvePublicKey) else "SHA-256"
        try:
            verify_signature(auth, signature, DEMO_MESSAGE)
            emit(f"  auth signature   VERIFY ok; {hashed} signature with key 0017 verifies ✓")
        except InvalidSignature:
            emit("  auth signature   does NOT verify against the certificate ✗")
            ok = False
    if sign_password is not None:
        client.select_jpki()
        client.verify(JpkiCredential.SIGN_PASSWORD, sign_password)
        sign = client.certificate(0x0001)
        emit(f"  sign certificate {_name(sign.subject)}, valid {_validity(sign)} (after password)")
        try:
            holder = holder_from_certificate(sign)
            emit(f"                   氏名 {holder.name} / 生年月日 {holder.birth_date}")
            emit(f"                   性別 {holder.sex.value}")
            emit(f"                   住所 {holder.address}")
        except ValueError as exc:
            emit(f"                   (no JPKI holder data: {exc})")
    return ok
