"""What the console shows of an exchange: the command masked as traces mask it, and of the
response only its length and status word.

The data of a response never leaves the process: READ BINARY answers carry the My Number
(照合番号A) and the birth date and expiry (照合番号B), so an event or a downloaded trace holds
``(12 bytes) 90 00`` (events) or ``90 00`` and ``response_length`` (trace lines), never the bytes.
"""

from __future__ import annotations

from typing import Any

from apdu import TraceRecord


def response_text(response: bytes) -> str:
    """``(12 bytes) 90 00``: the number of data bytes before the status word, and the status
    word (``(1 byte)`` alone for an answer too short to hold one)."""
    if len(response) < 2:
        return _count(len(response))
    return f"{_count(len(response) - 2)} {response[-2:].hex(' ').upper()}"


def _count(size: int) -> str:
    return f"({size} byte{'' if size == 1 else 's'})"


def _data_length(response: bytes) -> int:
    return max(0, len(response) - 2)


def event_from_trace(record: TraceRecord, line: dict[str, Any]) -> dict[str, Any]:
    """An exchange or card event as the console streams it, made from ``record``'s
    :func:`trace_json` ``line`` (one ``to_json`` for both): the response as
    :func:`response_text`, with ``response_length`` from the line."""
    if record.event:
        return line
    return {**line, "response": response_text(record.response)}


def trace_json(record: TraceRecord) -> dict[str, Any]:
    """A line of trace format 2 (``harness.traces.read_trace`` reads it) without response
    data: ``response`` is the status word alone (spaced hex), ``response_length`` the number of
    data bytes the card sent before it."""
    out = record.to_json()
    if not record.event:
        out["response"] = record.response[-2:].hex(" ").upper() if len(record.response) >= 2 else ""
        out["response_length"] = _data_length(record.response)
    return out
