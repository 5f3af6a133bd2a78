#!/usr/bin/env python3
"""A deliberately careless kiosk: the reference flow with the mistakes kiosks really make.

``mynacard conformance run`` must catch every one of them. Compared with
``reference_kiosk.py`` it

1. accepts only the classic ATR (a newer card is turned away);
2. reads the signing certificate (EF 0001) to show the customer's name;
3. sends the PIN without asking how many tries are left, and carries on to the signature when
   the card says the PIN is blocked;
4. does not look at the certificate's validity period, nor ask OCSP about revocation;
5. gives up when the card takes more than a second to sign;
6. does not handle a card pulled out mid-transaction, nor a certificate that opens only after
   the PIN (it crashes);
7. **assumes RSA**: it always sends a SHA-256 DigestInfo and checks the answer as an RSA
   PKCS#1 v1.5 signature, as every card before 2026 wanted — on a next-generation card
   (ECDSA P-384) it crashes once the card has signed. Only the migration matrix
   (``--matrix``) shows it: today's card and the smartphone token are RSA.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from reference_kiosk import (
    SHA256_DIGEST_INFO,
    CardGoneError,
    Kiosk,
    RefusalError,
    main,
)

CLASSIC_ATR = bytes.fromhex("3BE000FF8131FE4514")
SIGNING_CERTIFICATE = 0x0001


class CarelessKiosk(Kiosk):
    def check_atr(self, atr: bytes) -> None:
        if atr != CLASSIC_ATR:
            raise RefusalError("unsupported-card", f"unknown ATR {atr.hex()}")

    def before_certificate(self) -> None:
        self.read_file(SIGNING_CERTIFICATE)  # "for the name on the screen"; answer ignored

    def read_certificate(self) -> x509.Certificate:
        der, sw = self.read_file(0x000A)
        if sw != 0x9000:
            raise RuntimeError(f"cannot read the certificate: {sw:04X}")
        return x509.load_der_x509_certificate(der)

    def check_certificate(self, certificate: x509.Certificate) -> x509.Certificate:
        return certificate  # no validity or issuer check

    def verify_pin(self) -> None:
        self.select_ef(0x0018)
        for pin in self.pins:
            data = pin.encode("ascii")
            _, sw = self.transmit(bytes([0x00, 0x20, 0x00, 0x80, len(data)]) + data)
            if sw & 0xFFF0 != 0x63C0 or sw == 0x63C0:
                return  # 9000, or blocked: carry on regardless

    def timed_sign(self, apdu: bytes) -> tuple[bytes, int]:
        started = time.monotonic()
        answer = self.transmit(apdu)
        if time.monotonic() - started > 1.0:
            raise RefusalError("card-error", "the card timed out")
        return answer

    def sign(self, certificate: x509.Certificate) -> None:
        try:
            self.sign_rsa(certificate)
        except CardGoneError:
            raise RuntimeError("card communication failed") from None

    def sign_rsa(self, certificate: x509.Certificate) -> None:
        """Mistake 7: every JPKI key is RSA-2048 (a SHA-256 DigestInfo in, PKCS#1 v1.5 out)."""
        challenge = os.urandom(32)
        signature = self.card_signature(SHA256_DIGEST_INFO + hashlib.sha256(challenge).digest())
        key: rsa.RSAPublicKey = certificate.public_key()  # type: ignore[assignment]
        try:
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise RefusalError("card-error", "the signature does not match") from None

    def check_status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> None:
        pass  # no OCSP


if __name__ == "__main__":
    sys.exit(main(CarelessKiosk))
