"""Bytes only: command/response APDUs, status words, BER-TLV and simple-TLV, trace records.

This package imports nothing else of the project.
"""

from apdu.command import Case, CommandApdu, blank_secret, carries_secret, mask_hex
from apdu.errors import CodecError, MynacardError
from apdu.response import ResponseApdu
from apdu.status import StatusWord, describe, retries_in, retries_left
from apdu.tlv import Tlv
from apdu.trace import Observer, TraceRecord

__all__ = [
    "Case",
    "CodecError",
    "CommandApdu",
    "MynacardError",
    "Observer",
    "ResponseApdu",
    "StatusWord",
    "Tlv",
    "TraceRecord",
    "blank_secret",
    "carries_secret",
    "describe",
    "mask_hex",
    "retries_in",
    "retries_left",
]
