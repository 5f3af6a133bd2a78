"""``mynacard relay``: a card in a PC/SC reader (a real one) exposed in a virtual vpcd reader,
every exchange recorded as a masked trace."""

from harness.relay.errors import RelayError
from harness.relay.presence import PresenceWatcher
from harness.relay.relayed_card import RelayedCard

__all__ = ["PresenceWatcher", "RelayError", "RelayedCard"]
