"""Decode APDU traces into the names card-facts uses, and record / read / replay them.

A trace is JSON Lines (format 2, :data:`TRACE_FORMAT`): a header
``{"type": "header", "version": 2, "t": ..., "persona": ...}`` (the persona the card was made
from, when known), then one line per :class:`~apdu.TraceRecord`, an exchange::

    {"seq": 3, "type": "exchange", "t": 1.7e9, "reader": "Virtual PCD 00 00",
     "command": "00 20 00 80 04 XX XX XX XX", "response": "90 00", "sw": "9000",
     "duration_ms": 0.04, "meaning": "VERIFY 利用者証明用暗証番号 (JPKI 0018)"}

or a card event ``{"type": "event", "t": ..., "event": "reset", "reader": ...}`` (``insert``,
``remove``, ``power_on``, ``power_off``, ``reset``). ``reader`` is absent in process. The data of
every command not known to be public is masked. :class:`Decoder` keeps state across records
(selected AP, current EF), like the card does, so ``READ BINARY`` names the EF the preceding
SELECT made current.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from apdu import CodecError, CommandApdu, TraceRecord, describe
from apdu.errors import MynacardError
from apdu.trace import EVENTS
from apdu.vocabulary import APPLICATION_BY_AID, APPLICATIONS, ISSUER_SECURITY_DOMAIN_AID

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

    def reset(self) -> None:
        """Power event: back to the power-on state."""
        self.application = None
        self.current = None

    def _name(self, fid: int) -> str | None:
        app = APPLICATIONS.get(self.application or "")
        return app.files.get(fid) if app else None

    def _ef(self, fid: int) -> str:
        name = self._name(fid)
        return f"{fid:04X} {name}" if name else f"{fid:04X}"

    def _credential(self, fid: int) -> str:
        name = self._name(fid)
        app = APPLICATIONS.get(self.application or "")
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
            app = APPLICATION_BY_AID.get(cmd.data)
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


def read_trace(path: str | Path) -> Trace:
    """Parse a trace written by :class:`TraceWriter` (``mynacard serve --trace``, the plugin's
    ``--mynacard-trace``, the conformance runner).

    Every line is checked (a JSON object of a known type with the fields of that type, of the
    right types); :class:`TraceError` names the file, line and field of the first bad one.
    """
    trace = Trace()
    decoders: dict[str, Decoder] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        item = _parse_line(line, f"{path}:{number}")
        kind = item.data.get("type")
        reader = item.text("reader", "")
        decoder = decoders.setdefault(reader, Decoder())
        if kind == "header":
            _check_header(item)
            trace.header = trace.header or item.data
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
    version = item.data.get("version")
    if version != TRACE_FORMAT:
        raise item.fail(
            f"trace format {_shown(version)}; this mynacard reads format {TRACE_FORMAT}: "
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
        self._decoders: dict[str, Decoder] = {}
        header: dict[str, Any] = {"type": "header", "version": TRACE_FORMAT, "t": time.time()}
        if persona is not None:
            header["persona"] = str(Path(persona).resolve())
        self._write(header)

    def _write(self, data: dict[str, Any]) -> None:
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._file.flush()

    def __call__(self, record: TraceRecord) -> None:
        """Record one exchange or card event."""
        with self._lock:
            if self._file.closed:
                return
            decoder = self._decoders.setdefault(record.reader, Decoder())
            if record.event:
                decoder.reset()
                self._write(record.to_json())
                return
            self._seq += 1
            line = record.to_json()
            line["meaning"] = decoder.command(record.command, record.response)
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


# -- replay ---------------------------------------------------------------------------------


class SecretSource(Protocol):
    """Where replay gets the value of a masked credential: a card made from a persona."""

    def credential(self, application: str, fid: int) -> Any: ...


def _wrong(value: bytes) -> bytes:
    """A value of the same length and alphabet that differs from ``value`` at every position."""
    out = bytearray()
    for byte in value:
        if 0x30 <= byte <= 0x39:
            out.append(0x30 + (byte - 0x30 + 1) % 10)
        elif 0x41 <= byte <= 0x5A:
            out.append(0x41 + (byte - 0x41 + 1) % 26)
        else:
            out.append(byte ^ 0x01)
    return bytes(out)


def unmask(
    exchange: Exchange, decoder: Decoder, secrets: SecretSource | None
) -> tuple[bytes, str | None]:
    """The command to send for ``exchange`` (masked data filled in) and a problem, if any.

    A masked VERIFY / CHANGE gets the credential value of ``secrets`` when the recorded answer
    was ``9000`` and a value that is wrong at every position otherwise, so right and wrong
    attempts replay as right and wrong attempts.
    """
    raw = exchange.command_bytes
    if raw is not None:
        return raw, None
    template = bytes.fromhex(exchange.command.replace("XX", "00").replace(" ", ""))
    try:
        cmd = CommandApdu.parse(template)
    except CodecError as exc:
        return template, f"masked command cannot be parsed ({exc})"
    fid = cmd.p2 & 0x1F or decoder.current
    app = decoder.application
    if secrets is None or app is None or fid is None:
        return template, "masked secret and no persona to take it from"
    try:
        value: bytes = secrets.credential(app, fid).value
    except (KeyError, ValueError):
        return template, f"no credential {fid:04X} in {app}"
    if exchange.sw != "9000":
        value = _wrong(value) if len(value) == len(cmd.data) else b"0" * len(cmd.data)
    rebuilt = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, value, cmd.le, cmd.extended)
    return rebuilt.to_bytes(), None


@dataclass(frozen=True, slots=True)
class Difference:
    """One exchange whose replayed answer differs from the recorded one."""

    seq: int
    meaning: str
    expected: str
    actual: str
    problem: str | None = None

    def text(self) -> str:
        if self.problem:
            return f"#{self.seq} {self.meaning}: {self.problem}"
        return f"#{self.seq} {self.meaning}: recorded {self.expected}, replayed {self.actual}"


class ReplayCard(Protocol):
    """What replay drives (a Card, a FaultyCard, anything with the card API)."""

    def transmit(self, command: bytes) -> bytes: ...

    def reset(self) -> None: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...


def replay(
    trace: Trace,
    card: ReplayCard,
    *,
    secrets: SecretSource | None = None,
    compare_data: bool = True,
) -> list[Difference]:
    """Send every command of ``trace`` to ``card``; the exchanges whose answer differs.

    ``compare_data=False`` compares status words only (signatures, challenges and other random
    data always differ between cards).
    """
    differences: list[Difference] = []
    decoder = Decoder()
    for item in trace.items:
        if isinstance(item, Event):
            decoder.reset()
            getattr(card, _REPLAYED_AS.get(item.event, item.event), card.reset)()
            continue
        command, problem = unmask(item, decoder, secrets)
        if problem is not None:
            differences.append(Difference(item.seq, item.meaning, "", "", problem))
        answer = card.transmit(command)
        decoder.command(command, answer)
        actual = answer.hex(" ").upper()
        expected = item.response
        same = actual == expected if compare_data else actual[-5:] == expected[-5:]
        if not same:
            differences.append(Difference(item.seq, item.meaning, _short(expected), _short(actual)))
    return differences


_REPLAYED_AS = {"insert": "power_on", "remove": "power_off"}
"""Card events replay turns into power events (a replayed card stays in its reader)."""


def _short(hex_text: str) -> str:
    """``<n bytes> SW`` for long responses, the hex otherwise."""
    parts = hex_text.split()
    if len(parts) <= 8:
        return hex_text or "(nothing)"
    return f"{len(parts) - 2} bytes … {' '.join(parts[-2:])}"
