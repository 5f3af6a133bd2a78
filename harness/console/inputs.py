"""The console's inputs, checked: personas, fault scenarios, certificate trees and reasons.

Each function returns the validated value or raises :class:`ControlError` naming the field;
none changes anything. A web form or JSON body gives plain values (text, numbers, tables), so
every function takes those as well as the project's own types.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from card_emulator import persona as persona_module
from card_emulator.persona import Persona, PersonaError
from harness.conformance.catalogue import KioskScenario, load_catalogue
from harness.console.errors import ControlError
from harness.faults import Scenario, ScenarioError
from jpki.names import Tree
from jpki.revocation import RevocationError, RevocationReason, parse_reason

TREES = {"auth": (Tree.AUTH,), "sign": (Tree.SIGN,), "both": (Tree.AUTH, Tree.SIGN)}


def persona(value: object) -> Persona:
    """A persona file (path) or persona tables, validated as ``mynacard persona-check`` does."""
    try:
        if isinstance(value, Mapping):
            return persona_module.from_mapping(value)
        if isinstance(value, str | Path):
            return persona_module.load(value)
    except PersonaError as exc:
        raise ControlError("persona", str(exc)) from None
    raise ControlError(
        "persona", f"expected a persona file or persona tables, got {type(value).__name__}"
    )


@functools.cache
def catalogue() -> dict[str, KioskScenario]:
    """The package's kiosk conformance catalogue, by scenario name."""
    return {entry.name: entry for entry in load_catalogue()}


def _catalogue_scenario(entry: KioskScenario) -> Scenario:
    if entry.persona:
        tables = ", ".join(sorted(entry.persona))
        raise ControlError(
            "scenario",
            f"kiosk scenario {entry.name!r} changes the persona ({tables}), not the card's "
            "faults: switch the reader to a persona with those tables (or revoke / hold the "
            "certificates) instead",
        )
    return replace(entry.card, name=entry.name)


def scenario(value: object) -> Scenario:
    """A fault scenario: a :class:`Scenario`, its tables, a TOML file (path), the name of a kiosk
    scenario of the conformance catalogue, or scenario TOML text."""
    try:
        if isinstance(value, Scenario):
            return value
        if isinstance(value, Mapping):
            return Scenario.from_mapping(value, "scenario")
        if isinstance(value, Path):
            return Scenario.load(value)
        if isinstance(value, str):
            return _named_or_toml(value)
    except ScenarioError as exc:
        raise ControlError("scenario", str(exc)) from None
    raise ControlError(
        "scenario",
        f"expected a scenario, its tables, a file or a kiosk scenario name, got "
        f"{type(value).__name__}",
    )


def _named_or_toml(text: str) -> Scenario:
    entry = catalogue().get(text.strip())
    if entry is not None:
        return _catalogue_scenario(entry)
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        known = ", ".join(catalogue())
        raise ControlError(
            "scenario",
            f"{text[:60]!r} is neither a kiosk scenario ({known}) nor scenario TOML ({exc})",
        ) from None
    if not data:
        raise ControlError("scenario", "empty: give a kiosk scenario name or scenario TOML")
    return Scenario.from_mapping(data, "scenario")


def trees(value: object) -> tuple[Tree, ...]:
    """``auth``, ``sign`` or ``both``."""
    if isinstance(value, Tree):
        return (value,)
    if isinstance(value, str) and value in TREES:
        return TREES[value]
    raise ControlError("tree", f"expected auth, sign or both, got {value!r}")


def reason(value: object) -> RevocationReason:
    """A revocation reason as ``mynacard pki revoke --reason`` takes it (not certificateHold)."""
    if isinstance(value, RevocationReason):
        if value is RevocationReason.CERTIFICATE_HOLD:
            raise ControlError("reason", "certificateHold (一時保留) is set with hold, not revoke")
        return value
    if not isinstance(value, str):
        raise ControlError("reason", f"expected a reason name, got {type(value).__name__}")
    try:
        return parse_reason(value)
    except RevocationError as exc:
        raise ControlError("reason", str(exc)) from None
