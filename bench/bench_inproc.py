"""Section 1 of the benchmark: the cost of one APDU to the emulated card, in process.

Baselines of the same run: a bare Python call, a raw RSA-2048 signature and a raw ECDSA P-384
signature (for the next-generation card's COMPUTE DIGITAL SIGNATURE).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from bench_core import (
    DIGEST_INFO,
    NEXT_GENERATION_PERSONA,
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
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

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

    out.update(_bench_p384(n_slow))

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


def _bench_p384(n_slow: int) -> dict[str, Stat]:
    """ECDSA P-384 / SHA-384: raw ``cryptography`` signing, then the next-generation card's
    COMPUTE DIGITAL SIGNATURE over the same kind of digest (raw r ‖ s answer)."""
    out: dict[str, Stat] = {}
    key = ec.generate_private_key(ec.SECP384R1())
    digest = hashlib.sha384(b"bench").digest()
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA384()))
    out["baseline: raw ECDSA P-384 sign"] = time_calls(
        lambda: key.sign(digest, algorithm), n_slow, n_slow // 10
    )
    card = Card.from_persona(NEXT_GENERATION_PERSONA)
    check(card.transmit(SELECT_JPKI), "SELECT (next generation)")
    check(card.transmit(VERIFY_OK), "VERIFY (next generation)")
    sign = bytes.fromhex("802A009730") + digest + b"\x00"
    response = card.transmit(sign)
    check(response, "SIGN (next generation)")
    if len(response) != 98:
        raise RuntimeError(f"P-384 COMPUTE DIGITAL SIGNATURE answered {len(response)} bytes")
    out["COMPUTE DIGITAL SIGNATURE (P-384)"] = time_calls(lambda: card.transmit(sign), n_slow, 10)
    return out
