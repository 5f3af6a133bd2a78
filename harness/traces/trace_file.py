"""The one trace format: :class:`TraceWriter` writes it, :func:`read_trace` reads it back.

A trace is JSON Lines (format 2, :data:`TRACE_FORMAT`): a header
``{"type": "header", "version": 2, "t": ..., "persona": ...}`` (the persona the card was made
from, when known), then one line per :class:`~apdu.TraceRecord`, an exchange::

    {"seq": 3, "type": "exchange", "t": 1.7e9, "reader": "Virtual PCD 00 00",
     "command": "00 20 00 80 04 XX XX XX XX", "response": "90 00", "sw": "9000",
     "duration_ms": 0.04, "meaning": "VERIFY 利用者証明用暗証番号 (JPKI 0018)"}

or a card event ``{"type": "event", "t": ..., "event": "reset", "reader": ...}`` (``insert``,
``remove``, ``power_on``, ``power_off``, ``reset``). ``reader`` is absent in process. The data of
every command not known to be public is masked. ``meaning`` comes from
:class:`~harness.traces.decoder.Decoder`, one per reader.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from apdu import TraceRecord, describe
from apdu.errors import MynacardError
from apdu.trace import EVENTS
from apdu.vocabulary import APPLICATIONS, Application
from harness.traces.decoder import Decoder, ReaderDecoders, profile_applications

if TYPE_CHECKING:
    from card_emulator.profiles import CardProfile


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command/response pair read back from a trace (the command as masked hex)."""

    seq: int
    t: float
    command: str
    response: str
    meaning: str
    duration_ms: float | None = None
    reader: str = ""

    @property
    def command_bytes(self) -> bytes | None:
        """The raw command, or None when it is masked."""
        return None if "XX" in self.command else bytes.fromhex(self.command.replace(" ", ""))

    @property
    def sw(self) -> str:
        return self.response.replace(" ", "")[-4:]


@dataclass(frozen=True, slots=True)
class Event:
    """A card event (insertion, removal, power) read back from a trace."""

    t: float
    event: str
    reader: str = ""


@dataclass
class Trace:
    """A trace file read back."""

    header: dict[str, Any] = field(default_factory=dict)
    items: list[Exchange | Event] = field(default_factory=list)

    @property
    def exchanges(self) -> list[Exchange]:
        return [item for item in self.items if isinstance(item, Exchange)]


class TraceError(MynacardError, ValueError):
    """A trace file that cannot be read; the message names the file and line."""


MAX_LINE_BYTES = 1024 * 1024
"""Longest trace line: an extended APDU (64 KB) as spaced hex is about 200 KB."""
TRACE_FORMAT = 2
"""The trace format :class:`TraceWriter` writes and :func:`read_trace` reads."""
MAX_PERSONA_PATH = 4096

_HEX_PAIR = frozenset("0123456789ABCDEFabcdef")


class _Line:
    """One JSON object of a trace, read field by field; errors name the file, line and field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, message: str) -> TraceError:
        return TraceError(f"{self.where}: {message}")

    def number(self, key: str, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(f"missing {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key!r} must be a number, not {_shown(value)}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.number(key)

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if value is None:
            raise self.fail(f"missing {key!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key!r} must be an integer, not {_shown(value)}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(f"missing {key!r}")
        if not isinstance(value, str):
            raise self.fail(f"{key!r} must be a string, not {_shown(value)}")
        return value

    def hex(self, key: str, *, masked: bool, default: str | None = None) -> str:
        """Spaced hex bytes (``XX`` for masked ones when ``masked``), as the recorders write."""
        value = self.text(key, default)
        digits = value.replace(" ", "")
        pairs = [digits[i : i + 2] for i in range(0, len(digits), 2)]
        if len(digits) % 2 or not all(
            (masked and pair == "XX") or set(pair) <= _HEX_PAIR for pair in pairs
        ):
            raise self.fail(f"{key!r} is not hex bytes: {_shown(value)}")
        return value


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else f"{text[:40]}…"


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(number, text)`` of each line; TraceError for unreadable, binary or huge input."""
    try:
        with Path(path).open("rb") as file:
            number = 0
            while True:
                raw = file.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    raise TraceError(
                        f"{path}:{number}: line longer than {MAX_LINE_BYTES // 1024} KB "
                        "(not a trace)"
                    )
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise TraceError(
                        f"{path}:{number}: not UTF-8 text (a binary file, not a trace)"
                    ) from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # a NUL in the path
        if isinstance(exc, TraceError):
            raise
        raise TraceError(f"{_shown(str(path))}: cannot read ({exc})") from None


def read_trace(path: str | Path, profile: CardProfile | None = None) -> Trace:
    """Parse a trace written by :class:`TraceWriter` (``mynacard serve --trace``, the plugin's
    ``--mynacard-trace``, the conformance runner).

    Every line is checked (a JSON object of a known type with the fields of that type, of the
    right types); :class:`TraceError` names the file, line and field of the first bad one.
    Commands are named as on a card of ``profile``; by default, of the profile the header's
    persona names when that file can be read (a next-generation card's (仮称)認証AP…), else as
    on today's card.
    """
    trace = Trace()
    decoders: dict[str, Decoder] = {}
    vocabulary: Mapping[str, Application] = (
        APPLICATIONS if profile is None else profile_applications(profile)
    )
    for number, line in _lines(path):
        if not line.strip():
            continue
        item = _parse_line(line, f"{path}:{number}")
        kind = item.data.get("type")
        reader = item.text("reader", "")
        decoder = decoders.setdefault(reader, Decoder(applications=vocabulary))
        if kind == "header":
            _check_header(item)
            trace.header = trace.header or item.data
            if profile is None and not trace.items:  # the card generation the persona names
                vocabulary = _persona_vocabulary(item.data.get("persona"))
                decoders.clear()
        elif kind == "event":
            event = item.text("event")
            if event not in EVENTS:
                raise item.fail(f"'event' must be one of {', '.join(EVENTS)}, not {event!r}")
            decoder.reset()
            trace.items.append(Event(item.number("t", 0), event, reader))
        elif kind == "exchange":
            command = item.hex("command", masked=True)
            response = item.hex("response", masked=False, default="")
            raw = bytes.fromhex(command.replace("XX", "00").replace(" ", ""))
            meaning = decoder.command(raw, bytes.fromhex(response.replace(" ", "")))
            seq = item.integer("seq") if "seq" in item.data else len(trace.exchanges) + 1
            duration = item.optional_number("duration_ms")
            trace.items.append(
                Exchange(seq, item.number("t"), command, response, meaning, duration, reader)
            )
        elif kind in _FORMAT_1_TYPES or "type" not in item.data:
            raise item.fail(
                f"a trace of format 1 (line type {kind or 'record'!r}); this mynacard reads "
                f"format {TRACE_FORMAT}: record the trace again"
            )
        else:
            raise item.fail(f"unknown line {line.strip()[:60]!r}")
    return trace


_FORMAT_1_TYPES = ("apdu", "record")


def _persona_vocabulary(persona: object) -> Mapping[str, Application]:
    """The application names of the card generation persona file ``persona`` names (today's
    card's when it names none, or cannot be read: a trace from another machine)."""
    if not isinstance(persona, str):
        return APPLICATIONS
    import tomllib  # noqa: PLC0415

    from card_emulator.profiles import (  # noqa: PLC0415 - the card emulator only when needed
        DEFAULT_PROFILE,
        ProfileError,
        load_profile,
    )

    path = Path(persona)
    try:
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("profile", DEFAULT_PROFILE)
        if not isinstance(name, str) or name == DEFAULT_PROFILE:
            return APPLICATIONS
        return profile_applications(load_profile(name, path.parent))
    except (OSError, ValueError, ProfileError):  # TOMLDecodeError and UnicodeError too
        return APPLICATIONS


def _parse_line(line: str, where: str) -> _Line:
    try:
        data = json.loads(line)
    except RecursionError:
        raise TraceError(f"{where}: not JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise TraceError(f"{where}: not JSON ({message})") from None
    if not isinstance(data, dict):
        raise TraceError(f"{where}: expected a JSON object, got {_shown(data)}")
    return _Line(data, where)


def _check_header(item: _Line) -> None:
    found = item.data.get("version")
    if isinstance(found, int) and not isinstance(found, bool) and found > TRACE_FORMAT:
        from apdu.version import version  # noqa: PLC0415 - importlib.metadata, only here

        raise item.fail(
            f"trace format {_shown(found)}; this mynacard ({version()}) reads format "
            f"{TRACE_FORMAT}: upgrade mynacard to read this trace"
        )
    if found != TRACE_FORMAT:
        raise item.fail(
            f"trace format {_shown(found)}; this mynacard reads format {TRACE_FORMAT}: "
            "record the trace again"
        )
    if item.data.get("persona") is not None:
        text = item.text("persona")
        if not text or "\0" in text or len(text) > MAX_PERSONA_PATH:
            raise item.fail(f"'persona' is not a file path: {_shown(text)}")


class TraceWriter:
    """Writes the one trace format (JSON Lines, masked and decoded); thread-safe.

    A header line, then one line per :class:`~apdu.TraceRecord`: an exchange (numbered, with
    the decoded meaning, per reader) or a card event. Use it as any ``on_exchange`` observer.
    ``append`` adds to an existing file (a new header starts the new recording).
    """

    def __init__(
        self, path: str | Path, *, persona: str | Path | None = None, append: bool = False
    ) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._seq = 0
        header: dict[str, Any] = {"type": "header", "version": TRACE_FORMAT, "t": time.time()}
        if persona is not None:
            header["persona"] = str(Path(persona).resolve())
        self._decoders = ReaderDecoders(_persona_vocabulary(header.get("persona")))
        self._write(header)

    def _write(self, data: dict[str, Any]) -> None:
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._file.flush()

    def __call__(self, record: TraceRecord) -> None:
        """Record one exchange or card event."""
        with self._lock:
            if self._file.closed:
                return
            meaning = self._decoders.meaning(record)
            if record.event:
                self._write(record.to_json())
                return
            self._seq += 1
            line = record.to_json()
            line["meaning"] = meaning
            self._write({"seq": self._seq, **line})

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def format_trace(trace: Trace) -> Iterator[str]:
    """Human-readable lines: time offset, direction, hex, meaning."""
    start = trace.items[0].t if trace.items else 0.0
    if trace.header.get("persona"):
        yield f"# persona {trace.header['persona']}"
    for item in trace.items:
        offset = f"{item.t - start:9.3f}s"
        if isinstance(item, Event):
            yield f"{offset}  -- {item.event}"
            continue
        took = f" ({item.duration_ms:.1f} ms)" if item.duration_ms is not None else ""
        yield f"{offset}  >> {item.command}  # {item.meaning}"
        status = describe(int(item.sw, 16)) if len(item.sw) == 4 else "(no status word)"
        yield f"{'':10}  << {item.response}  # {status}{took}"
