"""Errors every floor of the project builds on.

:class:`MynacardError` is the root of every error raised on purpose — bad input, an unusable
card image, a card answering an error, a lost reader — so a program (and ``mynacard``'s
``main``) can catch one class and show its message, which always names the field, file or
reader concerned. :class:`CodecError` is what every codec in this package raises on malformed
input.
"""


class MynacardError(Exception):
    """Root of every error this project raises on purpose; the message is for the user."""


class CodecError(MynacardError, ValueError):
    """Bytes that do not form a valid APDU, TLV object or status word."""
