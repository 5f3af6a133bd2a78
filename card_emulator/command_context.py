"""What a command handler sees: the card's content and policy, the security state, storage.

A handler is ``handler(ctx, cmd) -> bytes``. It reads the card through :class:`CommandContext`
and changes the volatile state only through :class:`SecurityView`'s methods; it never sees the
chip. The chip builds one context when it is made and passes it to every handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Set
from typing import Final, Protocol

from apdu import CommandApdu
from card_emulator.access import AccessRules
from card_emulator.content import CardContent
from card_emulator.image import CardStore, StorageError
from card_emulator.objects import Application, Credential
from card_emulator.security_state import SmSession

log = logging.getLogger("card_emulator.chip")  # storage failures stay in the chip's log


class SecurityView(Protocol):
    """The security state as handlers see it: read-only attributes, changes through methods.

    :class:`~card_emulator.security_state.SecurityState` is the one implementation.
    """

    @property
    def app(self) -> Application | None:
        """The selected application; ``None`` at the issuer security domain."""

    @property
    def rules(self) -> AccessRules:
        """The access rules of :attr:`app`."""

    @property
    def ef(self) -> int | None:
        """The current EF."""

    @property
    def verified(self) -> Set[int]:
        """The verified IEFs of the selected AP."""

    @property
    def sm(self) -> SmSession | None:
        """The secure-messaging session, if any."""

    @property
    def ap_was_selected(self) -> bool:
        """An AP was selected since the last reset."""

    def reset(self) -> None:
        """Back to the issuer security domain, nothing verified."""

    def select_application(self, app: Application) -> None:
        """Make ``app`` current and clear the security state."""

    def select_file(self, fid: int) -> None:
        """Make EF ``fid`` current."""

    def mark_verified(self, fid: int) -> None:
        """IEF ``fid`` was verified."""

    def forget(self, fid: int) -> None:
        """IEF ``fid`` is no longer verified."""

    def open_session(self, key: bytes) -> None:
        """Start a secure-messaging session with ``key``."""


class CommandContext:
    """The handlers' window on one card; built once per chip."""

    __slots__ = (
        "_storage_failed",
        "_store",
        "applications",
        "content",
        "policy",
        "random_bytes",
        "run",
        "state",
    )

    def __init__(
        self,
        content: CardContent,
        store: CardStore,
        state: SecurityView,
        *,
        random_bytes: Callable[[int], bytes],
        run: Callable[[CommandApdu], bytes],
    ) -> None:
        """``run`` dispatches a plain command (the inner command of an SM one)."""
        self.content: Final = content
        self.policy: Final = content.policy
        self.applications: Final[Mapping[bytes, Application]] = {
            app.aid: app for app in content.applications
        }
        """The card's applications by AID."""
        self.random_bytes: Final = random_bytes
        self.state: Final = state
        self.run: Final = run
        self._store = store
        self._storage_failed = False

    @property
    def storage_failed(self) -> bool:
        """Set by a failed credential write; survives resets, cleared only by reopening."""
        return self._storage_failed

    def persist(self, credential: Credential) -> bool:
        """Make a credential change durable before the response leaves the card.

        ``False`` when the store failed: the card then refuses credential commands until it is
        reopened (:attr:`storage_failed`).
        """
        app = self.state.app
        assert app is not None
        try:
            self._store.save_credential(app.name, credential)
        except StorageError as exc:
            log.error("card storage failed, credential commands refused until reopened: %s", exc)
            self._storage_failed = True
            return False
        return True


Handler = Callable[[CommandContext, CommandApdu], bytes]
"""A command handler: the context and the parsed command in, the response APDU out."""
