"""Names each command of a trace as card-facts does (AP, EF, credential), tracking the selected
AP and current EF across commands like the card, so ``READ BINARY`` names the EF the preceding
SELECT made current.

The names are today's card's (:data:`apdu.vocabulary.APPLICATIONS`) unless the decoder is given
another card generation's (:func:`profile_applications`: the next-generation card's (仮称)認証AP
and (仮称)券面等AP, their keys and credentials as its profile labels them).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from apdu import CodecError, CommandApdu, TraceRecord
from apdu.vocabulary import (
    APPLICATION_BY_AID,
    APPLICATIONS,
    ISSUER_SECURITY_DOMAIN_AID,
    Application,
)

if TYPE_CHECKING:
    from card_emulator.profiles import CardProfile

_ISSUER_SECURITY_DOMAIN = ("isd", "Issuer Security Domain")

_INS = {
    0xA4: "SELECT",
    0xB0: "READ BINARY",
    0xB2: "READ RECORD",
    0x20: "VERIFY",
    0x24: "CHANGE REFERENCE DATA",
    0x2A: "COMPUTE DIGITAL SIGNATURE",
    0x88: "INTERNAL AUTHENTICATE",
    0x84: "GET CHALLENGE",
    0xCA: "GET DATA",
    0x32: "CHANGE KEY",
    0xAE: "SET SESSION KEY",
    0xFC: "LAST COMMAND INDICATOR",
    0xA2: "SET PUBLIC IC KEY",
}


@dataclass
class Decoder:
    """Names each command, tracking the selected AP and current EF across commands."""

    application: str | None = None
    current: int | None = None
    applications: Mapping[str, Application] = field(default_factory=lambda: APPLICATIONS)
    """The applications by name (default today's card's; :func:`profile_applications`)."""

    def reset(self) -> None:
        """Power event: back to the power-on state."""
        self.application = None
        self.current = None

    def _name(self, fid: int) -> str | None:
        app = self.applications.get(self.application or "")
        return app.files.get(fid) if app else None

    def _ef(self, fid: int) -> str:
        name = self._name(fid)
        return f"{fid:04X} {name}" if name else f"{fid:04X}"

    def _credential(self, fid: int) -> str:
        name = self._name(fid)
        app = self.applications.get(self.application or "")
        where = f"{app.short if app else '?'} {fid:04X}"
        return f"{name} ({where})" if name else where

    def command(self, raw: bytes, response: bytes | None = None) -> str:
        """The meaning of ``raw``; ``response`` (when known) updates the state only on 9000."""
        try:
            cmd = CommandApdu.parse(raw)
        except CodecError as exc:
            return f"malformed APDU ({exc})"
        ok = response is None or response[-2:] == b"\x90\x00"
        name = _INS.get(cmd.ins, f"INS {cmd.ins:02X}")
        if cmd.cla & 0x0C:
            return f"{name} (secure messaging CLA {cmd.cla:02X})"
        if cmd.ins == 0xA4:
            return self._select(cmd, ok)
        if cmd.ins in (0xB0, 0xB2):
            return self._read(cmd, name)
        if cmd.ins in (0x20, 0x24, 0x32):
            fid = cmd.p2 & 0x1F or self.current
            what = "(no EF selected)" if fid is None else self._credential(fid)
            suffix = " (retries query)" if cmd.ins == 0x20 and not cmd.data else ""
            return f"{name} {what}{suffix}"
        if cmd.ins in (0x2A, 0x88):
            fid = cmd.p2 & 0x1F if cmd.p2 & 0x80 and cmd.p2 & 0x1F else self.current
            if cmd.p2 == 0 and cmd.ins == 0x2A:
                return f"{name} (AP default key)"
            return f"{name} {'?' if fid is None else self._ef(fid)}"
        if cmd.ins == 0xCA:
            return f"{name} tag {cmd.p1:02X}{cmd.p2:02X}"
        if cmd.ins == 0x84:
            return f"{name} ({cmd.le or 0} bytes)"
        return name

    def _select(self, cmd: CommandApdu, ok: bool) -> str:
        if cmd.p1 == 0x04:
            app = next((a for a in self.applications.values() if a.aid == cmd.data), None)
            known = (app.name, app.label) if app else None
            if cmd.data == ISSUER_SECURITY_DOMAIN_AID:
                known = _ISSUER_SECURITY_DOMAIN
            label = known[1] if known else f"AID {cmd.data.hex().upper()}"
            if ok:
                self.application = known[0] if known else None
                self.current = None
            return f"SELECT {label}"
        if cmd.p1 == 0x02 and len(cmd.data) == 2:
            fid = int.from_bytes(cmd.data, "big")
            text = f"SELECT EF {self._ef(fid)}"
            if ok:
                self.current = fid
            return text
        if cmd.p1 == 0x00 and not cmd.data:
            return "SELECT MF"
        return f"SELECT P1={cmd.p1:02X} {cmd.data.hex().upper()}"

    def _read(self, cmd: CommandApdu, name: str) -> str:
        fid: int | None
        if cmd.ins == 0xB0:
            if cmd.p1 & 0x80:
                fid, offset = cmd.p1 & 0x1F, cmd.p2
                self.current = fid
            else:
                fid, offset = self.current, (cmd.p1 << 8) | cmd.p2
            where = "(no EF selected)" if fid is None else self._ef(fid)
            return f"{name} {where} @0x{offset:04X}"
        sfi = cmd.p2 >> 3
        fid = sfi or self.current
        where = "(no EF selected)" if fid is None else self._ef(fid)
        return f"{name} {where} record {cmd.p1}"


def profile_applications(profile: CardProfile) -> dict[str, Application]:
    """The applications of a card ``profile`` as the decoder names them: the profile's labels
    for the applications, keys and credentials (and files that carry a ``label``); a file's
    name otherwise from today's application with the same AID, if any."""
    out: dict[str, Application] = {}
    for app in profile.applications:
        aid = bytes.fromhex(str(app["aid"]))
        today = APPLICATION_BY_AID.get(aid)
        files: dict[int, str] = dict(today.files) if today else {}
        for section in ("files", "keys", "credentials"):
            for fid, spec in dict(app.get(section, {})).items():
                if isinstance(spec, Mapping) and "label" in spec:
                    files[int(fid, 16)] = str(spec["label"])
        label = str(app.get("label", app["name"]))
        out[str(app["name"])] = Application(str(app["name"]), aid, label, label, files)
    return out


class ReaderDecoders:
    """One :class:`Decoder` per reader, for the records of several readers (thread-safe)."""

    def __init__(self, applications: Mapping[str, Application] = APPLICATIONS) -> None:
        self.applications = applications
        self._decoders: dict[str, Decoder] = {}
        self._lock = threading.Lock()

    def meaning(self, record: TraceRecord) -> str:
        """The meaning of an exchange; a card event resets its reader's decoder (``""``)."""
        with self._lock:
            decoder = self._decoders.setdefault(
                record.reader, Decoder(applications=self.applications)
            )
            if record.event:
                decoder.reset()
                return ""
            return decoder.command(record.command, record.response)

    def reset(self, reader: str) -> None:
        """Back to the power-on state for ``reader`` (another card is in it)."""
        with self._lock:
            self._decoders.pop(reader, None)
