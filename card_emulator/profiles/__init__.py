"""Card generations as data: one TOML profile per card generation (or variant).

A profile names what a card of its generation holds — applications, EFs and the content source
of each, keys with their algorithm, credentials with their format, try limit and value, access
rules, ATR, token, certificate validity and policy defaults — and personalization builds any
profile from that data alone (:mod:`card_emulator.declared`). The chip runtime never reads a
profile: it runs whatever :class:`~card_emulator.content.CardContent` personalization made.

``current.toml`` is today's card: five applications whose EFs come from the content sources
that wrap :mod:`card_emulator.apps`, its rules ``access_rules.toml`` with the smartphone token as
an overlay. ``next-generation.toml`` is the provisional next-generation card (ECDSA P-384, two
applications, two PINs) with its rules in the profile. A persona names its profile
(``profile = "current"`` by default), by name or as the path of a profile file of its own (see
:func:`load_profile`).

Schema of a declared profile (every byte-level value is overridable by editing the data)::

    [profile]
    name = "next-generation"
    label = "…"
    atr = "3B…"                 # ATR name or hex (apdu.vocabulary.resolve_atr)
    token = "JPKIAPICCTOKEN2"   # default token (EF 0006); the persona's card.token wins
    key_algorithm = "ecdsa-p384"
    certificate_birthdays = 10  # user certificates end on the n-th birthday after issuance
    [profile.policy]            # CardPolicy defaults for cards of this profile
    ecdsa_signature_encoding = "raw"

    [[applications]]
    name = "auth"; aid = "D392…"; label = "…"
    [applications.files]        # EF → content source (a name, or a table with "source")
    "000A" = { source = "certificate", tree = "auth" }
    [applications.keys."0017"]  # key → label, algorithm, use, tree, purpose (KeySource name)
    [applications.credentials."0018"]   # IEF → label, format, tries, value, change, remaining
    [applications.rules.read]   # as in access_rules.toml

Or, for a card whose rules live in a rules file: ``rules = "access_rules.toml"`` and
``overlays = { <token> = [<overlay>, …] }`` in ``[profile]`` (persona ``[access]`` overrides
apply then); ``data_objects = { source = "issuer", card_key = "<app>:<FID>" }`` adds the issuer
GET DATA objects.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from apdu.vocabulary import CREDENTIALS
from card_emulator.access import AccessRules, load_rules

DEFAULT_PROFILE = "current"
BUILTIN = ("current", "next-generation")


class ProfileError(MynacardError, ValueError):
    """A card profile that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class CardProfile:
    """A parsed profile: the ``[profile]`` table and the declared applications."""

    name: str
    label: str
    settings: Mapping[str, Any]
    applications: tuple[Mapping[str, Any], ...] = ()
    source: str = field(default="", compare=False)

    @property
    def rules_file(self) -> str | None:
        """``access_rules.toml`` (today's card: rules with overlays and persona overrides), or
        None when the profile's applications carry their own ``rules`` tables."""
        value = self.settings.get("rules")
        return None if value is None else str(value)

    def setting(self, key: str, default: Any) -> Any:
        """A field of ``[profile]``, or ``default``."""
        return self.settings.get(key, default)

    def rules(self, overlays: list[str] | None = None) -> dict[str, AccessRules]:
        """The declared access rules by application (``access_rules.toml`` for today's card,
        with ``overlays``; a declared profile's own ``rules`` tables otherwise)."""
        if self.rules_file is not None:
            return load_rules(overlays or [])
        return {
            app["name"]: AccessRules.from_data(
                app.get("rules", {}), f"{self.source}: {app['name']}"
            )
            for app in self.applications
        }

    def counter_credentials(self) -> dict[str, tuple[str, int, int]]:
        """Persona ``[counters]`` names this profile's credentials answer to, as
        ``name → (application, FID, try limit)``: today's names (``jpki_auth``, ``text_pin``…,
        :data:`apdu.vocabulary.CREDENTIALS`) on the ``current`` profile; on any other, the
        credential whose ``value`` is the persona PIN of that name (``value =
        "pins.jpki_auth"`` answers to ``jpki_auth``)."""
        if self.name == DEFAULT_PROFILE:
            return {
                name: (where.application, where.fid, where.max_tries)
                for name, where in CREDENTIALS.items()
            }
        out: dict[str, tuple[str, int, int]] = {}
        for app in self.applications:
            for fid, spec in dict(app.get("credentials", {})).items():
                value = str(spec.get("value", "")) if isinstance(spec, Mapping) else ""
                if value.startswith("pins."):
                    limit = int(spec.get("tries", 3))
                    out[value.removeprefix("pins.")] = (str(app["name"]), int(fid, 16), limit)
        return out

    def aids(self) -> dict[str, bytes]:
        """The declared applications' AIDs by name."""
        return {app["name"]: bytes.fromhex(app["aid"]) for app in self.applications}


_PROFILE_KEYS = frozenset(
    {
        "name",
        "label",
        "data_objects",
        "atr",
        "token",
        "key_algorithm",
        "certificate_birthdays",
        "policy",
        "rules",
        "overlays",
    }
)
_APP_KEYS = frozenset({"name", "aid", "label", "files", "records", "keys", "credentials", "rules"})


@functools.lru_cache(maxsize=32)
def parse_profile(text: str, source: str) -> CardProfile:
    """Validate the TOML of a profile; errors name ``source`` and the field.

    Cached by ``(text, source)``: a persona check and its personalization, and every card of a
    bulk issuance, use one parse (≈1.5 ms each); a :class:`CardProfile` is read-only, and an
    edited profile file is new text.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc})") from None
    unknown = set(data) - {"profile", "applications"}
    if unknown:
        raise ProfileError(f"{source}: unknown table(s) {sorted(unknown)}")
    settings = data.get("profile")
    if not isinstance(settings, dict) or not isinstance(settings.get("name"), str):
        raise ProfileError(f"{source}: [profile] with a name is required")
    extra = set(settings) - _PROFILE_KEYS
    if extra:
        raise ProfileError(f"{source}: profile: unknown field(s) {sorted(extra)}")
    apps = data.get("applications", [])
    if not isinstance(apps, list) or not apps:
        raise ProfileError(f"{source}: declare at least one [[applications]]")
    names: set[str] = set()
    for index, app in enumerate(apps):
        where = f"{source}: applications[{index}]"
        if not isinstance(app, dict):
            raise ProfileError(f"{where}: expected a table")
        extra = set(app) - _APP_KEYS
        if extra:
            raise ProfileError(f"{where}: unknown field(s) {sorted(extra)}")
        for key in ("name", "aid", "label"):
            if not isinstance(app.get(key), str):
                raise ProfileError(f"{where}.{key}: expected a string")
        if app["name"] in names:
            raise ProfileError(f"{where}.name: {app['name']!r} repeats")
        names.add(app["name"])
        try:
            bytes.fromhex(app["aid"])
        except ValueError:
            raise ProfileError(f"{where}.aid: {app['aid']!r} is not hex") from None
    return CardProfile(
        name=settings["name"],
        label=str(settings.get("label", settings["name"])),
        settings=settings,
        applications=tuple(apps),
        source=source,
    )


@functools.cache
def _builtin_profile(name: str) -> CardProfile:
    """A built-in profile, read and parsed once per process (the package's files do not change)."""
    resource = resources.files(__package__).joinpath(f"{name}.toml")
    return parse_profile(resource.read_text(encoding="utf-8"), f"profile {name}")


def resolve_profile(name_or_path: str, base: Path) -> str:
    """``name_or_path`` checked by loading it (:class:`ProfileError` if it cannot be): a built-in
    profile as its name, a profile file as its absolute path (relative to ``base``), so that it
    names the same profile from any directory."""
    load_profile(name_or_path, base)
    return name_or_path if name_or_path in BUILTIN else str((base / name_or_path).resolve())


def load_profile(name_or_path: str, base: Path | None = None) -> CardProfile:
    """A built-in profile by name, else the profile file at ``name_or_path`` (relative to
    ``base``, a persona's directory)."""
    if name_or_path in BUILTIN:
        return _builtin_profile(name_or_path)
    path = Path(name_or_path)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.suffix != ".toml":
        known = ", ".join(BUILTIN)
        raise ProfileError(f"{name_or_path!r} is neither a built-in profile ({known}) nor a .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read profile ({exc})") from None
    return parse_profile(text, str(path))
