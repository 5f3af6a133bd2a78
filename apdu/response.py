"""Response APDUs: data followed by SW1 SW2."""

from __future__ import annotations

from dataclasses import dataclass

from apdu.errors import CodecError
from apdu.status import describe, retries_in


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """One response APDU."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split a raw response; raises :class:`CodecError` if it has no status word."""
        if len(raw) < 2:
            raise CodecError(f"a response APDU has at least 2 bytes, got {len(raw)}")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    @classmethod
    def of(cls, sw: int, data: bytes = b"") -> ResponseApdu:
        """A response with status word ``sw`` and optional data."""
        return cls(data, sw)

    def to_bytes(self) -> bytes:
        """Data followed by the two status bytes."""
        return self.data + self.sw.to_bytes(2, "big")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def ok(self) -> bool:
        """True for ``90 00``."""
        return self.sw == 0x9000

    @property
    def retries(self) -> int | None:
        """Tries left when the status word is ``63Cx``."""
        return retries_in(self.sw)

    @property
    def meaning(self) -> str:
        """Human-readable status word."""
        return describe(self.sw)
