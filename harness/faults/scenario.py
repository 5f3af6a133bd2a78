"""Fault injection between a transport and a card, declared per scenario as data.

:class:`FaultyCard` wraps any card object (``transmit`` / ``atr`` / power events) and has the
same API, so it works in-process and behind :class:`~readers.card_side.vpcd.VpcdClient`. A
scenario is a TOML file (or a dict)::

    seed = 7                      # reproducible jitter / probabilities
    atr = "jpki2"                 # any ATR of card-facts §1.2 by name (atrs.KNOWN_ATRS) or hex
    [counters]                    # persona counter presets: tries left (0 = blocked)
    jpki_auth = 1

    [[fault]]
    kind = "latency"              # sleep before answering
    match = "80 2A"               # CLA INS [P1 [P2]] hex, "??" = any byte; omitted = every APDU
    seconds = 1.5
    jitter = 0.1                  # ± uniform, seeded

    [[fault]]
    kind = "status"               # answer this SW instead (the card does not run the command)
    match = "00 20 00 80"
    nth = 2                       # the 2nd matching command (omitted: every matching one)
    sw = "6581"

    [[fault]]
    kind = "remove"               # the card leaves the reader
    nth = 3
    when = "after-answer"         # readers.card_side.vpcd.Removal: before-, after-processing

    [[fault]]
    kind = "glitch"               # power glitch: volatile state lost before the command runs
    match = "80 2A"

    [[fault]]
    kind = "truncate"             # only the first ``keep`` bytes of the response arrive
    match = "00 B0"
    keep = 10

    [[fault]]
    kind = "extended"             # 6700 for any extended-length APDU

Every fault also takes ``probability`` (0-1, default 1; drawn from the seeded generator for each
matching command when ``nth`` is not given).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from apdu.vocabulary import CREDENTIALS, resolve_atr
from readers.card_side.vpcd import Removal

KINDS = ("latency", "status", "remove", "glitch", "truncate", "extended")
SW_WRONG_LENGTH = b"\x67\x00"


class ScenarioError(MynacardError, ValueError):
    """A scenario that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """CLA INS P1 P2 with wildcards; matches the first ``len(values)`` header bytes."""

    values: tuple[int | None, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pattern:
        parts = text.replace(":", " ").split()
        if len(parts) == 1 and len(parts[0]) > 2:
            word = parts[0]
            parts = [word[i : i + 2] for i in range(0, len(word), 2)]
        if len(parts) > 4:
            raise ScenarioError(f"match {text!r}: at most CLA INS P1 P2 (4 bytes)")
        values: list[int | None] = []
        for part in parts:
            if part in ("??", "XX", "xx", "*"):
                values.append(None)
                continue
            try:
                value = int(part, 16)
            except ValueError:
                raise ScenarioError(f"match {text!r}: {part!r} is not a hex byte or ??") from None
            if not 0 <= value <= 0xFF or len(part) != 2:
                raise ScenarioError(f"match {text!r}: {part!r} is not one byte")
            values.append(value)
        return cls(tuple(values))

    def matches(self, command: bytes) -> bool:
        if len(command) < len(self.values):
            return False
        return all(v is None or command[i] == v for i, v in enumerate(self.values))

    def __str__(self) -> str:
        return " ".join("??" if v is None else f"{v:02X}" for v in self.values) or "any"


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of a scenario."""

    kind: str
    match: Pattern = Pattern()
    nth: int | None = None
    probability: float = 1.0
    seconds: float = 0.0
    jitter: float = 0.0
    sw: bytes = b""
    when: Removal = Removal.AFTER_ANSWER
    keep: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> Fault:
        data = dict(data)
        kind = data.pop("kind", None)
        if kind not in KINDS:
            raise ScenarioError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        args: dict[str, Any] = {"kind": kind}
        try:
            if "match" in data:
                args["match"] = Pattern.parse(str(data.pop("match")))
            if "nth" in data:
                nth = data.pop("nth")
                if isinstance(nth, bool) or not isinstance(nth, int) or nth < 1:
                    raise ScenarioError(f"nth must be an integer >= 1, got {nth!r}")
                args["nth"] = nth
            for key in ("probability", "seconds", "jitter"):
                if key in data:
                    value = data.pop(key)
                    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                        raise ScenarioError(f"{key} must be a number >= 0, got {value!r}")
                    args[key] = float(value)
            if args.get("probability", 1.0) > 1:
                raise ScenarioError("probability must be 0-1")
            if "sw" in data:
                sw = bytes.fromhex(str(data.pop("sw")).replace(" ", ""))
                if len(sw) != 2:
                    raise ScenarioError('sw must be two bytes, e.g. "6581"')
                args["sw"] = sw
            elif kind == "status":
                raise ScenarioError('sw: required for kind = "status"')
            if "when" in data:
                args["when"] = Removal(str(data.pop("when")))
            if "keep" in data:
                keep = data.pop("keep")
                if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
                    raise ScenarioError(f"keep must be an integer >= 0, got {keep!r}")
                args["keep"] = keep
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        except ValueError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        if data:
            raise ScenarioError(f"{where}: unknown field(s) {', '.join(sorted(data))}")
        return cls(**args)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Faults, an ATR and counter presets, reproducible with ``seed``."""

    faults: tuple[Fault, ...] = ()
    seed: int = 0
    atr: bytes | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    name: str = "scenario"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str = "scenario") -> Scenario:
        data = dict(data)
        seed = data.pop("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ScenarioError(f"{name}: seed must be an integer, got {seed!r}")
        atr = None
        if "atr" in data:
            try:
                atr = resolve_atr(str(data.pop("atr")))
            except ValueError as exc:
                raise ScenarioError(f"{name}: atr: {exc}") from None
        counters = dict(data.pop("counters", {}))
        for key, value in counters.items():
            if key not in CREDENTIALS:
                raise ScenarioError(f"{name}: counters.{key}: unknown credential")
            limit = CREDENTIALS[key].max_tries
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ScenarioError(f"{name}: counters.{key}: tries left must be 0-{limit}")
        raw_faults = data.pop("fault", [])
        if not isinstance(raw_faults, list):
            raise ScenarioError(f"{name}: fault must be an array of tables ([[fault]])")
        faults = tuple(
            Fault.from_mapping(item, f"{name}: fault[{i}]") for i, item in enumerate(raw_faults)
        )
        label = str(data.pop("name", name))
        if data:
            raise ScenarioError(f"{name}: unknown field(s) {', '.join(sorted(data))}")
        return cls(faults, seed, atr, counters, label)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ScenarioError(f"{path}: not valid TOML ({reason})") from None
        return cls.from_mapping(data, str(path))
