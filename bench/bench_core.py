"""Shared by the benchmark modules: paths, the APDUs sent, timing, and the results record.

bench/ is not a package: ``bench/run.py`` runs as a script, so its directory is first on
``sys.path`` and the ``bench_*`` modules beside it import each other by their plain names.
"""

from __future__ import annotations

import hashlib
import random
import select
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import builders
from apdu.vocabulary import DIGEST_INFO_PREFIXES, Jpki

ROOT = Path(__file__).resolve().parent.parent

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
NEXT_GENERATION_PERSONA = ROOT / "vectors" / "personas" / "next-generation.toml"
CARD_HOST = ROOT / "bench" / "card_host.py"
MUX_HOST = ROOT / "bench" / "mux_host.py"

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
SELECT_MF = bytes.fromhex("00A4000C023F00")  # what vicc's built-in ISO 7816 card answers 9000
SELECT_EF_000A = bytes.fromhex("00A4020C02000A")
READ_256 = bytes.fromhex("00B0000000")
VERIFY_OK = bytes.fromhex("002000980431323334")
VERIFY_BAD = bytes.fromhex("002000980439393939")
DIGEST_INFO = DIGEST_INFO_PREFIXES["sha256"] + hashlib.sha256(b"bench").digest()
SIGN = bytes.fromhex("802A009733") + DIGEST_INFO + b"\x00"

REAL_READER_MS = (30.0, 50.0)
"""Time per APDU of a real contact reader with a real card (ms, low and high)."""

# Names of the PC/SC round-trip measurements (section 2).
OURS = "our card (SELECT JPKI-AP)"
ECHO = "EchoCard (SELECT JPKI-AP)"
VICC = "vicc iso7816 card (SELECT MF)"


@dataclass
class Stat:
    """Median and p99 of a sample of durations, in nanoseconds."""

    n: int
    median_ns: float
    p99_ns: float

    @classmethod
    def of(cls, samples: list[int]) -> Stat:
        """The statistics of ``samples`` (nanoseconds)."""
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(len(ordered), float(statistics.median(ordered)), float(p99))


@dataclass(frozen=True)
class Comparison:
    """How much slower ``a`` is than ``b`` (median and p99 ratios), and how far apart two
    arbitrary sets of the same slices fall by chance: the ``confidence`` quantile of the same
    ratios when the slices are dealt to the two sides at random (a permutation test). A ratio
    above its band is a difference the run's noise does not explain."""

    median: float
    p99: float
    band_median: float
    band_p99: float

    @property
    def within_noise(self) -> bool:
        """Neither ratio beyond its band."""
        return self.median <= self.band_median and self.p99 <= self.band_p99


def compare_slices(
    a: list[list[int]],
    b: list[list[int]],
    *,
    permutations: int = 400,
    confidence: float = 0.95,
    seed: int = 7816,
) -> Comparison:
    """``a``'s pooled samples against ``b``'s, each a list of slices measured interleaved with
    the other's (see :class:`Comparison`)."""

    def ratios(first: list[list[int]], second: list[list[int]]) -> tuple[float, float]:
        one = Stat.of([x for part in first for x in part])
        two = Stat.of([x for part in second for x in part])
        return one.median_ns / two.median_ns, one.p99_ns / two.p99_ns

    observed = ratios(a, b)
    pool, rng = a + b, random.Random(seed)
    medians, p99s = [], []
    for _ in range(permutations):
        rng.shuffle(pool)
        median, p99 = ratios(pool[: len(a)], pool[len(a) :])
        medians.append(median)
        p99s.append(p99)
    at = min(permutations - 1, int(permutations * confidence))
    return Comparison(observed[0], observed[1], sorted(medians)[at], sorted(p99s)[at])


@dataclass
class Results:
    """Everything a run measured, section by section, and the targets checked."""

    quick: bool
    env: dict[str, str]
    inproc: dict[str, Stat] = field(default_factory=dict)
    pcsc: dict[str, Stat] = field(default_factory=dict)
    vicc: str = ""
    """Why vicc's card was not measured (empty when it was)."""
    kiosk: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    throughput_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU µs per APDU of pcscd, the card process and the clients, per throughput run."""
    issuance: dict[str, Any] = field(default_factory=dict)
    console: dict[str, Any] = field(default_factory=dict)
    """Section 2b: the PC/SC round trip with the live console attached and busy, and without."""
    relay: dict[str, Stat] = field(default_factory=dict)
    """Section 2c: the PC/SC round trip through ``mynacard relay``, and direct (the first)."""
    memory: dict[str, float] = field(default_factory=dict)
    """Section 4: resident memory (MiB) of ``mynacard serve`` with 1, 16 and 64 cards."""
    coldstart: dict[str, float] = field(default_factory=dict)
    """Section 6: seconds from starting ``mynacard serve`` to a card a pyscard client sees."""
    fleet: dict[str, Any] = field(default_factory=dict)
    """Section 7: simulated kiosks (a pcscd each) served by one ``mynacard fleet`` process."""
    targets: list[dict[str, Any]] = field(default_factory=list)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line a helper process prints (stripped), or "" if none came within ``timeout``
    seconds or it exited."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def wait_ready(proc: subprocess.Popen[str], what: str, timeout: float = 60.0) -> None:
    """Wait for a helper process's ``ready`` line; RuntimeError naming ``what`` otherwise."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else f"no answer within {timeout:g} s"
    if line != "ready":
        raise RuntimeError(f"{what}: {line or 'exited'}")


def check(response: bytes, what: str, sw: bytes = b"\x90\x00") -> None:
    """Stop the run when a card answers ``what`` with anything but ``sw``."""
    if response[-2:] != sw:
        raise RuntimeError(f"{what}: unexpected answer {response.hex()}")


def time_calls(fn: Callable[[], object], n: int, warmup: int) -> Stat:
    """Durations of ``n`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return Stat.of(samples)


def time_with_setup(setup: Callable[[], object], fn: Callable[[], object], n: int) -> Stat:
    """Like :func:`time_calls`, but run ``setup`` (untimed) before each call."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        setup()
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return Stat.of(samples)
