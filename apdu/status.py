"""Status words (SW1-SW2) as this card family uses them, with their meanings."""

from __future__ import annotations

from enum import IntEnum


class StatusWord(IntEnum):
    """Fixed status words. ``63Cx`` (tries left) is built with :func:`retries_left`."""

    SUCCESS = 0x9000
    END_OF_FILE = 0x6282
    NO_RETRY_LIMIT = 0x6300
    VERIFY_FAILED = 0x63C0
    MEMORY_FAILURE = 0x6581
    SE_NOT_CONFIGURED = 0x66F1
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    CHAINING_NOT_SUPPORTED = 0x6884
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_BLOCKED = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    SM_DATA_OBJECT_MISSING = 0x6987
    SM_DATA_OBJECT_INCORRECT = 0x6988
    SM_REFUSED = 0x69FC
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @property
    def bytes(self) -> bytes:
        """The two status bytes."""
        return self.value.to_bytes(2, "big")


_MEANINGS: dict[int, str] = {
    StatusWord.SUCCESS: "success",
    StatusWord.END_OF_FILE: "end of file reached before Le bytes",
    StatusWord.NO_RETRY_LIMIT: "verification failed (no retry limit)",
    StatusWord.MEMORY_FAILURE: "memory failure (the card could not store a change)",
    StatusWord.SE_NOT_CONFIGURED: "security environment not configured",
    StatusWord.WRONG_LENGTH: "wrong length",
    StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported",
    StatusWord.SECURE_MESSAGING_NOT_SUPPORTED: "secure messaging not supported",
    StatusWord.CHAINING_NOT_SUPPORTED: "command chaining not supported",
    StatusWord.INCOMPATIBLE_FILE_STRUCTURE: "command incompatible with file structure",
    StatusWord.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied",
    StatusWord.AUTHENTICATION_METHOD_BLOCKED: "authentication method blocked",
    StatusWord.REFERENCE_DATA_BLOCKED: "reference data blocked (PIN locked)",
    StatusWord.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    StatusWord.NO_CURRENT_EF: "no current EF",
    StatusWord.SM_DATA_OBJECT_MISSING: "secure messaging data object missing",
    StatusWord.SM_DATA_OBJECT_INCORRECT: "secure messaging data object incorrect",
    StatusWord.SM_REFUSED: "secure messaging refused",
    StatusWord.WRONG_DATA: "incorrect data field",
    StatusWord.FUNCTION_NOT_SUPPORTED: "function not supported",
    StatusWord.FILE_NOT_FOUND: "file or application not found",
    StatusWord.RECORD_NOT_FOUND: "record not found",
    StatusWord.INCORRECT_P1P2: "incorrect P1-P2",
    StatusWord.REFERENCED_DATA_NOT_FOUND: "referenced data not found",
    StatusWord.WRONG_OFFSET: "offset beyond end of file",
    StatusWord.INS_NOT_SUPPORTED: "instruction not supported",
    StatusWord.CLA_NOT_SUPPORTED: "class not supported",
    StatusWord.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
}


def retries_left(tries: int) -> int:
    """The ``63Cx`` status word for ``tries`` remaining attempts (0-15)."""
    if not 0 <= tries <= 15:
        raise ValueError(f"a 63Cx status word holds 0-15 tries, not {tries}")
    return 0x63C0 | tries


def retries_in(sw: int) -> int | None:
    """Tries left if ``sw`` is a ``63Cx`` answer, else ``None``."""
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


def describe(sw: int) -> str:
    """A short meaning of any status word, e.g. ``'63C2 verification failed, 2 tries left'``."""
    tries = retries_in(sw)
    if tries is not None:
        return f"{sw:04X} verification failed, {tries} {'try' if tries == 1 else 'tries'} left"
    if sw & 0xFF00 == 0x6100:
        return f"{sw:04X} {sw & 0xFF} more bytes available"
    if sw & 0xFF00 == 0x6C00:
        return f"{sw:04X} wrong Le, exact length is {sw & 0xFF}"
    meaning = _MEANINGS.get(sw)
    return f"{sw:04X} {meaning}" if meaning else f"{sw:04X} unknown status"


def is_valid(sw: int) -> bool:
    """True for a status word ISO 7816-4 allows: SW1 in 61-6F or 90-9F (never 60)."""
    sw1 = sw >> 8
    return 0 <= sw <= 0xFFFF and (0x61 <= sw1 <= 0x6F or 0x90 <= sw1 <= 0x9F)
