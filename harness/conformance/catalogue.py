"""The kiosk conformance catalogue (``kiosk_scenarios.toml``): scenarios a kiosk must survive.

A scenario is data: the PINs the customer types, persona overrides (certificate states, token),
a fault scenario for the card (:class:`harness.faults.Scenario`: counters, ATR, latency,
removal) and the outcome the kiosk must report, checked by one of the outcome rules of
:mod:`harness.conformance.rules`.

The relying-party migration matrix (``mynacard conformance run --matrix``) runs every scenario
against every card **generation** the catalogue declares (``[[generation]]``: today's card, the
next-generation card, a smartphone token — persona overrides and card settings of their own).
A scenario that cannot mean the same on a generation says so in ``[scenario.not_for]``
(generation → reason, shown as "n/a" with the reason in the report); ``[scenario.on.<generation>]``
holds persona overrides that make the scenario's story true on that generation (an expired
certificate of a CA generation that began in 2026, say).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from apdu.vocabulary import resolve_atr
from harness.conformance.rules import OUTCOME_RULES, Expectation
from harness.faults import Scenario, ScenarioError
from harness.personas import merge

OUTCOMES = ("accepted", "refused")
REASONS = (
    "wrong-pin",
    "pin-locked",
    "certificate-expired",
    "certificate-revoked",
    "certificate-on-hold",
    "certificate-unknown",
    "certificate-untrusted",
    "pki-unreachable",
    "card-removed",
    "card-error",
    "unsupported-card",
)


@dataclass(frozen=True, slots=True)
class KioskScenario:
    """One entry of the catalogue."""

    name: str
    title: str
    story: str
    pins: tuple[str, ...]
    expect: Expectation
    outcome_rule: str
    persona: Mapping[str, Any] = field(default_factory=dict)
    card: Scenario = field(default_factory=Scenario)
    not_for: Mapping[str, str] = field(default_factory=dict)
    """Generations this scenario does not apply to, with the reason."""
    on: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Persona overrides by generation, merged over the generation's and the scenario's."""

    def persona_on(self, generation: Generation | None) -> dict[str, Any]:
        """The persona overrides of this scenario on ``generation`` (``None``: the base
        persona, as a run without ``--matrix`` uses)."""
        if generation is None:
            return dict(self.persona)
        merged = merge(generation.persona, self.persona)
        return merge(merged, self.on.get(generation.name, {}))

    def card_on(self, generation: Generation | None) -> Scenario:
        """The card's fault scenario on ``generation``: the scenario's faults, counters and ATR,
        the generation's ATR when the scenario sets none."""
        if generation is None or generation.atr is None or self.card.atr is not None:
            return self.card
        return replace(self.card, atr=generation.atr)


@dataclass(frozen=True, slots=True)
class Generation:
    """A column of the migration matrix: a card generation (or variant) as persona overrides
    (``profile``, token, dates…) and, optionally, the ATR its card answers with."""

    name: str
    title: str
    story: str
    persona: Mapping[str, Any] = field(default_factory=dict)
    atr: bytes | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The scenarios and the generations of a catalogue file."""

    scenarios: list[KioskScenario]
    generations: list[Generation]


def parse_expectation(text: str, where: str = "expect") -> Expectation:
    """``accepted`` or ``refused:<reason>``."""
    outcome, _, reason = text.partition(":")
    if outcome not in OUTCOMES:
        raise ScenarioError(f"{where}: {text!r} must start with one of {', '.join(OUTCOMES)}")
    if reason and reason not in REASONS:
        raise ScenarioError(f"{where}: unknown reason {reason!r} (one of {', '.join(REASONS)})")
    return Expectation(outcome, reason)


def _scenario(data: Mapping[str, Any], where: str) -> KioskScenario:
    data = dict(data)
    name = data.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}.name: required")
    where = f"scenario {name!r}"
    pins = data.pop("pins", [])
    if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
        raise ScenarioError(f"{where}: pins must be a list of strings")
    expect = parse_expectation(str(data.pop("expect", "")), f"{where}: expect")
    rule = str(data.pop("outcome_rule", ""))
    known = [r.id for r in OUTCOME_RULES]
    if rule not in known:
        raise ScenarioError(f"{where}: outcome_rule must be one of {', '.join(known)}")
    persona = data.pop("persona", {})
    if not isinstance(persona, dict):
        raise ScenarioError(f"{where}: persona must be a table")
    card = Scenario.from_mapping(data.pop("card", {}), f"{where}: card")
    title = str(data.pop("title", name))
    story = str(data.pop("story", ""))
    not_for = data.pop("not_for", {})
    if not isinstance(not_for, dict) or not all(
        isinstance(v, str) and v.strip() for v in not_for.values()
    ):
        raise ScenarioError(f'{where}: not_for must be a table of generation = "reason"')
    on = data.pop("on", {})
    if not isinstance(on, dict):
        raise ScenarioError(f"{where}: on must be a table of generations")
    variants: dict[str, Mapping[str, Any]] = {}
    for generation, table in on.items():
        if not isinstance(table, dict) or set(table) - {"persona"}:
            raise ScenarioError(f"{where}: on.{generation}: only a persona table goes here")
        if not isinstance(table.get("persona", {}), dict):
            raise ScenarioError(f"{where}: on.{generation}.persona must be a table")
        variants[generation] = dict(table.get("persona", {}))
    if data:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(sorted(data))}")
    return KioskScenario(
        name, title, story, tuple(pins), expect, rule, persona, card, dict(not_for), variants
    )


def _generation(data: Mapping[str, Any], where: str) -> Generation:
    data = dict(data)
    name = data.pop("name", None)
    if not isinstance(name, str) or not name or "/" in name:
        raise ScenarioError(f"{where}.name: required (no '/')")
    where = f"generation {name!r}"
    persona = data.pop("persona", {})
    if not isinstance(persona, dict):
        raise ScenarioError(f"{where}: persona must be a table")
    atr = None
    if "atr" in data:
        try:
            atr = resolve_atr(str(data.pop("atr")))
        except ValueError as exc:
            raise ScenarioError(f"{where}: atr: {exc}") from None
    title = str(data.pop("title", name))
    story = str(data.pop("story", ""))
    if data:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(sorted(data))}")
    return Generation(name, title, story, persona, atr)


def _unique(names: list[str], what: str, source: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScenarioError(f"{source}: duplicate {what} name(s) {', '.join(duplicates)}")


def parse_full_catalogue(text: str, source: str) -> Catalogue:
    """Scenarios and generations from catalogue TOML text; :class:`ScenarioError` names the
    bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML ({exc})") from None
    entries = data.get("scenario", [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{source}: no [[scenario]] entries")
    unknown = set(data) - {"scenario", "generation"}
    if unknown:
        raise ScenarioError(f"{source}: unknown table(s) {', '.join(sorted(unknown))}")
    scenarios = [_scenario(entry, f"{source}: scenario[{i}]") for i, entry in enumerate(entries)]
    _unique([s.name for s in scenarios], "scenario", source)
    raw_generations = data.get("generation", [])
    if not isinstance(raw_generations, list):
        raise ScenarioError(f"{source}: generation must be an array of tables ([[generation]])")
    generations = [
        _generation(entry, f"{source}: generation[{i}]") for i, entry in enumerate(raw_generations)
    ]
    _unique([g.name for g in generations], "generation", source)
    known = {g.name for g in generations}
    for scenario in scenarios:
        for table in ("not_for", "on"):
            stray = sorted(set(getattr(scenario, table)) - known)
            if stray:
                raise ScenarioError(
                    f"{source}: scenario {scenario.name!r}: {table}: unknown generation(s) "
                    f"{', '.join(stray)} (declared: {', '.join(sorted(known)) or 'none'})"
                )
    return Catalogue(scenarios, generations)


def parse_catalogue(text: str, source: str) -> list[KioskScenario]:
    """Scenarios from catalogue TOML text; :class:`ScenarioError` names the bad field."""
    return parse_full_catalogue(text, source).scenarios


def load_full_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue (scenarios and generations) at ``path``, default the package's
    ``kiosk_scenarios.toml``."""
    if path is None:
        text = (
            resources.files("harness.conformance")
            .joinpath("kiosk_scenarios.toml")
            .read_text("utf-8")
        )
        return parse_full_catalogue(text, "kiosk_scenarios.toml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_full_catalogue(text, str(path))


def load_catalogue(path: str | Path | None = None) -> list[KioskScenario]:
    """The scenarios of the catalogue at ``path``, default the package's
    ``kiosk_scenarios.toml``."""
    return load_full_catalogue(path).scenarios


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _select(items: Sequence[_N], names: Sequence[str], kind: str, where: str = "") -> list[_N]:
    """The ``items`` named (all when ``names`` is empty), in catalogue order; an unknown name is
    a :class:`ScenarioError` naming it and what is known."""
    if not names:
        return list(items)
    known = {item.name for item in items}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ScenarioError(
            f"{where}unknown {kind}(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known)) or 'none (the catalogue declares none)'}"
        )
    return [item for item in items if item.name in names]


def select_generations(generations: Sequence[Generation], names: Sequence[str]) -> list[Generation]:
    """The generations named (all when ``names`` is empty), in catalogue order."""
    return _select(generations, names, "generation", "--generation: ")


def select(scenarios: Sequence[KioskScenario], names: Sequence[str]) -> list[KioskScenario]:
    """The scenarios named (all when ``names`` is empty), in catalogue order."""
    return _select(scenarios, names, "scenario")
