"""The last exchanges of each reader, masked, kept in memory for the console's trace download.

Each reader keeps its last :data:`TRACE_RECORDS` lines (exchanges and card events) of trace
format 2, made by :func:`~harness.console.masking.trace_json` (no response data, secret command
data masked); :meth:`TraceBuffer.render` writes them as a trace file that
:func:`harness.traces.read_trace` reads back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from apdu import TraceRecord
from harness.console.masking import trace_json
from harness.traces.trace_file import TRACE_FORMAT

TRACE_RECORDS = 10_000
"""Lines each reader keeps; older ones are dropped."""


class TraceBuffer:
    """A ring buffer of masked trace lines per reader; thread-safe, appending never waits long."""

    def __init__(self, size: int = TRACE_RECORDS) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._lines: dict[str, deque[dict[str, Any]]] = {}
        self._seq: dict[str, int] = {}

    def add(
        self, record: TraceRecord, meaning: str = "", line: dict[str, Any] | None = None
    ) -> None:
        """Keep ``record`` (of ``record.reader``); an exchange gets its per-reader number and
        ``meaning``. ``line``: its :func:`trace_json`, when the caller made it already."""
        line = trace_json(record) if line is None else line
        with self._lock:
            lines = self._lines.get(record.reader)
            if lines is None:
                lines = self._lines[record.reader] = deque(maxlen=self.size)
            if not record.event:
                seq = self._seq[record.reader] = self._seq.get(record.reader, 0) + 1
                line = {"seq": seq, **line, "meaning": meaning}
            lines.append(line)

    def lines(self, reader: str) -> list[dict[str, Any]]:
        """The kept lines of ``reader``, oldest first."""
        with self._lock:
            return list(self._lines.get(reader, ()))

    def render(self, reader: str) -> str:
        """``reader``'s trace: a format 2 header, then its kept lines (JSON Lines)."""
        header = {"type": "header", "version": TRACE_FORMAT, "t": time.time(), "reader": reader}
        return "".join(
            json.dumps(line, ensure_ascii=False) + "\n" for line in [header, *self.lines(reader)]
        )
