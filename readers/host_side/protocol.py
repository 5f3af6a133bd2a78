"""The host-side protocol layer: APDUs over any :class:`~readers.host_side.transport.Transport`.

:class:`CardProtocol` exchanges commands, turns status words into exceptions, SELECTs
applications and EFs, VERIFYs credentials and reads EFs in 256-byte chunks. Every application
session (:mod:`~readers.host_side.jpki`, :mod:`~readers.host_side.text_ap`, ...) works through
one. It behaves the same against the emulator in-process, through PC/SC, and on a real card.
"""

from __future__ import annotations

from apdu import CodecError, CommandApdu, ResponseApdu, builders, tlv
from apdu.errors import MynacardError
from readers.host_side.transport import Transport

__all__ = [
    "CHUNK",
    "CardError",
    "CardProtocol",
    "InterlockError",
    "PinBlockedError",
    "VerificationError",
    "WrongPinError",
    "card_error",
]

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


class VerificationError(MynacardError, ValueError):
    """Card data whose signature or digest does not check out."""


class CardProtocol:
    """APDU exchange with one card over one transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

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

    def select_ef(self, fid: int) -> None:
        """SELECT an EF, key or IEF in the current AP."""
        self.expect_ok(builders.select_ef(fid), f"SELECT EF {fid:04X}")

    def unlock(self, aid: bytes, credential_fid: int, secret: str) -> None:
        """SELECT the AP, SELECT the IEF and VERIFY it (opens what the IEF opens in that AP)."""
        self.select_application(aid)
        self.select_ef(credential_fid)
        self.expect_ok(builders.verify(secret.encode("ascii")), f"VERIFY {credential_fid:04X}")

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

    def read_record(self, fid: int, record: int = 1) -> bytes:
        """Record ``record`` of the record-structured EF ``fid`` in the current AP."""
        self.select_ef(fid)
        return self.expect_ok(builders.read_record(record), f"READ RECORD {fid:04X} #{record}")
