"""The fingerprint's probe plan: every command it may send, fixed in advance, with its purpose.

The plan is built from :mod:`apdu.vocabulary` alone (no card needed), so ``--dry-run`` can print
it. Only these instructions appear: SELECT, READ BINARY, GET DATA, the *empty* VERIFY (no data:
it asks for the tries left and can never count a try down) and deliberately unknown INS / CLA
bytes without data. :func:`check_allowed` enforces that for every command the runner sends,
including the READ BINARYs of :class:`MeasureEf` that are decided at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from apdu import CommandApdu, builders
from apdu.errors import MynacardError
from apdu.vocabulary import (
    APPLICATIONS,
    CREDENTIALS,
    ISSUER_SECURITY_DOMAIN_AID,
    MF_PROTECTED_EF,
    Common,
    Jpki,
    Juki,
    Kenmen,
    Text,
)

__all__ = [
    "GET_DATA_TAGS",
    "MEASURE_EF",
    "UNKNOWN_CLA",
    "UNKNOWN_INS",
    "MeasureEf",
    "Probe",
    "Step",
    "UnsafeCommandError",
    "build_plan",
    "check_allowed",
    "describe",
]

GET_DATA_TAGS: Final = (0x0042, 0x0045, 0x0066, 0x00F0, 0x00F2, 0x00F7, 0x00F8, 0x7F21, 0x5F51)
"""Card-level data objects (card-facts §1.3); only status word and length are kept."""
ABSENT_TAG: Final = 0x0101
"""A GET DATA tag no source lists: how the card says an object is absent."""

UNKNOWN_INS: Final = (0x02, 0x3A, 0x7A, 0xB8, 0xEC)
"""Instructions ISO 7816-4, GlobalPlatform and JICSAP leave unassigned, sent without data under
class 00: what the card answers to an instruction it does not know. (Deliberately not any ISO
write, erase, delete, terminate or activate instruction.)"""
UNKNOWN_CLA: Final = (0xA0, 0x20, 0x01, 0x40, 0x10)
"""Class bytes around GET DATA 5F51: a proprietary class (A0), an RFU class (20), logical
channels 1 and 4, command chaining (10)."""
WRONG_CLASS: Final = (
    ("80 A4", CommandApdu(0x80, 0xA4, 0x00, 0x00)),
    ("80 B0", CommandApdu(0x80, 0xB0, 0x00, 0x00, le=1)),
    ("80 CA", CommandApdu(0x80, 0xCA, 0x5F, 0x51, le=256)),
)
"""Known read-only instructions under the proprietary class."""
UNKNOWN_FID: Final = 0x7F7F
UNKNOWN_AID: Final = bytes.fromhex("D392F000260100000099")
AID_PREFIX: Final = Jpki.AID[:6]

_INS_SELECT, _INS_READ, _INS_GET_DATA, _INS_VERIFY = 0xA4, 0xB0, 0xCA, 0x20
_ALLOWED_INS: Final = frozenset({_INS_SELECT, _INS_READ, _INS_GET_DATA, _INS_VERIFY, *UNKNOWN_INS})

_APP_CLASSES: Final = {"jpki": Jpki, "text": Text, "kenmen": Kenmen, "common": Common, "juki": Juki}


class UnsafeCommandError(MynacardError, ValueError):
    """A command outside the fingerprint's allow-list (a bug: it is never sent)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One command; its answer is kept under ``scope`` / ``key`` (``key=None``: not kept)."""

    scope: str  # "mf" or an application name
    key: str | None  # e.g. "select/000A/p2=0C"
    command: CommandApdu
    what: str
    kind: str  # the timing class: select, read_binary, get_data, verify, unknown, sm
    keep: str = "sw"  # sw | fci | length (status word, plus FCI structure or data length)


@dataclass(frozen=True, slots=True)
class MeasureEf:
    """Size, end-of-file behaviour and (for a certificate) its profile of the EF just selected,
    decided at run time: nothing is read unless ``00 B0 00 00 01`` answers 9000."""

    scope: str
    fid: int

    what: ClassVar[str] = (
        "size, end-of-file answers and certificate profile, if readable without a credential"
    )


MEASURE_EF: Final = (
    "An EF is measured only when 00 B0 00 00 01 answers 9000: its size by READ BINARY of one "
    "byte at offsets halving the interval (00 B0 hh ll 01, about 15 commands), then one byte "
    "past the end, Le longer than the file (00 B0 .. .. 10) and an extended Le (00 B0 .. .. 00 "
    "00 00) at its last byte; a certificate (30 82 ..) is read in 256-byte parts, summarised "
    "and discarded."
)


Step = Probe | MeasureEf


def check_allowed(command: CommandApdu) -> None:
    """Raise :class:`UnsafeCommandError` unless ``command`` is on the allow-list."""
    if command.ins not in _ALLOWED_INS:
        raise UnsafeCommandError(f"INS {command.ins:02X} is not on the fingerprint's allow-list")
    if command.ins == _INS_VERIFY and command.data:
        raise UnsafeCommandError("VERIFY with data is never sent by the fingerprint")
    if command.ins in UNKNOWN_INS and (command.data or command.cla != 0x00):
        raise UnsafeCommandError("unknown-INS probes are sent without data under class 00")


def _fids(app: str) -> tuple[list[int], list[int]]:
    """(EF and key FIDs, credential FIDs) of ``app`` that the vocabulary names."""
    credentials = sorted({c.fid for c in CREDENTIALS.values() if c.application == app})
    named = set(APPLICATIONS[app].files)
    for name, value in vars(_APP_CLASSES[app]).items():
        if name.startswith("EF_") and isinstance(value, int):
            named.add(value)
    return sorted(named - set(credentials)), credentials


def _common_probes(scope: str, fid: int) -> list[Step]:
    """What is asked of the MF and of every AP alike: GET DATA, unknown INS / CLA, SM classes."""
    steps: list[Step] = [
        Probe(scope, f"ins/{ins:02X}", CommandApdu(0x00, ins, 0x00, 0x00), "unknown INS", "unknown")
        for ins in UNKNOWN_INS
    ]
    steps += [
        Probe(
            scope,
            f"cla/{cla:02X}",
            CommandApdu(cla, 0xCA, 0x5F, 0x51, le=256),
            "GET DATA 5F51 under an unaccepted class",
            "unknown",
        )
        for cla in UNKNOWN_CLA
    ]
    steps += [
        Probe(scope, f"wrong_class/{name}", cmd, "known INS under class 80", "unknown")
        for name, cmd in WRONG_CLASS
    ]
    for cla in (0x08, 0x0C):
        steps += [
            Probe(
                scope,
                f"sm/{cla:02X}/select",
                CommandApdu(cla, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")),
                "SELECT EF with a secure-messaging class outside a session",
                "sm",
            ),
            Probe(
                scope,
                f"sm/{cla:02X}/read_binary",
                CommandApdu(cla, 0xB0, 0x00, 0x00, le=1),
                "READ BINARY with a secure-messaging class outside a session",
                "sm",
            ),
        ]
    return steps


def _get_data(scope: str, tag: int, what: str) -> list[Step]:
    return [
        Probe(
            scope, f"get_data/{tag:04X}/short", builders.get_data(tag), what, "get_data", "length"
        ),
        Probe(
            scope,
            f"get_data/{tag:04X}/extended",
            CommandApdu(0x00, 0xCA, tag >> 8, tag & 0xFF, le=65536, extended=True),
            what + " (extended Le)",
            "get_data",
            "length",
        ),
    ]


def _mf_steps() -> list[Step]:
    steps: list[Step] = [
        Probe(
            "mf",
            "read/no_current_ef",
            builders.read_binary(0, 1),
            "READ BINARY, no EF",
            "read_binary",
        ),
        Probe(
            "mf",
            "select/mf/fresh",
            CommandApdu(0x00, 0xA4, 0x00, 0x00),
            "SELECT MF after reset",
            "select",
        ),
        Probe(
            "mf",
            "select/3F00",
            CommandApdu(0x00, 0xA4, 0x00, 0x0C, bytes.fromhex("3F00")),
            "SELECT MF by FID 3F00",
            "select",
        ),
    ]
    for tag in GET_DATA_TAGS:
        steps += _get_data("mf", tag, f"GET DATA {tag:04X} at the MF (length only)")
    steps += _get_data("mf", ABSENT_TAG, "GET DATA of an absent object")
    steps += [
        Probe(
            "mf",
            f"select/{MF_PROTECTED_EF:04X}/p2=0C",
            builders.select_ef(MF_PROTECTED_EF),
            "SELECT the MF's internal EF",
            "select",
        ),
        MeasureEf("mf", MF_PROTECTED_EF),
        Probe(
            "mf",
            f"select/{UNKNOWN_FID:04X}/p2=0C",
            builders.select_ef(UNKNOWN_FID),
            "SELECT of an EF nobody lists",
            "select",
        ),
        *_common_probes("mf", MF_PROTECTED_EF),
        Probe(
            "mf",
            "select/aid/unknown",
            builders.select_aid(UNKNOWN_AID),
            "SELECT of an AID the card does not have",
            "select",
        ),
        Probe(
            "mf",
            "select/aid/prefix",
            builders.select_aid(AID_PREFIX),
            "SELECT by the first 6 bytes of the JPKI AID (prefix selection)",
            "select",
        ),
        Probe(
            "mf",
            "select/aid/isd",
            builders.select_aid(ISSUER_SECURITY_DOMAIN_AID),
            "SELECT the issuer security domain (back to the MF)",
            "select",
        ),
    ]
    return steps


def _app_steps(name: str) -> list[Step]:
    aid = APPLICATIONS[name].aid
    files, credentials = _fids(name)
    first = files[0]
    steps: list[Step] = [
        Probe(name, "select/aid/p2=0C", builders.select_aid(aid), "SELECT AP, no FCI", "select"),
        Probe(
            name,
            "select/aid/p2=00",
            builders.select_aid(aid, fci=True),
            "SELECT AP asking for the FCI",
            "select",
            "fci",
        ),
        Probe(
            name,
            "select/aid/p2=04",
            CommandApdu(0x00, 0xA4, 0x04, 0x04, aid, le=256),
            "SELECT AP with P2=04 (FCP)",
            "select",
            "fci",
        ),
    ]
    for fid in files:
        steps += [
            Probe(
                name,
                f"select/{fid:04X}/p2=0C",
                builders.select_ef(fid),
                f"SELECT EF {fid:04X}",
                "select",
            ),
            MeasureEf(name, fid),
        ]
    for fid in credentials:
        steps += [
            Probe(
                name,
                f"select/{fid:04X}/p2=0C",
                builders.select_ef(fid),
                f"SELECT IEF {fid:04X}",
                "select",
            ),
            Probe(
                name,
                f"verify/{fid:04X}/current",
                builders.verify(None),
                "empty VERIFY of the current IEF (tries left; no data, no try spent)",
                "verify",
            ),
            Probe(
                name,
                f"verify/{fid:04X}/p2=80|fid",
                builders.verify(None, sfi=fid),
                "empty VERIFY naming the IEF in P2",
                "verify",
            ),
        ]
    steps += [
        Probe(
            name,
            f"select/{UNKNOWN_FID:04X}/p2=0C",
            builders.select_ef(UNKNOWN_FID),
            "SELECT of an EF nobody lists",
            "select",
        ),
        Probe(
            name,
            f"select/{first:04X}/p2=00",
            CommandApdu(0x00, 0xA4, 0x02, 0x00, first.to_bytes(2, "big"), le=256),
            "SELECT EF asking for the FCI",
            "select",
            "fci",
        ),
        Probe(
            name,
            f"select/{first:04X}/p2=04",
            CommandApdu(0x00, 0xA4, 0x02, 0x04, first.to_bytes(2, "big"), le=256),
            "SELECT EF asking for the FCP",
            "select",
            "fci",
        ),
        Probe(
            name,
            "select/path/p1=09",
            CommandApdu(0x00, 0xA4, 0x09, 0x0C, first.to_bytes(2, "big")),
            "SELECT by path from the current DF",
            "select",
        ),
        Probe(
            name,
            f"read/sfi/{first:02X}",
            builders.read_binary_sfi(first, 0, 1),
            "READ BINARY by short EF identifier (one byte, discarded)",
            "read_binary",
        ),
        Probe(
            name,
            "get_data/5F51/short",
            builders.get_data(0x5F51),
            "GET DATA 5F51 in the AP",
            "get_data",
            "length",
        ),
        Probe(
            name,
            "get_data/0045/short",
            builders.get_data(0x0045),
            "GET DATA 0045 in the AP",
            "get_data",
            "length",
        ),
        *_common_probes(name, first),
    ]
    return steps


def build_plan() -> list[Step]:
    """Every step, in the order they are sent (the card is reset first)."""
    steps = _mf_steps()
    for name in APPLICATIONS:
        steps += _app_steps(name)
    steps.append(
        Probe(
            "mf",
            "select/mf/after_ap",
            CommandApdu(0x00, 0xA4, 0x00, 0x00),
            "SELECT MF once an AP was selected",
            "select",
        )
    )
    for step in steps:
        if isinstance(step, Probe):
            check_allowed(step.command)
    return steps


def describe(steps: list[Step]) -> list[str]:
    """One line per step for ``--dry-run``: the APDU in hex and what it probes."""
    lines = []
    for step in steps:
        if isinstance(step, Probe):
            where = f"{step.scope}/{step.key}" if step.key else step.scope
            lines.append(f"{step.command.masked_hex():<40} {where}: {step.what}")
        else:
            lines.append(
                f"{'00 B0 00 00 01 …':<40} {step.scope}/ef/{step.fid:04X}: {step.what} (*)"
            )
    lines.append(f"(*) {MEASURE_EF}")
    return lines
