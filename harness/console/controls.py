"""What the console's web layer calls: the controller's reading and acting surface.

:class:`~harness.console.CardController` has it in the card's process;
:class:`~harness.console.remote.RemoteController` has it in a console process of its own, where
each call crosses the link (:mod:`harness.console.link`) to the controller.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.console.events import Subscription
from harness.console.state import CredentialState, ReaderState

ReaderRef = str | int
CredentialRef = str | tuple[str, int]
"""A credential: its ``CREDENTIALS`` name, or ``(application, fid)``."""


class Controls(Protocol):
    """The surface of :class:`~harness.console.CardController` the web app uses."""

    @property
    def readers(self) -> list[str]: ...

    @property
    def has_pki(self) -> bool: ...

    def snapshot(self) -> list[ReaderState]: ...

    def state(self, reader: ReaderRef) -> ReaderState: ...

    def subscribe(self, maxsize: int = ...) -> Subscription: ...

    def trace(self, reader: ReaderRef) -> str: ...

    def insert(self, reader: ReaderRef) -> ReaderState: ...

    def remove(self, reader: ReaderRef) -> ReaderState: ...

    def glitch(self, reader: ReaderRef) -> ReaderState: ...

    def reset(self, reader: ReaderRef) -> ReaderState: ...

    def set_tries(
        self, reader: ReaderRef, credential: CredentialRef, tries: int
    ) -> ReaderState: ...

    def credential(
        self, reader: ReaderRef, application: str, credential: str
    ) -> CredentialState: ...

    def switch_persona(self, reader: ReaderRef, persona: Any) -> ReaderState: ...

    def apply_faults(self, reader: ReaderRef, scenario: Any) -> ReaderState: ...

    def clear_faults(self, reader: ReaderRef) -> ReaderState: ...

    def revoke(self, reader: ReaderRef, tree: str = ..., reason: Any = ...) -> ReaderState: ...

    def hold(self, reader: ReaderRef, tree: str = ...) -> ReaderState: ...

    def release(self, reader: ReaderRef, tree: str = ...) -> ReaderState: ...


__all__ = ["Controls", "CredentialRef", "ReaderRef"]
