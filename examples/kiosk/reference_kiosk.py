#!/usr/bin/env python3
"""A reference コンビニ交付 kiosk client: the JPKI user-authentication flow, done right.

It is a stand-alone program (pyscard + cryptography only; it does not import mynacard) that
follows the kiosk protocol of ``mynacard conformance run``:

* the reader is ``$MYNACARD_READER`` (default: the first reader with a card);
* the trusted JPKI user-authentication CA certificates are in the PEM file
  ``$MYNACARD_TRUST_PEM``;
* every PIN prompt reads one line of stdin (what the customer types; end of input means the
  customer walked away);
* the last line of stdout is the outcome, as JSON:
  ``{"outcome": "accepted"}`` or ``{"outcome": "refused", "reason": "pin-locked"}``.

The flow: SELECT the JPKI-AP, read the user-authentication certificate (EF 000A) and check it
(validity, issuer signature), ask the card how many PIN tries are left (VERIFY without data),
VERIFY the PIN (stop when the card says blocked), have the card sign a fresh challenge with the
user-authentication key and check the signature, and finally ask the OCSP responder named in
the certificate whether it is revoked or on hold. A card pulled out at any point is reported as
``card-removed``.

Both card generations are handled, told apart by the certificate's key: today's card (RSA-2048:
a SHA-256 DigestInfo in, a PKCS#1 v1.5 signature out) and the next-generation card (ECDSA P-384:
a SHA-384 digest in, an ECDSA-SHA-384 signature out, raw r ‖ s or DER); the certificate chain
and the OCSP response are checked whatever their algorithm (RSA or P-384 CAs).

    python reference_kiosk.py < pins.txt
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.scard import (
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_STATE_EMPTY,
    SCARD_STATE_PRESENT,
    SCARD_STATE_UNAWARE,
    SCardEstablishContext,
    SCardGetStatusChange,
    SCardReleaseContext,
)
from smartcard.System import readers

JPKI_AID = bytes.fromhex("D392F000260100000001")
EF_AUTH_CERTIFICATE = 0x000A
IEF_AUTH_PIN = 0x0018
KEY_AUTH = 0x0017
SHA256_DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420")


class RefusalError(Exception):
    """The transaction ends with ``refused`` and a reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class CardGoneError(Exception):
    """The card stopped answering (pulled out, or the reader failed)."""


def status(sw: int) -> str:
    return f"{sw:04X}"


class Kiosk:
    """One customer at the kiosk: a card in a reader and a PIN pad (stdin)."""

    def __init__(self, reader_name: str | None, trusted: list[x509.Certificate]) -> None:
        self.reader_name = reader_name
        self.trusted = trusted
        self.pins: Iterator[str] = (line.rstrip("\r\n") for line in sys.stdin)
        self.connection: CardConnection | None = None
        self.verified = False  # the PIN is verified in the selected JPKI-AP

    # -- talking to the card ------------------------------------------------------------

    def connect(self) -> None:
        found = [r for r in readers() if self.reader_name in (None, str(r))]
        if not found:
            raise RefusalError("card-error", f"no reader {self.reader_name!r}")
        for reader in found:
            connection = reader.createConnection()
            try:
                connection.connect()
            except NoCardException:
                continue
            self.reader_name = str(reader)
            self.connection = connection
            return
        raise RefusalError("card-error", "no card in the reader")

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        assert self.connection is not None
        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except CardConnectionException as exc:
            raise CardGoneError(str(exc)) from exc
        return bytes(data), (sw1 << 8) | sw2

    def card_present(self) -> bool:
        """Ask pcscd whether the reader still holds a card (it polls every 400 ms)."""
        result, context = SCardEstablishContext(SCARD_SCOPE_USER)
        if result != SCARD_S_SUCCESS:
            return False
        try:
            deadline = time.monotonic() + 1.5
            state = SCARD_STATE_UNAWARE
            while True:
                result, states = SCardGetStatusChange(context, 500, [(self.reader_name, state)])
                if result == SCARD_S_SUCCESS:
                    state = states[0][1]
                    if state & SCARD_STATE_EMPTY:
                        return False
                if time.monotonic() > deadline:
                    return bool(state & SCARD_STATE_PRESENT)
        finally:
            SCardReleaseContext(context)

    def select_ap(self) -> None:
        _, sw = self.transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(JPKI_AID)]) + JPKI_AID)
        if sw != 0x9000:
            raise RefusalError("unsupported-card", f"no JPKI-AP (SELECT answered {status(sw)})")

    def select_ef(self, fid: int) -> int:
        _, sw = self.transmit(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big"))
        return sw

    def read_file(self, fid: int) -> tuple[bytes, int]:
        """The whole DER object in EF ``fid`` (its length from the TLV header)."""
        sw = self.select_ef(fid)
        if sw != 0x9000:
            return b"", sw
        head, sw = self.transmit(bytes([0x00, 0xB0, 0x00, 0x00, 0x04]))
        if sw != 0x9000:
            return b"", sw
        if len(head) < 4 or head[0] != 0x30 or head[1] != 0x82:
            raise RefusalError("card-error", "EF 000A does not hold a certificate")
        total = 4 + int.from_bytes(head[2:4], "big")
        data = bytearray(head)
        while len(data) < total:
            chunk = min(256, total - len(data))
            offset = len(data)
            apdu = bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, chunk & 0xFF])
            part, sw = self.transmit(apdu)
            if sw != 0x9000 or not part:
                raise RefusalError("card-error", f"READ BINARY answered {status(sw)}")
            data += part
        return bytes(data), 0x9000

    # -- the steps ------------------------------------------------------------------------

    def check_atr(self, atr: bytes) -> None:
        """Any ATR will do: the JPKI-AP answering SELECT is what matters."""

    def before_certificate(self) -> None:
        """Hook before the certificate is read (nothing to do here)."""

    def read_certificate(self) -> x509.Certificate:
        der, sw = self.read_file(EF_AUTH_CERTIFICATE)
        if sw == 0x6982:  # smartphone-style token: the certificate opens after the PIN
            self.verify_pin()
            der, sw = self.read_file(EF_AUTH_CERTIFICATE)
        if sw != 0x9000:
            raise RefusalError("card-error", f"reading the certificate answered {status(sw)}")
        return x509.load_der_x509_certificate(der)

    def check_certificate(self, certificate: x509.Certificate) -> x509.Certificate:
        """Validity period and issuer signature; returns the issuer."""
        now = dt.datetime.now(dt.UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise RefusalError(
                "certificate-expired", f"valid until {certificate.not_valid_after_utc}"
            )
        for issuer in self.trusted:
            if issuer.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return issuer
        raise RefusalError("certificate-untrusted", "not issued by a trusted JPKI CA")

    def pin_tries(self) -> int:
        sw = self.select_ef(IEF_AUTH_PIN)
        if sw != 0x9000:
            raise RefusalError("card-error", f"SELECT of the PIN answered {status(sw)}")
        _, sw = self.transmit(bytes([0x00, 0x20, 0x00, 0x80]))
        if sw == 0x6984:
            return 0
        if sw & 0xFFF0 != 0x63C0:
            raise RefusalError("card-error", f"the PIN counter query answered {status(sw)}")
        return sw & 0x0F

    def verify_pin(self) -> None:
        if self.verified:  # a smartphone token asked for it before the certificate
            return
        tries = self.pin_tries()
        while True:
            if tries == 0:
                raise RefusalError("pin-locked", "the PIN is blocked: see the municipal office")
            if tries == 1:
                print("kiosk: last try before the PIN locks", file=sys.stderr)
            pin = next(self.pins, None)
            if pin is None:
                raise RefusalError("wrong-pin", "the customer gave up")
            data = pin.encode("ascii")
            _, sw = self.transmit(bytes([0x00, 0x20, 0x00, 0x80, len(data)]) + data)
            if sw == 0x9000:
                self.verified = True
                return
            if sw == 0x6984:
                tries = 0
            elif sw & 0xFFF0 == 0x63C0:
                tries = sw & 0x0F
                print(f"kiosk: wrong PIN, {tries} tries left", file=sys.stderr)
            else:
                raise RefusalError("card-error", f"VERIFY answered {status(sw)}")

    def sign(self, certificate: x509.Certificate) -> None:
        challenge = os.urandom(32)
        key = certificate.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):  # next-generation card: ECDSA-SHA-384
            data = hashlib.sha384(challenge).digest()
        elif isinstance(key, rsa.RSAPublicKey):  # today's card: PKCS#1 v1.5 over a DigestInfo
            data = SHA256_DIGEST_INFO + hashlib.sha256(challenge).digest()
        else:
            raise RefusalError("unsupported-card", f"a {type(key).__name__} key")
        signature = self.card_signature(data)
        try:
            verify_signature(key, signature, challenge)
        except (InvalidSignature, ValueError):
            raise RefusalError(
                "card-error", "the signature does not match the certificate"
            ) from None

    def card_signature(self, data: bytes) -> bytes:
        """The user-authentication key's COMPUTE DIGITAL SIGNATURE over ``data`` (SELECT of the
        key first); a status word other than 9000 is a card error."""
        sw = self.select_ef(KEY_AUTH)
        if sw != 0x9000:
            raise RefusalError("card-error", f"SELECT of the key answered {status(sw)}")
        apdu = bytes([0x80, 0x2A, 0x00, 0x80, len(data)]) + data + b"\x00"
        signature, sw = self.timed_sign(apdu)
        if sw != 0x9000:
            raise RefusalError("card-error", f"COMPUTE DIGITAL SIGNATURE answered {status(sw)}")
        return signature

    def timed_sign(self, apdu: bytes) -> tuple[bytes, int]:
        return self.transmit(apdu)

    def check_status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> None:
        """OCSP at the responder the certificate names; revoked or on hold is refused."""
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        urls = [
            d.access_location.value
            for d in aia.value
            if d.access_method == AuthorityInformationAccessOID.OCSP
        ]
        if not urls:
            raise RefusalError("certificate-unknown", "the certificate names no OCSP responder")
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - CertID per RFC 6960
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        http = urllib.request.Request(  # noqa: S310 - the AIA URL of a trusted certificate
            urls[0], data=request, headers={"Content-Type": "application/ocsp-request"}
        )
        try:
            with urllib.request.urlopen(http, timeout=10) as reply:  # noqa: S310 - http(s) AIA
                answer = ocsp.load_der_ocsp_response(reply.read())
        except OSError as exc:
            raise RefusalError("pki-unreachable", f"OCSP: {exc}") from None
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RefusalError("certificate-unknown", f"OCSP: {answer.response_status.name}")
        self.check_ocsp_signature(answer, issuer)
        if answer.serial_number != certificate.serial_number:
            raise RefusalError("certificate-unknown", "OCSP answered for another certificate")
        if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            if answer.revocation_reason == x509.ReasonFlags.certificate_hold:
                raise RefusalError("certificate-on-hold", "OCSP: certificateHold (一時保留)")
            raise RefusalError("certificate-revoked", f"OCSP: revoked ({answer.revocation_reason})")
        if answer.certificate_status != ocsp.OCSPCertStatus.GOOD:
            raise RefusalError("certificate-unknown", "OCSP: unknown")

    @staticmethod
    def check_ocsp_signature(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
        """Signed by the issuer, or by a responder certificate the issuer signed."""
        signer = issuer
        for candidate in answer.certificates:
            if candidate.issuer == issuer.subject:
                candidate.verify_directly_issued_by(issuer)
                signer = candidate
        key = signer.public_key()
        algorithm = answer.signature_hash_algorithm
        try:
            if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
                key.verify(
                    answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), algorithm
                )
            elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
                key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(algorithm))
            else:
                raise RefusalError("certificate-unknown", "the OCSP response's algorithm")
        except InvalidSignature:
            raise RefusalError("certificate-unknown", "the OCSP response is not signed") from None

    # -- the transaction ------------------------------------------------------------------

    def transaction(self) -> None:
        self.connect()
        assert self.connection is not None
        self.check_atr(bytes(self.connection.getATR()))
        self.select_ap()
        self.before_certificate()
        certificate = self.read_certificate()
        issuer = self.check_certificate(certificate)
        self.verify_pin()
        self.sign(certificate)
        self.check_status(certificate, issuer)

    def run(self) -> dict[str, str]:
        """The transaction, with card removal and refusals turned into an outcome."""
        try:
            self.transaction()
        except RefusalError as refusal:
            print(f"kiosk: refused: {refusal}", file=sys.stderr)
            return {"outcome": "refused", "reason": refusal.reason}
        except CardGoneError as exc:
            if self.card_present():
                return {"outcome": "refused", "reason": "card-error", "detail": str(exc)}
            print("kiosk: the card was removed; please insert it again", file=sys.stderr)
            return {"outcome": "refused", "reason": "card-removed"}
        finally:
            if self.connection is not None:
                with contextlib.suppress(CardConnectionException):
                    self.connection.disconnect()
        return {"outcome": "accepted"}


def verify_signature(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, signature: bytes, challenge: bytes
) -> None:
    """The card's signature over ``challenge``: RSA PKCS#1 v1.5 SHA-256, or ECDSA SHA-384 (the
    card answers raw r ‖ s, or DER); InvalidSignature (or ValueError) when it does not match."""
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        return
    size = (key.curve.key_size + 7) // 8
    if len(signature) == 2 * size:  # raw r ‖ s, as ISO 7816-8 cards commonly answer
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        signature = utils.encode_dss_signature(r, s)
    key.verify(signature, challenge, ec.ECDSA(hashes.SHA384()))


def load_trusted() -> list[x509.Certificate]:
    path = os.environ.get("MYNACARD_TRUST_PEM")
    if not path:
        return []
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificates(handle.read())


def main(kiosk_class: type[Kiosk] = Kiosk) -> int:
    kiosk = kiosk_class(os.environ.get("MYNACARD_READER"), load_trusted())
    print(json.dumps(kiosk.run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
