"""A profile's choices as a persona fragment: ``[card] atr``, ``[policy]`` fields, ``[counters]``.

Each :class:`~card_emulator.policy.CardPolicy` field this module can read off a profile is set
when the observation differs from the default; the fragment is then checked by construction — a
demo card with it is fingerprinted and compared with the profile — and every behaviour still
different is listed as one the fragment cannot express (EF sizes, certificate profiles, FCI
content beyond the minimal template, status words of one AP only, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apdu.vocabulary import APPLICATIONS, CREDENTIALS, KNOWN_ATRS, credential_name
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.card import throwaway_pki
from card_emulator.personalize import personalized_copy
from card_emulator.policy import CardPolicy
from harness.fingerprint import profile as profile_module
from harness.fingerprint.diff import Difference, compare
from harness.fingerprint.plan import UNKNOWN_CLA, UNKNOWN_INS, build_plan
from harness.fingerprint.runner import Runner
from harness.personas import demo_persona_path, merge, persona_data, to_toml
from readers.host_side.transport import InProcessTransport

__all__ = ["demo_card", "derive", "fragment", "residual"]

_ERROR_SW = range(0x6100, 0x7000)


def _sw(profile: dict[str, Any], scope: str, key: str) -> int | None:
    values = profile["probes"].get(scope, {}).get(key)
    if not isinstance(values, dict) or not isinstance(values.get("sw"), str):
        return None
    try:
        return int(values["sw"], 16)
    except ValueError:
        return None


def _agreed(profile: dict[str, Any], keys: list[tuple[str, str]]) -> int | None:
    """The one status word every ``(scope, key)`` answered, or None when they disagree."""
    seen = {_sw(profile, scope, key) for scope, key in keys}
    seen.discard(None)
    return seen.pop() if len(seen) == 1 else None


def derive(profile: dict[str, Any]) -> dict[str, Any]:
    """Persona tables (``card``, ``policy``, ``counters``) for the profile's non-default choices."""
    scopes = ["mf", *APPLICATIONS]
    default = CardPolicy()
    policy: dict[str, Any] = {}

    def status(field: str, sw: int | None) -> None:
        if sw is not None and sw in _ERROR_SW and sw != getattr(default, field):
            policy[field] = f"{sw:04X}"

    status("unknown_aid_sw", _sw(profile, "mf", "select/aid/unknown"))
    status(
        "unknown_ins_sw",
        _agreed(profile, [(s, f"ins/{i:02X}") for s in scopes for i in UNKNOWN_INS]),
    )
    status(
        "unknown_cla_sw",
        _agreed(
            profile,
            [(s, f"cla/{c:02X}") for s in scopes for c in UNKNOWN_CLA if c in (0xA0, 0x20)]
            + [(s, "wrong_class/80 A4") for s in scopes],
        ),
    )
    status(
        "sm_select_refused_sw",
        _agreed(profile, [(s, f"sm/{c}/select") for s in scopes for c in ("08", "0C")]),
    )
    status(
        "sm_refused_sw",
        _agreed(profile, [(s, f"sm/{c}/read_binary") for s in scopes for c in ("08", "0C")]),
    )
    fci = [profile["probes"].get(s, {}).get("select/aid/p2=00") for s in APPLICATIONS]
    answered = [v for v in fci if isinstance(v, dict) and v.get("sw") == "9000"]
    if answered and all("fci" not in v for v in answered) and default.select_returns_fci:
        policy["select_returns_fci"] = False
    in_apps = _agreed(profile, [(s, "get_data/5F51/short") for s in APPLICATIONS])
    if in_apps is not None and (in_apps == 0x9000) != default.atr_object_in_applications:
        policy["atr_object_in_applications"] = in_apps == 0x9000
    prefix = _sw(profile, "mf", "select/aid/prefix")
    if prefix is not None and (prefix == 0x9000) != default.aid_prefix_selection:
        policy["aid_prefix_selection"] = prefix == 0x9000
    counters: dict[str, int] = {}
    for scope, probes in profile["probes"].items():
        for key, values in probes.items():
            parts = key.split("/")
            if parts[0] != "verify" or parts[-1] != "current" or scope not in APPLICATIONS:
                continue
            sw = values.get("sw", "") if isinstance(values, dict) else ""
            name = credential_name(scope, int(parts[1], 16))
            if name is None or not sw.startswith("63C"):
                continue
            tries = int(sw[3], 16)
            if tries != CREDENTIALS[name].max_tries:
                counters[name] = tries
    atr = bytes.fromhex(profile["atr"])
    atr_name = next((name for name, value in KNOWN_ATRS.items() if value == atr), atr.hex().upper())
    tables: dict[str, Any] = {"card": {"atr": atr_name}}
    if policy:
        tables["policy"] = policy
    if counters:
        tables["counters"] = counters
    return tables


def demo_card(tables: dict[str, Any]) -> Card:
    """A demo card with ``tables`` merged in, issued by a throwaway PKI (nothing written)."""
    demo = demo_persona_path()
    persona = persona_module.from_mapping(merge(persona_data(demo), tables), "adopted", demo.parent)
    return Card(personalized_copy(persona, throwaway_pki()))


def residual(
    profile: dict[str, Any],
    tables: dict[str, Any],
    *,
    make: Callable[[dict[str, Any]], Any] = demo_card,
) -> list[Difference]:
    """What a demo card with ``tables`` still answers differently from ``profile``."""
    card = make(tables)
    found = Runner(InProcessTransport(card), card.atr, reset=card.reset).run(build_plan())
    ours = profile_module.build(found, timing=False)
    return list(compare(ours, profile).differences)


def fragment(profile: dict[str, Any], *, source: str = "profile") -> str:
    """The TOML fragment, with what it cannot express as comments."""
    tables = derive(profile)
    left = residual(profile, tables)
    out = [f"# persona fragment adopted from {source} by mynacard fingerprint adopt", ""]
    out.append(to_toml(tables).strip())
    out.append("")
    if left:
        out.append(f"# {len(left)} observation(s) these fields cannot express")
        out.append("# (demo card with this fragment → the profile):")
        out += [f"#   {d.text()}" for d in left]
    else:
        out.append("# every observation is reproduced by a demo card with this fragment")
    return "\n".join(out) + "\n"
