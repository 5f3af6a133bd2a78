"""Everything a personalized card holds: ATR, applications, access rules, policy, metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from apdu.errors import MynacardError
from apdu.vocabulary import MF_PROTECTED_EF
from card_emulator.access import AccessRules, Condition
from card_emulator.objects import Application
from card_emulator.policy import CardPolicy


class ContentError(MynacardError, ValueError):
    """A card whose content contradicts its own access rules."""


@dataclass(slots=True)
class CardContent:
    """The card image in memory (what a SQLite image file stores)."""

    atr: bytes
    applications: list[Application]
    rules: dict[str, AccessRules]
    policy: CardPolicy = field(default_factory=CardPolicy)
    meta: dict[str, str] = field(default_factory=dict)
    data_objects: dict[int, bytes] = field(default_factory=dict)
    """Card-level GET DATA objects (tag → value), answered at the issuer security domain."""
    mf_files: frozenset[int] = frozenset({MF_PROTECTED_EF})
    """Internal EFs under the MF: selectable with no AP selected, never readable (``6981``)."""

    def application(self, name: str) -> Application:
        """The application called ``name`` (``jpki``, ``text``, ``kenmen``, ``common``...)."""
        for app in self.applications:
            if app.name == name:
                return app
        raise KeyError(f"this card has no application {name!r}")

    def check(self) -> None:
        """Refuse content where an EF or key has no access rule, or a rule names a missing IEF."""
        for app in self.applications:
            rules = self.rules.get(app.name)
            if rules is None:
                raise ContentError(f"no access rules for application {app.name!r}")
            for fid in [*app.files, *app.records]:
                if fid not in rules.read:
                    raise ContentError(f"{app.name} EF {fid:04X} has no read rule")
            for fid in app.keys:
                if fid not in rules.use:
                    raise ContentError(f"{app.name} key {fid:04X} has no use rule")
            if app.session_key is not None and rules.session_key is None:
                raise ContentError(f"{app.name} has a key-delivery key but no session_key rule")
            named: list[tuple[str, Condition]] = [
                (f"{fid:04X}", cond) for fid, cond in [*rules.read.items(), *rules.use.items()]
            ]
            if rules.session_key is not None:
                named.append(("SET SESSION KEY", rules.session_key))
            for what, cond in named:
                missing = [c for c in cond.credentials if c not in app.credentials]
                if missing:
                    names = ", ".join(f"{c:04X}" for c in missing)
                    raise ContentError(f"{app.name} rule for {what} names missing IEF {names}")

    def fresh_copy(self) -> CardContent:
        """A copy whose credentials (values and counters) are independent of this one."""
        apps = [
            replace(
                app,
                credentials={fid: replace(c) for fid, c in app.credentials.items()},
                records={fid: list(r) for fid, r in app.records.items()},
            )
            for app in self.applications
        ]
        return CardContent(
            self.atr,
            apps,
            dict(self.rules),
            self.policy,
            dict(self.meta),
            dict(self.data_objects),
            self.mf_files,
        )
