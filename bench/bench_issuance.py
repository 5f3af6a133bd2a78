"""Section 5 of the benchmark: bulk issuance (``mynacard issue``) in cards per second.

Rows: the default run (two JPKI keys generated per card, the rest shared), ``--unique-keys``,
the key pool generated ahead (``mynacard key-pool``, keys per second), and ``issue --key-pool``
(the JPKI keys taken from that pool: the issue 18 target, 1,000 cards ≤ 25 s on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.default_pki import pki_store
from harness.issuance import engine as issuance
from harness.issuance import keypool


def bench_issuance(count: int, unique_count: int) -> dict[str, Any]:
    """``mynacard issue``'s engine (its real code path, default jobs) into a temporary
    directory, with a temporary test PKI made beforehand (its CA keys are a one-time setup, not
    issuance)."""
    saved = os.environ.get("MYNACARD_PKI")
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="mynabench-issue-") as tmp:
        os.environ["MYNACARD_PKI"] = str(Path(tmp) / "pki")
        try:
            issuance.issue(issuance.IssueOptions(count=1, out=Path(tmp) / "warm", jobs=1))
            for label, n, unique in (("shared", count, False), ("unique", unique_count, True)):
                result = issuance.issue(
                    issuance.IssueOptions(
                        count=n, out=Path(tmp) / label, unique_keys=unique, prefix=label
                    )
                )
                out[label] = _row(result)
            pool = Path(tmp) / "pool"
            made = keypool.generate(pool, 2 * count)
            out["pool"] = {
                "count": made.count,
                "seconds": made.seconds,
                "keys_per_second": made.keys_per_second,
                "jobs": made.jobs,
            }
            result = issuance.issue(
                issuance.IssueOptions(
                    count=count, out=Path(tmp) / "pooled", prefix="pooled", key_pool=pool
                )
            )
            out["pooled"] = _row(result)
            out["pooled"]["distinct_jpki_keys"] = _distinct_keys("pooled-")
            out["pooled"]["pool_keys_left"] = keypool.count_keys(pool)
        finally:
            if saved is None:
                os.environ.pop("MYNACARD_PKI", None)
            else:
                os.environ["MYNACARD_PKI"] = saved
    return out


def _row(result: issuance.IssueResult) -> dict[str, Any]:
    return {
        "count": result.count,
        "seconds": result.seconds,
        "cards_per_second": result.cards_per_second,
        "jobs": result.jobs,
        "seconds_per_1000": 1000 / result.cards_per_second,
    }


def _distinct_keys(prefix: str) -> int:
    """Distinct public keys in the JPKI certificates issued to the cards labelled ``prefix…``
    (the issue's check that no two cards share a key: 2 per card when it holds)."""
    keys = {
        x509.load_der_x509_certificate(record.der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for record in pki_store().certificates()
        if record.persona.startswith(prefix)
    }
    return len(keys)
