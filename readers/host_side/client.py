"""Host-side client for My Number cards, over any :class:`~readers.host_side.transport.Transport`.

Works the same against the emulator in-process, through PC/SC, and on a real card. Safety
interlock for real cards: :meth:`MynaClient.verify` refuses an attempt that could block a
credential (one try left) unless ``force=True``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509

from apdu import CodecError, CommandApdu, ResponseApdu, builders, tlv
from apdu.errors import MynacardError
from readers.host_side.transport import Transport

JPKI_AID = bytes.fromhex("D392F000260100000001")

SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300D060960864801650304020105000420")
DIGEST_INFO_PREFIXES = {
    "sha1": bytes.fromhex("3021300906052B0E03021A05000414"),
    "sha256": SHA256_DIGEST_INFO_PREFIX,
    "sha384": bytes.fromhex("3041300D060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300D060960864801650304020305000440"),
}
CHUNK = 256
HEADER_PROBE = 8  # enough bytes for any tag and length this card uses


class CardError(MynacardError, RuntimeError):
    """The card answered a status word other than ``9000``."""

    def __init__(self, what: str, response: ResponseApdu) -> None:
        super().__init__(f"{what}: {response.meaning}")
        self.sw = response.sw
        self.response = response


class WrongPinError(CardError):
    """A VERIFY answered ``63Cx``: the value was wrong; :attr:`tries_left` remain (0: blocked)."""

    def __init__(self, what: str, response: ResponseApdu) -> None:
        super().__init__(what, response)
        self.tries_left: int = response.retries or 0


class PinBlockedError(CardError):
    """A VERIFY answered ``6984``: the credential is blocked (only the municipality resets it)."""


def card_error(what: str, response: ResponseApdu) -> CardError:
    """The most precise :class:`CardError` for ``response``."""
    if response.retries is not None:
        return WrongPinError(what, response)
    if response.sw == 0x6984:
        return PinBlockedError(what, response)
    return CardError(what, response)


class InterlockError(MynacardError, RuntimeError):
    """A VERIFY that could block a credential was refused without ``force=True``."""


class JpkiCredential(Enum):
    """The two JPKI credentials: IEF and the key they enable."""

    AUTH_PIN = (0x0018, 0x0017, 0x000A, "利用者証明用暗証番号")
    SIGN_PASSWORD = (0x001B, 0x001A, 0x0001, "署名用パスワード")

    def __init__(self, ief: int, key: int, certificate: int, label: str) -> None:
        self.ief = ief
        self.key = key
        self.certificate = certificate
        self.label = label


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """The first fields of JPKI EF ``0006``."""

    label: str
    manufacturer: str
    model: str
    serial: str

    @property
    def smartphone(self) -> bool:
        """True for a smartphone secure element rather than a physical card."""
        return self.label in ("JPKIAPGPSETOKEN", "JPKIAPIOSTOKEN")


def digest_info(data: bytes, algorithm: str = "sha256") -> bytes:
    """DigestInfo of ``data`` (what the JPKI card signs with P1 ``00``)."""
    prefix = DIGEST_INFO_PREFIXES.get(algorithm)
    if prefix is None:
        raise ValueError(
            f"unsupported digest {algorithm!r} (known: {', '.join(DIGEST_INFO_PREFIXES)})"
        )
    return prefix + hashlib.new(algorithm, data).digest()


class MynaClient:
    """Reads and uses the applications of a My Number card."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    # --- plumbing --------------------------------------------------------------------------

    def send(self, command: CommandApdu) -> ResponseApdu:
        """Exchange one command."""
        return ResponseApdu.parse(self.transport.transmit(command.to_bytes()))

    def expect_ok(self, command: CommandApdu, what: str) -> bytes:
        """Exchange and raise :class:`CardError` unless the card answered ``9000``."""
        response = self.send(command)
        if not response.ok:
            raise card_error(what, response)
        return response.data

    def select_application(self, aid: bytes) -> None:
        """SELECT an AP by AID (this also forgets every verified credential)."""
        self.expect_ok(builders.select_aid(aid), f"SELECT {aid.hex().upper()}")

    def unlock(self, aid: bytes, credential_fid: int, secret: str) -> None:
        """SELECT the AP, SELECT the IEF and VERIFY it (opens what the IEF opens in that AP)."""
        self.select_application(aid)
        self.select_ef(credential_fid)
        self.expect_ok(builders.verify(secret.encode("ascii")), f"VERIFY {credential_fid:04X}")

    def select_ef(self, fid: int) -> None:
        """SELECT an EF, key or IEF in the current AP."""
        self.expect_ok(builders.select_ef(fid), f"SELECT EF {fid:04X}")

    def read_ef(self, fid: int, size: int | None = None) -> bytes:
        """Read EF ``fid`` in 256-byte chunks (short APDUs only, like OpenSC).

        Reads ``size`` bytes; or, when the file starts with a BER object, exactly that object
        (filler after it is left unread); or else until the card reports the end of the file.
        """
        self.select_ef(fid)
        if size is None:
            head = self._read_chunk(0, HEADER_PROBE, fid)
            try:
                _, header_length, value_length = tlv.read_header(head)
                size = header_length + value_length
            except CodecError:
                size = None
        data = b""
        while size is None or len(data) < size:
            want = CHUNK if size is None else min(CHUNK, size - len(data))
            response = self.send(builders.read_binary(len(data), want))
            if response.sw == 0x6B00 and size is None:
                break
            if not response.ok:
                raise CardError(f"READ BINARY {fid:04X} at {len(data)}", response)
            data += response.data
            if not response.data or (size is None and len(response.data) < want):
                break
        return data

    def _read_chunk(self, offset: int, length: int, fid: int) -> bytes:
        return self.expect_ok(builders.read_binary(offset, length), f"READ BINARY {fid:04X}")

    # --- JPKI ------------------------------------------------------------------------------

    def select_jpki(self) -> None:
        """SELECT the JPKI-AP."""
        self.select_application(JPKI_AID)

    def token_info(self) -> TokenInfo:
        """EF ``0006``: the token label tells a card from a smartphone."""
        self.select_jpki()
        raw = self.read_ef(0x0006, 96)

        def text(part: bytes) -> str:
            return part.decode("ascii", "replace").rstrip(" \x00")

        return TokenInfo(text(raw[:32]), text(raw[32:64]), text(raw[64:80]), text(raw[80:96]))

    def certificate(self, fid: int) -> x509.Certificate:
        """A certificate from the JPKI-AP (``000A`` auth, ``000B`` auth CA, ``0002`` sign CA,
        ``0001`` sign — the last needs the signing password verified first)."""
        return x509.load_der_x509_certificate(self.read_ef(fid))

    def retries(self, credential: JpkiCredential) -> int:
        """Tries left, from an empty VERIFY (never consumes a try)."""
        response = self.send(builders.verify(None, sfi=credential.ief))
        if response.retries is None:
            raise CardError(f"retry counter of {credential.label}", response)
        return response.retries

    def verify(self, credential: JpkiCredential, secret: str, *, force: bool = False) -> None:
        """VERIFY a JPKI credential (the AP must be selected).

        Refuses when one try is left (a wrong value would block the credential) unless
        ``force``. The secret is never included in an exception or log.
        """
        left = self.retries(credential)
        if left == 0:
            raise InterlockError(
                f"{credential.label} is blocked; only the municipality can reset it"
            )
        if left == 1 and not force:
            raise InterlockError(
                f"{credential.label} has one try left; a wrong value would block it "
                "(pass force=True to try anyway)"
            )
        self.expect_ok(
            builders.verify(secret.encode("ascii"), sfi=credential.ief),
            f"VERIFY {credential.label}",
        )

    def sign(self, credential: JpkiCredential, data: bytes, algorithm: str = "sha256") -> bytes:
        """Sign ``data`` with the key the credential enables (the host builds the DigestInfo)."""
        command = builders.compute_signature(digest_info(data, algorithm), key_sfi=credential.key)
        return self.expect_ok(command, f"COMPUTE DIGITAL SIGNATURE with {credential.key:04X}")
