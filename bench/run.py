"""Performance benchmark of the emulated card, as ratios against baselines of the same run.

    .venv/bin/python bench/run.py [--quick] [--out DIR]

Writes ``bench-results.md`` and ``bench-results.json`` into ``--out`` (default bench/out/).
Sections: in-process cost per APDU, PC/SC round trip vs an echo card, the kiosk flow through
PC/SC, and aggregate throughput with 1, 4 and 16 readers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils  # noqa: E402

from card_emulator import Card  # noqa: E402
from readers.client import JpkiCredential, MynaClient  # noqa: E402
from readers.pcsc import PcscTransport, PcscTransportError  # noqa: E402
from readers.pcscd import PrivatePcscd  # noqa: E402
from readers.virtual_card import EchoCard  # noqa: E402
from readers.vpcd import VpcdClient  # noqa: E402

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_EF_000A = bytes.fromhex("00A4020C02000A")
READ_256 = bytes.fromhex("00B0000000")
VERIFY_OK = bytes.fromhex("002000980431323334")
VERIFY_BAD = bytes.fromhex("002000980439393939")
DIGEST_INFO = (
    bytes.fromhex("3031300D060960864801650304020105000420") + hashlib.sha256(b"bench").digest()
)
SIGN = bytes.fromhex("802A009733") + DIGEST_INFO + b"\x00"

# Targets.
T_INPROC_US = 15.0
T_SIGN_RATIO = 1.3
T_PCSC_RATIO = 1.3
T_KIOSK_MS = 5.0
T_AGG_16 = 15_000.0
REAL_READER_MS = (30.0, 50.0)


@dataclass
class Stat:
    """Median and p99 of a sample of durations, in nanoseconds."""

    n: int
    median_ns: float
    p99_ns: float

    @classmethod
    def of(cls, samples: list[int]) -> Stat:
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(len(ordered), float(statistics.median(ordered)), float(p99))


@dataclass
class Results:
    quick: bool
    env: dict[str, str]
    inproc: dict[str, Stat] = field(default_factory=dict)
    pcsc: dict[str, Stat] = field(default_factory=dict)
    kiosk: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)


def check(response: bytes, what: str, sw: bytes = b"\x90\x00") -> None:
    if response[-2:] != sw:
        raise RuntimeError(f"{what}: unexpected answer {response.hex()}")


def time_calls(fn: Callable[[], object], n: int, warmup: int) -> Stat:
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


# --- 1. in-process ---------------------------------------------------------------------------


def _noop(command: bytes) -> bytes:
    return command


def bench_inproc(n: int, n_slow: int, n_disk: int) -> dict[str, Stat]:
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


# --- 2-4. PC/SC --------------------------------------------------------------------------------


def connect(reader: str, timeout: float = 10.0) -> PcscTransport:
    """Connect, waiting for pcscd to notice the card the vpcd client just inserted."""
    deadline = time.monotonic() + timeout
    while True:
        transport = PcscTransport(reader)
        try:
            transport.connect()
            transport.transmit(SELECT_JPKI)  # a card just re-inserted may still be settling
            return transport
        except PcscTransportError:
            transport.disconnect()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def attached(cards: list[tuple[Any, int]]) -> Iterator[list[VpcdClient]]:
    clients: list[VpcdClient] = []
    try:
        for card, port in cards:
            clients.append(VpcdClient(card, port).start(timeout=10.0))
        yield clients
    finally:
        for client in clients:
            client.stop()


def bench_roundtrip(ours: PcscTransport, echo: PcscTransport, n: int) -> dict[str, Stat]:
    """SELECT round trips, interleaved in blocks so drift hits both alike."""
    check(ours.transmit(SELECT_JPKI), "SELECT via PC/SC")
    check(echo.transmit(SELECT_JPKI), "SELECT echo via PC/SC")
    for _ in range(n // 10):
        ours.transmit(SELECT_JPKI)
        echo.transmit(SELECT_JPKI)
    samples: dict[str, list[int]] = {"ours": [], "echo": []}
    clock = time.perf_counter_ns
    block = 100
    for _ in range(max(1, n // block)):
        for name, transport in (("ours", ours), ("echo", echo)):
            acc = samples[name]
            for _ in range(block):
                t0 = clock()
                transport.transmit(SELECT_JPKI)
                acc.append(clock() - t0)
    return {
        "PC/SC SELECT: our card": Stat.of(samples["ours"]),
        "PC/SC SELECT: EchoCard": Stat.of(samples["echo"]),
    }


def bench_kiosk(reader: str, n: int) -> dict[str, Any]:
    apdus = 0

    def count(_record: object) -> None:
        nonlocal apdus
        apdus += 1

    transport = connect(reader)
    transport.on_exchange = count
    client = MynaClient(transport)
    document = b"kiosk login challenge"

    def flow() -> None:
        client.select_jpki()
        client.certificate(0x000A)
        client.verify(JpkiCredential.AUTH_PIN, "1234")
        client.sign(JpkiCredential.AUTH_PIN, document)

    try:
        flow()
        apdus = 0
        flow()
        per_flow = apdus
        stat = time_calls(flow, n, n // 10)
    finally:
        transport.disconnect()
    return {
        "stat": stat,
        "apdus": per_flow,
        "real_reader_ms": [per_flow * t for t in REAL_READER_MS],
    }


def bench_throughput(readers: list[str], seconds: float) -> float:
    """Total APDU/s: one thread per reader looping SELECT EF 000A + READ BINARY 256."""
    transports = [connect(r) for r in readers]
    for t in transports:
        check(t.transmit(SELECT_JPKI), "SELECT")
    counts = [0] * len(readers)
    errors: list[BaseException] = []
    start = threading.Barrier(len(readers) + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        t = transports[i]
        done = 0
        try:
            start.wait()
            while not stop.is_set():
                t.transmit(SELECT_EF_000A)
                r = t.transmit(READ_256)
                if len(r) != 258:
                    raise RuntimeError(f"READ BINARY via PC/SC: {r[-2:].hex()}")
                done += 2
        except BaseException as exc:
            errors.append(exc)
        counts[i] = done

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(readers))]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    for t in transports:
        t.disconnect()
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def bench_pcsc(res: Results, quick: bool) -> None:
    n_rt = 1000 if quick else 10_000
    n_kiosk = 50 if quick else 500
    seconds = 0.5 if quick else 2.0
    with PrivatePcscd(16) as pcsc:
        readers = list(pcsc.readers)
        cards = [(Card.from_persona(PERSONA), r.port) for r in readers[:-1]]
        with attached([*cards, (EchoCard(), readers[-1].port)]):
            ours, echo = connect(readers[0].name), connect(readers[-1].name)
            try:
                res.pcsc = bench_roundtrip(ours, echo, n_rt)
            finally:
                ours.disconnect()
                echo.disconnect()
            res.kiosk = bench_kiosk(readers[0].name, n_kiosk)
        # Throughput: our card in every one of the 16 readers.
        cards = [(Card.from_persona(PERSONA), r.port) for r in readers]
        with attached(cards):
            for k in (1, 4, 16):
                res.throughput[f"{k} reader(s)"] = bench_throughput(
                    [r.name for r in readers[:k]], seconds
                )


# --- report --------------------------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns < 10_000 else f"{ns / 1000:,.1f} µs"


def evaluate(res: Results) -> None:
    ip = res.inproc

    def target(name: str, value: str, goal: str, met: bool) -> None:
        res.targets.append({"target": name, "value": value, "goal": goal, "met": met})

    for op in ("SELECT AID", "READ BINARY 256"):
        med = ip[op].median_ns / 1000
        target(f"in-process {op} median", f"{med:.1f} µs", f"≤ {T_INPROC_US:g} µs", med <= 15)
    ratio = ip["COMPUTE DIGITAL SIGNATURE"].median_ns / ip["baseline: raw RSA-2048 sign"].median_ns
    target("signing vs raw RSA", f"{ratio:.2f}×", f"≤ {T_SIGN_RATIO}×", ratio <= T_SIGN_RATIO)
    if res.pcsc:
        rt = res.pcsc["PC/SC SELECT: our card"].median_ns
        ratio = rt / res.pcsc["PC/SC SELECT: EchoCard"].median_ns
        target("PC/SC round trip vs echo", f"{ratio:.2f}×", f"≤ {T_PCSC_RATIO}×", ratio <= 1.3)
        kiosk_ms = res.kiosk["stat"].median_ns / 1e6
        target("kiosk flow median", f"{kiosk_ms:.2f} ms", f"≤ {T_KIOSK_MS:g} ms", kiosk_ms <= 5)
        agg = res.throughput["16 reader(s)"]
        target("16 readers aggregate", f"{agg:,.0f} APDU/s", f"≥ {T_AGG_16:,.0f}", agg >= T_AGG_16)


def markdown(res: Results) -> str:
    ip = res.inproc
    call = ip["baseline: bare Python call"].median_ns
    rsa_ns = ip["baseline: raw RSA-2048 sign"].median_ns
    lines = [
        f"# Benchmark ({'quick' if res.quick else 'full'} run)",
        "",
        " · ".join(f"{k}: {v}" for k, v in res.env.items()),
        "",
        "## In-process cost per APDU",
        "",
        "| Operation | n | median | p99 | × bare call | × raw RSA |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in ip.items():
        lines.append(
            f"| {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
            f"| {s.median_ns / call:,.0f} | {s.median_ns / rsa_ns:.2f} |"
        )
    if res.pcsc:
        echo = res.pcsc["PC/SC SELECT: EchoCard"].median_ns
        lines += [
            "",
            "## Through pcscd + vpcd (same private pcscd)",
            "",
            "| Measurement | n | median | p99 | × echo card |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, s in res.pcsc.items():
            lines.append(
                f"| {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
                f"| {s.median_ns / echo:.2f} |"
            )
        k = res.kiosk
        s = k["stat"]
        lo, hi = k["real_reader_ms"]
        lines += [
            f"| Kiosk flow ({k['apdus']} APDUs) | {s.n} | {s.median_ns / 1e6:.2f} ms "
            f"| {s.p99_ns / 1e6:.2f} ms | real readers at 30–50 ms/APDU: {lo:.0f}–{hi:.0f} ms "
            f"({lo / (s.median_ns / 1e6):,.0f}–{hi / (s.median_ns / 1e6):,.0f}× slower) |",
            "",
            "## Aggregate throughput (SELECT EF + READ BINARY 256, one thread per reader)",
            "",
            "| Readers | APDU/s | × 1 reader |",
            "|---|---:|---:|",
        ]
        one = res.throughput["1 reader(s)"]
        for name, v in res.throughput.items():
            lines.append(f"| {name} | {v:,.0f} | {v / one:.2f} |")
    lines += ["", "## Targets", "", "| Target | Value | Goal | Met |", "|---|---:|---:|---|"]
    for t in res.targets:
        lines.append(
            f"| {t['target']} | {t['value']} | {t['goal']} | {'met' if t['met'] else 'NOT met'} |"
        )
    return "\n".join(lines) + "\n"


def to_json(res: Results) -> dict[str, Any]:
    return asdict(res)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter loops")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--no-pcsc", action="store_true", help="in-process part only")
    args = parser.parse_args()
    quick: bool = args.quick

    res = Results(
        quick=quick,
        env={
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": str(os.cpu_count()),
        },
    )
    n = 3000 if quick else 30_000
    res.inproc = bench_inproc(n, 100 if quick else 1000, 100 if quick else 1000)
    if not args.no_pcsc:
        bench_pcsc(res, quick)
    evaluate(res)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(res)
    (out / "bench-results.md").write_text(text, encoding="utf-8")
    (out / "bench-results.json").write_text(
        json.dumps(to_json(res), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
