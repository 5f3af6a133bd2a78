"""Replay: send a recorded trace's commands to a card and report the answers that differ;
masked credentials are filled in from a card made from the persona."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from apdu import CodecError, CommandApdu
from harness.traces.decoder import Decoder
from harness.traces.trace_file import Event, Exchange, Trace


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
