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
   the PIN (it crashes).
"""

from __future__ import annotations

import sys
import time

from cryptography import x509
from reference_kiosk import CardGoneError, Kiosk, RefusalError, main

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
            super().sign(certificate)
        except CardGoneError:
            raise RuntimeError("card communication failed") from None

    def check_status(self, certificate: x509.Certificate, issuer: x509.Certificate) -> None:
        pass  # no OCSP


if __name__ == "__main__":
    sys.exit(main(CarelessKiosk))
