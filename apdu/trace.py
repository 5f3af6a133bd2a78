"""APDU trace records. Their text and JSON forms never show VERIFY / CHANGE data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apdu.command import mask_hex
from apdu.status import describe


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One command/response exchange as seen by a transport.

    ``note`` is a decoded meaning added by whoever records the trace (e.g. which AP and EF).
    """

    timestamp: float
    command: bytes
    response: bytes
    duration: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sw(self) -> int | None:
        """Status word of the response, if there is one."""
        return int.from_bytes(self.response[-2:], "big") if len(self.response) >= 2 else None

    def command_text(self) -> str:
        """Masked hex of the command."""
        return mask_hex(self.command)

    def text(self) -> str:
        """Two lines, ``>>`` command and ``<<`` response, with secrets masked."""
        sw = self.sw
        status = describe(sw) if sw is not None else "(no status word)"
        data = self.response[:-2].hex(" ").upper() if sw is not None else ""
        note = f"  # {self.note}" if self.note else ""
        answer = f"{data}  {status}" if data else status
        return f">> {self.command_text()}{note}\n<< {answer}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the command is stored masked, never raw."""
        out: dict[str, Any] = {
            "t": self.timestamp,
            "command": self.command_text(),
            "response": self.response.hex(" ").upper(),
        }
        if self.sw is not None:
            out["sw"] = f"{self.sw:04X}"
        if self.duration is not None:
            out["duration_ms"] = round(self.duration * 1000, 3)
        if self.note:
            out["note"] = self.note
        out.update(self.extra)
        return out
