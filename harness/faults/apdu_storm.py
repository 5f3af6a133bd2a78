"""Seeded generator of real and mutated command APDUs (shared by the storm test and the bench).

Seeds are the commands real readers send (card-facts §3, §10, §11); mutations change header
bytes, Lc/Le forms (short, extended, absent, zero), truncate, extend and corrupt them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from apdu import CommandApdu, builders
from apdu.vocabulary import APPLICATIONS, DIGEST_INFO_PREFIXES, ISSUER_SECURITY_DOMAIN_AID, Jpki

AIDS = [
    *(app.aid for app in APPLICATIONS.values()),
    ISSUER_SECURITY_DOMAIN_AID,
    Jpki.AID[:6],  # a prefix: never selected (no partial AID matching)
]
SECRETS = [b"1234", b"ABC123", b"abc123", b"314159265352", b"55021720352285", b"550217", b"9999"]
DIGEST_INFO = DIGEST_INFO_PREFIXES["sha256"] + bytes(range(32))
INTERESTING_CLA = [0x00, 0x80, 0x0C, 0x08, 0x10, 0x01, 0x03, 0x40, 0x7F, 0x84, 0x90, 0xE0, 0xFF]
INTERESTING_INS = [0xA4, 0xB0, 0xB2, 0x20, 0x24, 0x2A, 0x32, 0x84, 0x88, 0xCA, 0xC0, 0xAE, 0xA2]


def seed_commands() -> list[bytes]:
    """The well-formed commands the storm starts from."""
    out: list[CommandApdu] = []
    for aid in AIDS:
        out += [builders.select_aid(aid), builders.select_aid(aid, fci=True)]
    for fid in [*range(0x01, 0x0C), 0x11, 0x12, 0x13, 0x14, 0x15, 0x17, 0x18, 0x19, 0x1A, 0x1B]:
        out.append(builders.select_ef(fid))
        out.append(builders.read_binary_sfi(fid, 0, 256))
        out.append(builders.read_record(1, sfi=fid))
        out.append(builders.verify(None, sfi=fid))
        out += [builders.verify(s, sfi=fid) for s in SECRETS]
        out.append(builders.compute_signature(DIGEST_INFO, key_sfi=fid))
        out.append(builders.internal_authenticate(bytes(16), fid))
    out += [builders.verify(s) for s in SECRETS] + [builders.verify(None)]
    out += [builders.read_binary(o, le) for o in (0, 4, 255, 4000) for le in (1, 4, 256, 65536)]
    out += [builders.read_record(r) for r in (0, 1, 2)]
    out += [builders.compute_signature(DIGEST_INFO, scheme=p1, key_sfi=0) for p1 in range(7)]
    out += [builders.compute_signature(bytes(32), scheme=p1) for p1 in range(7)]
    out += [builders.get_challenge(n) for n in (1, 8, 256)]
    out += [builders.get_data(t) for t in (0x00F0, 0x00F2, 0x5F51, 0x0066)]
    out += [builders.change_reference_data(b"5678"), builders.change_key(b"5678")]
    out += [CommandApdu(0x00, 0xA4, 0x00, 0x00), CommandApdu(0x80, 0xFC, 0x00, 0x00)]
    out += [
        CommandApdu(0x80, 0xAE, 0x00, 0x00, bytes(256)),
        CommandApdu(0x80, 0xA2, 0, 0xC1, bytes(256)),
    ]
    return [c.to_bytes() for c in out]


def _header(rng: random.Random, raw: bytearray) -> bytearray:
    if len(raw) < 4:
        raw = raw + bytes(4 - len(raw))
    i = rng.randrange(4)
    if i == 0 and rng.random() < 0.7:
        raw[0] = rng.choice(INTERESTING_CLA)
    elif i == 1 and rng.random() < 0.7:
        raw[1] = rng.choice(INTERESTING_INS)
    else:
        raw[i] = rng.randrange(256)
    return raw


def _body(raw: bytearray) -> tuple[bytes, bytes, int | None]:
    try:
        cmd = CommandApdu.parse(bytes(raw))
    except Exception:
        return bytes(raw[:4]), bytes(raw[4:]), None
    return bytes(raw[:4]), cmd.data, cmd.le


def _lengths(rng: random.Random, raw: bytearray) -> bytearray:
    header, data, le = _body(raw)
    data = data[:255] if rng.random() < 0.5 else data
    short = bytes([len(data) % 256]) + data if data else b""
    form = rng.randrange(8)
    if form == 0:  # extended form of the same command
        out = header
        if data:
            out += b"\x00" + len(data).to_bytes(2, "big") + data
            if le is not None:
                out += (le % 65536).to_bytes(2, "big")
        else:
            out += b"\x00" + ((le or 256) % 65536).to_bytes(2, "big")
        return bytearray(out)
    if form == 1:  # drop Le
        return bytearray(header + short)
    if form == 2:  # short Le 00 (= 256)
        return bytearray(header + short + b"\x00")
    if form == 3:  # extended Le 00 00 00 (= 65536), or 00 00 00 after data
        return bytearray(header + b"\x00\x00\x00")
    if form == 4:  # wrong Lc
        return bytearray(header + bytes([rng.randrange(256)]) + data)
    if form == 5:  # extended Lc that lies
        return bytearray(header + b"\x00" + rng.randrange(65536).to_bytes(2, "big") + data)
    if form == 6:  # big data field (extended)
        big = bytes(rng.randrange(256) for _ in range(rng.choice([256, 300, 1000])))
        return bytearray(header + b"\x00" + len(big).to_bytes(2, "big") + big + b"\x00\x00")
    return bytearray(header + b"\x00\x00")  # a 6-byte ambiguous encoding


def _truncate(rng: random.Random, raw: bytearray) -> bytearray:
    return raw[: rng.randrange(len(raw) + 1)]


def _extend(rng: random.Random, raw: bytearray) -> bytearray:
    return raw + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))


def _flip(rng: random.Random, raw: bytearray) -> bytearray:
    if raw:
        i = rng.randrange(len(raw))
        raw[i] ^= 1 << rng.randrange(8)
    return raw


def _random(rng: random.Random, raw: bytearray) -> bytearray:
    return bytearray(rng.randbytes(rng.choice([0, 1, 3, 4, 5, 6, 7, 9, 12, 40, 300])))


MUTATIONS: list[Callable[[random.Random, bytearray], bytearray]] = [
    _header,
    _header,
    _lengths,
    _lengths,
    _truncate,
    _extend,
    _flip,
    _random,
]


def storm(seed: int) -> Iterator[bytes]:
    """An endless seeded stream: 1/3 real commands, 2/3 mutated (1-3 mutations each)."""
    rng = random.Random(seed)
    seeds = seed_commands()
    while True:
        raw = bytearray(rng.choice(seeds))
        if rng.random() < 0.66:
            for _ in range(rng.randrange(1, 4)):
                raw = rng.choice(MUTATIONS)(rng, raw)
        yield bytes(raw)
