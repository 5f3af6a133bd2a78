"""The chip's volatile security state, and the one place that changes it.

Security state model (card-facts §4, DESIGN.md): verified credentials and the secure-messaging
session belong to the selected application and are forgotten on any SELECT by AID (also of the
same AP, by default: ``docs/fidelity.md`` gives the evidence), on reset and on power-off.
Selecting EFs inside the AP keeps them. Because only the selected AP's state can ever matter, one
set of verified IEFs is kept.

The attributes of :class:`SecurityState` are plain slots, read on every APDU; command handlers
see them through :class:`~card_emulator.command_context.SecurityView`, which makes them
read-only to the type checker, and change them only through the methods here.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from card_emulator.access import AccessRules
from card_emulator.objects import Application

NO_RULES = AccessRules()
"""The rules at the issuer security domain: nothing is readable or usable."""


class SmSession:
    """One secure-messaging session: the AES key and the counter the next SM command must use."""

    __slots__ = ("_broken", "_counter", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 1
        self._broken = False

    def __repr__(self) -> str:
        return f"SmSession(counter={self._counter}, broken={self._broken})"  # never the key

    @property
    def key(self) -> bytes:
        """The session key (AES)."""
        return self._key

    @property
    def counter(self) -> int:
        """The message counter the next SM command must use."""
        return self._counter

    @property
    def broken(self) -> bool:
        """True after an SM error: every later SM command is refused."""
        return self._broken

    def advance(self) -> int:
        """Spend the current counter on an accepted command; returns the counter it used."""
        counter = self._counter
        self._counter = counter + 1
        return counter

    def destroy(self) -> None:
        """A bad object or counter: the session is over until an AP is selected again."""
        self._broken = True


class SecurityState:
    """Selected application, its rules, current EF, verified IEFs and the SM session."""

    __slots__ = (
        "_reselect_clears",
        "_rules_by_app",
        "_verified",
        "ap_was_selected",
        "app",
        "ef",
        "rules",
        "sm",
        "verified",
    )

    def __init__(
        self, rules_by_app: Mapping[str, AccessRules], *, reselect_clears_state: bool
    ) -> None:
        """``rules_by_app``: each application's access rules, by application name."""
        self._rules_by_app = rules_by_app
        self._reselect_clears = reselect_clears_state
        self._verified: set[int] = set()
        self.verified: Set[int] = self._verified
        """The verified IEFs of the selected AP (the same set object for the state's life)."""
        self.app: Application | None = None
        """The selected application; ``None`` at the issuer security domain."""
        self.rules: AccessRules = NO_RULES
        """The access rules of :attr:`app`."""
        self.ef: int | None = None
        """The current EF (FID or SFI) inside :attr:`app` or the MF."""
        self.sm: SmSession | None = None
        """The secure-messaging session of :attr:`app`, if a session key was delivered."""
        self.ap_was_selected = False
        """An AP was selected since the last reset (the MF-select quirk, card-facts §1.3)."""

    def reset(self) -> None:
        """Power-on / reset / power-off: back to the issuer security domain, nothing verified."""
        self.app = None
        self.rules = NO_RULES
        self.ef = None
        self._verified.clear()
        self.sm = None
        self.ap_was_selected = False

    def select_application(self, app: Application) -> None:
        """Make ``app`` current and clear the security state (and any SM session)."""
        if app is not self.app or self._reselect_clears:
            self._verified.clear()
            self.sm = None
        self.app = app
        self.rules = self._rules_by_app[app.name]
        self.ef = None
        self.ap_was_selected = True

    def select_file(self, fid: int) -> None:
        """Make EF ``fid`` current (verified credentials are kept)."""
        self.ef = fid

    def mark_verified(self, fid: int) -> None:
        """IEF ``fid`` of the selected AP was verified."""
        self._verified.add(fid)

    def forget(self, fid: int) -> None:
        """IEF ``fid`` is no longer verified (a failed VERIFY)."""
        self._verified.discard(fid)

    def open_session(self, key: bytes) -> None:
        """A session key was delivered: a fresh SM session replaces any earlier one."""
        self.sm = SmSession(key)
