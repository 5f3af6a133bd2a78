"""The APDUs of an access-rule audit: select, read a retry counter, verify, read, use a key.

A :class:`Prober` sends only these, on any :class:`~readers.transport.Transport`, and reduces
each answer to its status word; a signature is asked for over a fixed harmless DigestInfo and the
signature itself is discarded.
"""

from __future__ import annotations

import hashlib

from apdu import CommandApdu, builders
from apdu.vocabulary import DIGEST_INFO_PREFIXES, Jpki
from harness.audit.report import (
    SW_CONDITIONS,
    SW_INCOMPATIBLE,
    SW_OK,
    AuditError,
    Cell,
)
from readers.host_side.transport import Transport

__all__ = ["PROBE_CHALLENGE", "PROBE_DIGEST_INFO", "Prober", "read_token", "wrong_value"]

PROBE_DIGEST_INFO = (
    DIGEST_INFO_PREFIXES["sha256"] + hashlib.sha256(b"mynacard access audit probe").digest()
)
"""DigestInfo(SHA-256) of a fixed harmless message; only the status word is read."""

PROBE_CHALLENGE = hashlib.sha256(b"mynacard access audit challenge").digest()


class Prober:
    """Sends the audit's commands and counts them; answers are reduced to status words."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.count = 0

    def send(self, command: CommandApdu) -> tuple[bytes, int]:
        """(data, SW) of ``command``; :class:`AuditError` when the answer has no SW."""
        response = self.transport.transmit(command.to_bytes())
        self.count += 1
        if len(response) < 2:
            raise AuditError(f"no status word in the answer to {command!r}")
        return response[:-2], int.from_bytes(response[-2:], "big")

    def sw(self, command: CommandApdu) -> int:
        """The SW of ``command``."""
        return self.send(command)[1]

    def select_ap(self, aid: bytes) -> int:
        """SELECT the AP by AID (which also clears its security state)."""
        return self.sw(builders.select_aid(aid))

    def counter(self, fid: int) -> int:
        """The SW of an empty VERIFY of credential ``fid`` (63Cx: x tries left)."""
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return sw
        return self.sw(builders.verify(None))

    def verify(self, fid: int, secret: bytes) -> int:
        """The SW of VERIFY ``secret`` against credential ``fid``."""
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return sw
        return self.sw(builders.verify(secret))

    def read(self, fid: int) -> Cell:
        """READ BINARY one byte of EF ``fid`` (READ RECORD if it is a record file)."""
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return Cell("select", sw)
        sw = self.sw(builders.read_binary(0, 1))
        if sw != SW_INCOMPATIBLE:
            return Cell("read-binary", sw)
        return Cell("read-record", self.sw(builders.read_record(1, le=1)))

    def use(self, fid: int) -> Cell:
        """Sign with key ``fid`` (INTERNAL AUTHENTICATE if it is not a signing key)."""
        if 1 <= fid <= 0x1E:
            sw = self.sw(builders.compute_signature(PROBE_DIGEST_INFO, key_sfi=fid))
        else:
            sw = self.sw(builders.select_ef(fid))
            if sw != SW_OK:
                return Cell("select", sw)
            sw = self.sw(builders.compute_signature(PROBE_DIGEST_INFO))
        if sw != SW_CONDITIONS or not 1 <= fid <= 0x1E:
            return Cell("sign", sw)
        # 6985: not a signing key; an INTERNAL AUTHENTICATE key (common AP 0019) answers here
        return Cell("internal-auth", self.sw(builders.internal_authenticate(PROBE_CHALLENGE, fid)))


def wrong_value(secret: bytes) -> bytes:
    """A value of the same length that differs from ``secret`` in its last character."""
    last = secret[-1:]
    replacement = b"0" if last != b"0" else b"1"
    return secret[:-1] + replacement


def read_token(prober: Prober) -> str:
    """The JPKI-AP's token label (e.g. ``JPKIAPICCTOKEN2``); empty when it cannot be read."""
    if prober.select_ap(Jpki.AID) != SW_OK:
        return ""
    if prober.sw(builders.select_ef(Jpki.EF_TOKEN)) != SW_OK:
        return ""
    data, sw = prober.send(builders.read_binary(0, 32))
    return data.decode("ascii", "replace").rstrip(" \x00") if sw == SW_OK else ""
