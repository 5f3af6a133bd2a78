"""Personas as data: the demo persona's tables, overrides merged in, validated as a mapping
(no TOML text on the way), written as TOML where a file is wanted, and fresh in-memory cards made
from them (for fixtures, fault scenarios and the conformance suite).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.persona import Persona
from card_emulator.profiles import ProfileError, resolve_profile
from harness.default_pki import personalize_shared, shared_card
from harness.demo_persona import (
    demo_persona_path as demo_persona_path,  # noqa: PLC0414 - re-exported from its old home
)
from harness.demo_persona import generation_persona_path

#: The demo persona's tables as Python values (DESIGN.md "Demo persona"), for tests and tools that
#: build personas as data; the packaged ``demo.toml`` (:func:`demo_persona_path`) holds the same.
DEMO: dict[str, Any] = {
    "label": "demo",
    "holder": {
        "name": "番号　花子",
        "address": "東京都千代田区霞が関二丁目１番２号",
        "birth_date": dt.date(1980, 2, 17),
        "sex": 2,
        "my_number": "314159265352",
        "resident_code": "12345678901",
    },
    "card": {
        "issued": dt.date(2025, 3, 3),
        "expiry": dt.date(2035, 2, 17),
        "security_code": "2285",
        "serial": "400000012719843",
        "token": "JPKIAPICCTOKEN2",
        "atr": "classic",
        "municipality": {"code": "13101", "prefecture": "Tokyo-to", "city": "Chiyoda-ku"},
    },
    "pins": {"jpki_auth": "1234", "jpki_sign": "ABC123", "text": "1234", "juki": "1234"},
    "certificates": {"style": "test", "issued": dt.date(2025, 3, 3)},
}

# -- persona TOML ---------------------------------------------------------------------------


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    """``key`` bare when TOML allows it, else quoted (``"B0 6986"`` in ``[policy.remap]``)."""
    return key if _BARE_KEY.fullmatch(key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | dt.date):
        return str(value) if not isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for persona / scenario data (scalars, dates, nested tables)."""
    scalars = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)
    ]
    out = "\n".join(scalars) + ("\n" if scalars else "")
    for key, value in data.items():
        if isinstance(value, Mapping):
            name = f"{prefix}{_toml_key(key)}"
            out += f"\n[{name}]\n" + to_toml(value, name + ".")
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, table by table."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def persona_data(base: str | Path | None = None) -> dict[str, Any]:
    """The tables of persona ``base`` (default: the demo persona)."""
    import tomllib  # noqa: PLC0415

    path = Path(base) if base is not None else demo_persona_path()
    return tomllib.loads(path.read_text(encoding="utf-8"))


def written_persona(path: str | Path, base: str | Path | None = None, **overrides: Any) -> Persona:
    """Persona ``base`` with ``overrides``, validated, then written to ``path`` as TOML.

    Its digest is the written file's, as :func:`card_emulator.persona.load` would give.
    """
    path = Path(path)
    data = merge(persona_data(base), overrides)
    persona = persona_module.from_mapping(data, str(path), path.parent)  # fail early, clearly
    raw = to_toml(data).encode("utf-8")
    path.write_bytes(raw)
    return persona_module.with_profile_digest(
        replace(persona, digest=hashlib.sha256(raw).hexdigest())
    )


def write_persona(path: str | Path, base: str | Path | None = None, **overrides: Any) -> Path:
    """Write persona ``base`` with ``overrides`` to ``path`` (validated) and return the path."""
    path = Path(path)
    written_persona(path, base, **overrides)
    return path


def card_from_persona(persona: str | Path | None = None, **overrides: Any) -> Card:
    """A fresh in-memory card from ``persona`` (default demo) with table ``overrides``."""
    if not overrides:
        return shared_card(Path(persona) if persona is not None else demo_persona_path())
    base = Path(persona).parent if persona is not None else Path.cwd()
    data = merge(persona_data(persona), overrides)
    return Card(personalize_shared(persona_module.from_mapping(data, str(persona or "demo"), base)))


# -- --profile: a card generation chosen on the command line ---------------------------------


def profile_value(profile: str, flag: str = "--profile", base: Path | None = None) -> str:
    """A ``--profile`` argument, checked: a built-in generation as its name, a profile file as
    its absolute path (relative to ``base``, default the working directory).
    :class:`~card_emulator.profiles.ProfileError` names ``flag``."""
    try:
        return resolve_profile(profile, base if base is not None else Path.cwd())
    except ProfileError as exc:
        raise ProfileError(f"{flag}: {exc}") from None


def profile_overrides(
    path: str | Path, profile: str | None, flag: str = "--profile"
) -> dict[str, Any]:
    """The persona overrides that make persona ``path`` a card of ``profile``: none when
    ``profile`` is ``None`` or the persona's own, else ``{"profile": …}``."""
    if profile is None:
        return {}
    value = profile_value(profile, flag)
    own = persona_module.load(path).profile
    return {} if own == value else {"profile": value}


def profile_persona(
    path: str | Path | None, profile: str | None, flag: str = "--profile"
) -> tuple[Path, Persona]:
    """Persona ``path`` (default: the demo persona of ``profile``, see
    :func:`~harness.demo_persona.generation_persona_path`) as a card of ``profile`` (``None``:
    its own). A persona naming another profile is re-validated in memory with ``profile``
    (errors name the persona and ``flag``); the file is not changed."""
    chosen = Path(path) if path is not None else generation_persona_path(profile)
    overrides = profile_overrides(chosen, profile, flag)
    if not overrides:
        return chosen, persona_module.load(chosen)
    data = merge(persona_data(chosen), overrides)
    source = f"{chosen} with {flag} {profile}"
    return chosen, persona_module.from_mapping(data, source, chosen.parent)
