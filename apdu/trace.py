"""The one exchange event: a :class:`TraceRecord` for every APDU and every card event.

Every observer — a transport's or a card server's ``on_exchange``, a fault card, the trace
writer, the ``-v`` log — takes this record. Its text and JSON forms never show the data of a
command not known to be public (VERIFY / CHANGE data included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apdu.command import mask_hex
from apdu.status import describe


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One command/response exchange, or one card event, as seen by whoever carries the card.

    ``timestamp`` is when the exchange started (seconds since the epoch) and ``duration`` how
    long the card or the transport took. ``reader`` names the reader (empty in process).
    ``event`` is set, and the APDUs empty, for a card event (:data:`EVENTS`). ``note`` is a
    decoded meaning added by whoever records the trace (e.g. which AP and EF).
    """

    timestamp: float
    command: bytes
    response: bytes
    duration: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    reader: str = field(default="", kw_only=True)
    event: str = field(default="", kw_only=True)

    @classmethod
    def card_event(
        cls, event: str, *, reader: str = "", timestamp: float | None = None
    ) -> TraceRecord:
        """A record of card event ``event`` (one of :data:`EVENTS`), now unless ``timestamp``."""
        if event not in EVENTS:
            raise ValueError(f"unknown card event {event!r} (known: {', '.join(EVENTS)})")
        return cls(
            time.time() if timestamp is None else timestamp, b"", b"", reader=reader, event=event
        )

    @classmethod
    def exchange(
        cls, timestamp: float, command: bytes, response: bytes, duration: float, reader: str
    ) -> TraceRecord:
        """The record of one answered APDU, as the constructor makes it, at half its cost: a
        served card makes one per APDU while anyone watches, on the path of the answer."""
        record = _new(cls)
        _set_timestamp(record, timestamp)
        _set_command(record, command)
        _set_response(record, response)
        _set_duration(record, duration)
        _set_note(record, "")
        _set_extra(record, {})
        _set_reader(record, reader)
        _set_event(record, "")
        return record

    @property
    def sw(self) -> int | None:
        """Status word of the response, if there is one."""
        return int.from_bytes(self.response[-2:], "big") if len(self.response) >= 2 else None

    def command_text(self) -> str:
        """Masked hex of the command."""
        return mask_hex(self.command)

    def text(self) -> str:
        """Two lines, ``>>`` command and ``<<`` response, with secrets masked (events: one)."""
        if self.event:
            return f"-- {self.event}"
        sw = self.sw
        status = describe(sw) if sw is not None else "(no status word)"
        data = self.response[:-2].hex(" ").upper() if sw is not None else ""
        note = f"  # {self.note}" if self.note else ""
        answer = f"{data}  {status}" if data else status
        return f">> {self.command_text()}{note}\n<< {answer}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of a trace); the command is stored masked, never raw."""
        if self.event:
            event: dict[str, Any] = {"type": "event", "t": self.timestamp, "event": self.event}
            return {**event, "reader": self.reader} if self.reader else event
        out: dict[str, Any] = {
            "type": "exchange",
            "t": self.timestamp,
            "command": self.command_text(),
            "response": self.response.hex(" ").upper(),
        }
        if self.reader:
            out["reader"] = self.reader
        if self.sw is not None:
            out["sw"] = f"{self.sw:04X}"
        if self.duration is not None:
            out["duration_ms"] = round(self.duration * 1000, 3)
        if self.note:
            out["meaning"] = self.note
        out.update(self.extra)
        return out


# The slots' own setters: what the frozen dataclass's __init__ reaches through
# object.__setattr__, without the lookups (TraceRecord.exchange).
_new = object.__new__
(
    _set_timestamp,
    _set_command,
    _set_response,
    _set_duration,
    _set_note,
    _set_extra,
    _set_reader,
    _set_event,
) = (
    vars(TraceRecord)[name].__set__
    for name in ("timestamp", "command", "response", "duration", "note", "extra", "reader", "event")
)

EVENTS = ("insert", "remove", "power_on", "power_off", "reset")
"""The card events a :class:`TraceRecord` may carry."""

Observer = Callable[[TraceRecord], object]
"""What every ``on_exchange`` hook is: called with each record; its return value is ignored."""
