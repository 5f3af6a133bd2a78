"""Secure messaging with the 券面事項入力補助AP, host side, over any transport.

What a session protects (myna-card ``src/sm.rs``, measured on real cards): everything after the
PIN. The PIN itself must be presented in the clear first (the card refuses key delivery until
then), but 照合番号A — which *is* the 個人番号 — and the 個人番号 and 基本4情報 read afterwards
travel encrypted. Confidentiality only: the protocol has no checksum.

    session = TextApSession.open(client, pin="1234")
    session.verify_check_code_a("314159265352")   # encrypted on the wire
    number, attributes = session.my_number(), session.attributes()
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import CommandApdu, tlv
from apdu import secure_messaging as sm
from apdu.errors import MynacardError
from apdu.vocabulary import Text
from jpki.cv_certificate import decode_rsa_public_key
from readers.host_side.protocol import CardError, CardProtocol
from readers.host_side.text_ap import (
    Attributes,
    parse_attributes,
    parse_my_number,
    read_and_verify,
)

__all__ = ["SM_ERRORS", "SessionBrokenError", "TextApSession", "session_public_key"]

SM_ERRORS = frozenset({0x6882, 0x6987, 0x6988, 0x69FC})
"""Status words of the SM layer: after any of them the card's session is gone."""
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_READ_WHOLE = 65536


class SessionBrokenError(MynacardError, RuntimeError):
    """The card reported a secure-messaging error; the session cannot continue."""


def session_public_key(ef_0006: bytes) -> rsa.RSAPublicKey:
    """The key-delivery public key in EF ``0006`` (``A1 { 90 e, 91 n }``)."""
    outer = tlv.decode_one(ef_0006)
    if outer.tag != 0xA1:
        raise ValueError(f"EF 0006 starts with tag {outer.tag:X}, expected A1")
    return decode_rsa_public_key(outer.value)


class TextApSession:
    """An open secure-messaging session with the text AP; tracks the message counter."""

    def __init__(self, client: CardProtocol, key: bytes) -> None:
        self.client = client
        self._key = key
        self.counter = 1
        """The counter the next SM command uses (starts at 1 after SET SESSION KEY)."""
        self.broken = False

    @classmethod
    def open(cls, client: CardProtocol, pin: str, *, seed: bytes | None = None) -> TextApSession:
        """SELECT the AP, VERIFY the PIN (in the clear: unavoidable) and deliver a session key.

        ``seed`` (32 bytes) is for tests only; by default it comes from ``os.urandom``, fresh
        for every session, as it must (a reused seed repeats every IV).
        """
        client.unlock(Text.AID, Text.PIN, pin)
        public = session_public_key(client.read_ef(Text.EF_SM_KEY))
        seed = os.urandom(sm.SEED_LENGTH) if seed is None else seed
        cryptogram = public.encrypt(sm.key_delivery_message(seed), _OAEP)
        client.expect_ok(
            CommandApdu(0x80, 0xAE, 0x00, 0x00, cryptogram, extended=True), "SET SESSION KEY"
        )
        return cls(client, seed[: sm.SESSION_KEY_LENGTH])

    # --- the three commands the card accepts under SM ---------------------------------------

    def verify(self, fid: int, secret: str) -> None:
        """VERIFY the IEF ``fid`` (named by SFI, no SELECT) with the value encrypted."""
        data = sm.cryptogram_object(sm.encrypt(self._key, self.counter, secret.encode("ascii")))
        self._call(CommandApdu(sm.CLA_SM, 0x20, 0x00, 0x80 | fid, data), f"SM VERIFY {fid:04X}")

    def select_ef(self, fid: int) -> None:
        """SELECT an EF with its identifier encrypted."""
        data = sm.cryptogram_object(sm.encrypt(self._key, self.counter, fid.to_bytes(2, "big")))
        self._call(CommandApdu(sm.CLA_SM, 0xA4, 0x02, 0x0C, data), f"SM SELECT {fid:04X}")

    def read_binary(self, offset: int = 0, length: int = 0) -> bytes:
        """READ BINARY of the current EF; ``length`` 0 reads to the end of the file."""
        counter = self.counter
        response = self._call(
            CommandApdu(
                sm.CLA_SM,
                0xB0,
                offset >> 8,
                offset & 0xFF,
                sm.expected_length_object(length),
                le=_READ_WHOLE,
            ),
            f"SM READ BINARY @{offset}",
        )
        return sm.decrypt(self._key, counter, sm.parse_cryptogram(response))

    def _call(self, command: CommandApdu, what: str) -> bytes:
        if self.broken:
            raise SessionBrokenError("the secure-messaging session was ended by an SM error")
        response = self.client.send(command)
        self.counter += 1  # the card advanced too, unless the SM layer refused (then it is gone)
        if response.sw in SM_ERRORS:
            self.broken = True
            raise SessionBrokenError(f"{what}: {response.meaning}")
        if not response.ok:
            raise CardError(what, response)
        return response.data

    # --- what the session is for -----------------------------------------------------------

    def verify_check_code_a(self, my_number: str) -> None:
        """Present 照合番号A (the 個人番号) without it crossing the interface in the clear."""
        self.verify(Text.CHECK_CODE_A, my_number)

    def verify_check_code_b(self, code: str) -> None:
        """Present 照合番号B encrypted."""
        self.verify(Text.CHECK_CODE_B, code)

    def read_ef(self, fid: int) -> bytes:
        """A whole EF as stored (filler included): SELECT and READ BINARY, two counter steps."""
        self.select_ef(fid)
        return self.read_binary(0, 0)

    def my_number(self) -> str:
        """個人番号, read encrypted (needs the PIN or 照合番号A)."""
        return parse_my_number(self.read_ef(Text.EF_MY_NUMBER))

    def attributes(self) -> Attributes:
        """基本4情報, read encrypted (needs the PIN or 照合番号B)."""
        return parse_attributes(self.read_ef(Text.EF_ATTRIBUTES))

    def verified_contents(self, root_public_key: rsa.RSAPublicKey) -> tuple[str, Attributes]:
        """個人番号 and 基本4情報 read encrypted and checked against the integrity record."""
        return read_and_verify(self.read_ef, root_public_key)
