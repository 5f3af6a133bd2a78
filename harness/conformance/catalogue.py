"""The kiosk conformance catalogue (``kiosk_scenarios.toml``): scenarios a kiosk must survive.

A scenario is data: the PINs the customer types, persona overrides (certificate states, token),
a fault scenario for the card (:class:`harness.faults.Scenario`: counters, ATR, latency,
removal) and the outcome the kiosk must report, checked by one of the outcome rules of
:mod:`harness.conformance.rules`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from harness.conformance.rules import OUTCOME_RULES, Expectation
from harness.faults import Scenario, ScenarioError

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
    if data:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(sorted(data))}")
    return KioskScenario(name, title, story, tuple(pins), expect, rule, persona, card)


def parse_catalogue(text: str, source: str) -> list[KioskScenario]:
    """Scenarios from catalogue TOML text; :class:`ScenarioError` names the bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML ({exc})") from None
    entries = data.get("scenario", [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{source}: no [[scenario]] entries")
    scenarios = [_scenario(entry, f"{source}: scenario[{i}]") for i, entry in enumerate(entries)]
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScenarioError(f"{source}: duplicate scenario name(s) {', '.join(duplicates)}")
    return scenarios


def load_catalogue(path: str | Path | None = None) -> list[KioskScenario]:
    """The catalogue at ``path``, default the package's ``kiosk_scenarios.toml``."""
    if path is None:
        text = (
            resources.files("harness.conformance")
            .joinpath("kiosk_scenarios.toml")
            .read_text("utf-8")
        )
        return parse_catalogue(text, "kiosk_scenarios.toml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_catalogue(text, str(path))


def select(scenarios: Sequence[KioskScenario], names: Sequence[str]) -> list[KioskScenario]:
    """The scenarios named (all when ``names`` is empty), in catalogue order."""
    if not names:
        return list(scenarios)
    known = {s.name for s in scenarios}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ScenarioError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [s for s in scenarios if s.name in names]
