"""The chip: file system, access rules as data, security state, command handlers, the
applications, the persistent card image and personalization from a persona.

Pure: no sockets, no threads. ``Card.transmit(bytes) -> bytes`` is the one method that matters.
"""

from card_emulator.card import Card, CounterError
from card_emulator.image import ImageError
from card_emulator.persona import PersonaError

__all__ = ["Card", "CounterError", "ImageError", "PersonaError"]
