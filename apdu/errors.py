"""The one error type every codec in this package raises on malformed input."""


class CodecError(ValueError):
    """Bytes that do not form a valid APDU, TLV object or status word."""
