"""Pre-encoded status words: handlers return ``data + OK`` or one of these."""

from __future__ import annotations

from apdu import StatusWord

OK = StatusWord.SUCCESS.bytes
WRONG_LENGTH = StatusWord.WRONG_LENGTH.bytes
INCOMPATIBLE_FILE = StatusWord.INCOMPATIBLE_FILE_STRUCTURE.bytes
SECURITY_NOT_SATISFIED = StatusWord.SECURITY_STATUS_NOT_SATISFIED.bytes
BLOCKED = StatusWord.REFERENCE_DATA_BLOCKED.bytes
CONDITIONS_NOT_SATISFIED = StatusWord.CONDITIONS_NOT_SATISFIED.bytes
NO_CURRENT_EF = StatusWord.NO_CURRENT_EF.bytes
WRONG_DATA = StatusWord.WRONG_DATA.bytes
FILE_NOT_FOUND = StatusWord.FILE_NOT_FOUND.bytes
RECORD_NOT_FOUND = StatusWord.RECORD_NOT_FOUND.bytes
INCORRECT_P1P2 = StatusWord.INCORRECT_P1P2.bytes
REFERENCED_DATA_NOT_FOUND = StatusWord.REFERENCED_DATA_NOT_FOUND.bytes
FUNCTION_NOT_SUPPORTED = StatusWord.FUNCTION_NOT_SUPPORTED.bytes
WRONG_OFFSET = StatusWord.WRONG_OFFSET.bytes
INS_NOT_SUPPORTED = StatusWord.INS_NOT_SUPPORTED.bytes
CLA_NOT_SUPPORTED = StatusWord.CLA_NOT_SUPPORTED.bytes
CHANNEL_NOT_SUPPORTED = StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED.bytes
SM_DATA_OBJECT_MISSING = StatusWord.SM_DATA_OBJECT_MISSING.bytes
SM_DATA_OBJECT_INCORRECT = StatusWord.SM_DATA_OBJECT_INCORRECT.bytes
CHAINING_NOT_SUPPORTED = StatusWord.CHAINING_NOT_SUPPORTED.bytes
NO_DIAGNOSIS = StatusWord.NO_PRECISE_DIAGNOSIS.bytes
MEMORY_FAILURE = StatusWord.MEMORY_FAILURE.bytes
"""A credential change could not be stored (the same answer for right and wrong values)."""

_RETRIES = tuple((0x63C0 | n).to_bytes(2, "big") for n in range(16))


def retries(n: int) -> bytes:
    """``63Cx`` for ``n`` tries left."""
    return _RETRIES[n]


def status(sw: int) -> bytes:
    """Any status word as two bytes."""
    return sw.to_bytes(2, "big")
