"""The live console of ``mynacard serve``: the control engine its web layer calls.

:class:`~harness.console.control.CardController` watches and drives the cards in their readers:
a snapshot of every reader (:mod:`.state`), actions (insert, remove, glitch, reset, set tries,
switch persona, faults, certificate states), and a stream of events (:mod:`.events`). Each
served card sits in a :class:`~harness.console.controlled_card.ControlledCard`, whose lock both
the reader's APDUs and the console's actions take. Bad input is a
:class:`~harness.console.errors.ControlError` naming the field (and its kind: invalid, not
found, conflict), raised before anything changes. What leaves the process of an exchange is
masked (:mod:`.masking`); each reader's last exchanges are kept for download
(:mod:`.trace_buffer`). The web server over all this is :mod:`harness.console.web`.
"""

from harness.console.control import CardController
from harness.console.controlled_card import ControlledCard
from harness.console.errors import ControlError
from harness.console.events import Event, Subscription
from harness.console.state import CertificateView, CredentialState, FaultsState, ReaderState

__all__ = [
    "CardController",
    "CertificateView",
    "ControlError",
    "ControlledCard",
    "CredentialState",
    "Event",
    "FaultsState",
    "ReaderState",
    "Subscription",
]
