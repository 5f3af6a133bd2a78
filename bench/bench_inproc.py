"""Section 1 of the benchmark: the cost of one APDU to the emulated card, in process.

Baselines of the same run: a bare Python call and a raw RSA-2048 signature.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench_core import (
    DIGEST_INFO,
    PERSONA,
    READ_256,
    SELECT_EF_000A,
    SELECT_JPKI,
    SIGN,
    VERIFY_BAD,
    VERIFY_OK,
    Stat,
    check,
    time_calls,
    time_with_setup,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from card_emulator import Card


def _noop(command: bytes) -> bytes:
    return command


def bench_inproc(n: int, n_slow: int, n_disk: int) -> dict[str, Stat]:
    """Median and p99 per operation: ``n`` fast ones, ``n_slow`` signatures, ``n_disk`` writes."""
    out: dict[str, Stat] = {}
    out["baseline: bare Python call"] = time_calls(lambda: _noop(SELECT_JPKI), n, n // 10)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    digest = DIGEST_INFO[-32:]
    out["baseline: raw RSA-2048 sign"] = time_calls(
        lambda: key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())),
        n_slow,
        n_slow // 10,
    )

    card = Card.from_persona(PERSONA)
    check(card.transmit(SELECT_JPKI), "SELECT")
    out["SELECT AID"] = time_calls(lambda: card.transmit(SELECT_JPKI), n, n // 10)
    check(card.transmit(SELECT_EF_000A), "SELECT EF")
    response = card.transmit(READ_256)
    check(response, "READ BINARY")
    if len(response) != 258:
        raise RuntimeError(f"READ BINARY answered {len(response)} bytes")
    out["READ BINARY 256"] = time_calls(lambda: card.transmit(READ_256), n, n // 10)
    check(card.transmit(VERIFY_OK), "VERIFY")
    out["VERIFY ok (memory)"] = time_calls(lambda: card.transmit(VERIFY_OK), n, n // 10)
    check(card.transmit(VERIFY_BAD), "VERIFY bad", b"\x63\xc2")
    out["VERIFY wrong (memory)"] = time_with_setup(
        lambda: card.transmit(VERIFY_OK), lambda: card.transmit(VERIFY_BAD), n
    )
    card.transmit(VERIFY_OK)
    check(card.transmit(SIGN), "SIGN")
    out["COMPUTE DIGITAL SIGNATURE"] = time_calls(lambda: card.transmit(SIGN), n_slow, 10)

    with tempfile.TemporaryDirectory(prefix="mynabench-") as tmp:
        image = Path(tmp) / "card.sqlite"
        with Card.from_persona(PERSONA, image=image) as durable:
            check(durable.transmit(SELECT_JPKI), "SELECT (image)")
            check(durable.transmit(VERIFY_OK), "VERIFY (image)")
            out["VERIFY ok (image)"] = time_calls(
                lambda: durable.transmit(VERIFY_OK), n_disk, n_disk // 10
            )
            out["VERIFY wrong (image)"] = time_with_setup(
                lambda: durable.transmit(VERIFY_OK), lambda: durable.transmit(VERIFY_BAD), n_disk
            )
            check(durable.transmit(VERIFY_OK), "VERIFY (image, reset)")
    return out
