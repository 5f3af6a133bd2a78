"""Performance benchmark of the emulated card, as ratios against baselines of the same run.

    .venv/bin/python bench/run.py [--quick] [--out DIR] [--no-pcsc] [--issue-count N]

Writes ``bench-results.md`` and ``bench-results.json`` into ``--out`` (default bench/out/).
Sections: (1) in-process cost per APDU; (2) PC/SC round trip vs an echo card and vsmartcard's
own vicc card on the same private pcscd; (3) the kiosk flow through PC/SC; (4) aggregate
throughput with 1, 4 and 16 readers, one pyscard client thread per reader; (5) bulk issuance
(``mynacard issue``) in cards per second.

For sections 2-4 the cards are served by a separate process (bench/card_host.py), as
``mynacard serve`` serves them to kiosk programs; section 4 also measures 16 readers with the
cards served from the clients' own process, and how much CPU pcscd, the card process and the
clients spend per APDU.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from card_emulator import Card
from harness import issue_cli
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.vicc import ViccUnavailableError, load_virtualsmartcard
from readers.card_side.vpcd import VpcdClient
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import PcscTransport, PcscTransportError

ROOT = Path(__file__).resolve().parent.parent

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
CARD_HOST = ROOT / "bench" / "card_host.py"
MUX_HOST = ROOT / "bench" / "mux_host.py"

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_MF = bytes.fromhex("00A4000C023F00")  # what vicc's built-in ISO 7816 card answers 9000
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
T_ISSUE_1000_S = 60.0
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
    vicc: str = ""
    """Why vicc's card was not measured (empty when it was)."""
    kiosk: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    throughput_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU µs per APDU of pcscd, the card process and the clients, per throughput run."""
    issuance: dict[str, Any] = field(default_factory=dict)
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


def connect(reader: str, timeout: float = 10.0, *, probe: bytes = SELECT_JPKI) -> PcscTransport:
    """Connect, waiting for pcscd to notice the card the vpcd client just inserted."""
    deadline = time.monotonic() + timeout
    while True:
        transport = PcscTransport(reader)
        try:
            transport.connect()
            transport.transmit(probe)  # a card just re-inserted may still be settling
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


@contextlib.contextmanager
def card_host(specs: list[str], script: Path = CARD_HOST) -> Iterator[subprocess.Popen[str]]:
    """Cards served by bench/card_host.py (``kind:port`` each; or another script taking its
    own arguments) in a child process until the block ends."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script, our card specs
        [sys.executable, str(script), *specs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        line = proc.stdout.readline().strip() if ready else "no answer within 60 s"
        if line != "ready":
            raise RuntimeError(f"card host: {line or 'exited'}")
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()  # our own child, by its handle
            proc.wait(5)


def bench_roundtrip(transports: dict[str, tuple[PcscTransport, bytes]], n: int) -> dict[str, Stat]:
    """SELECT round trips on several cards, interleaved in blocks so drift hits all alike."""
    for name, (transport, command) in transports.items():
        check(transport.transmit(command), f"SELECT via PC/SC ({name})")
    for _ in range(n // 10):
        for transport, command in transports.values():
            transport.transmit(command)
    samples: dict[str, list[int]] = {name: [] for name in transports}
    clock = time.perf_counter_ns
    block = 100
    for _ in range(max(1, n // block)):
        for name, (transport, command) in transports.items():
            acc = samples[name]
            for _ in range(block):
                t0 = clock()
                transport.transmit(command)
                acc.append(clock() - t0)
    return {name: Stat.of(values) for name, values in samples.items()}


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


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_throughput(
    readers: list[str], seconds: float, *, pcscd: int | None = None, cards: int | None = None
) -> tuple[float, dict[str, float]]:
    """Total APDU/s: one thread per reader looping SELECT EF 000A + READ BINARY 256, and the
    CPU µs per APDU of pcscd (pid ``pcscd``), the card process (pid ``cards``; None: this
    process serves the cards) and this process (the clients, and the cards if served here)."""
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
    before = (_cpu_seconds(pcscd), _cpu_seconds(cards), _own_cpu_seconds())
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    after = (_cpu_seconds(pcscd), _cpu_seconds(cards), _own_cpu_seconds())
    for t in transports:
        t.disconnect()
    if errors:
        raise errors[0]
    total = sum(counts)
    used = [b - a for a, b in zip(before, after, strict=True)]
    cpu = {
        "pcscd µs/APDU": used[0] / total * 1e6,
        "card process µs/APDU": used[1] / total * 1e6 if cards is not None else 0.0,
        "client process µs/APDU": used[2] / total * 1e6,
        "cores busy": sum(used) / elapsed,
    }
    return total / elapsed, cpu


THROUGHPUT_SAME_PROCESS = "16 reader(s), cards served in the clients' process"
THROUGHPUT_ONE_THREAD = "16 reader(s), experiment: one selector thread serves all cards"


def vicc_unavailable() -> str:
    """Why vsmartcard's vicc cannot be measured here ("" when it can)."""
    try:
        load_virtualsmartcard()
    except ViccUnavailableError as exc:
        return str(exc)
    return ""


def bench_pcsc(res: Results, quick: bool) -> None:
    n_rt = 1000 if quick else 10_000
    n_kiosk = 50 if quick else 500
    seconds = 0.5 if quick else 2.0
    res.vicc = vicc_unavailable()
    # not network-isolated: vsmartcard's own vicc card (a baseline) cannot join a namespace
    with PrivatePcscd(16, isolate_network=False) as pcsc:
        readers = list(pcsc.readers)
        ours, vicc, echo = readers[0], readers[-2], readers[-1]
        specs = [f"ours:{ours.port}", f"echo:{echo.port}"]
        if not res.vicc:
            specs.append(f"vicc:{vicc.port}")
        with card_host(specs):
            transports = {
                "our card (SELECT JPKI-AP)": (connect(ours.name), SELECT_JPKI),
                "EchoCard (SELECT JPKI-AP)": (connect(echo.name), SELECT_JPKI),
            }
            if not res.vicc:
                transports["vicc iso7816 card (SELECT MF)"] = (
                    connect(vicc.name, probe=SELECT_MF),
                    SELECT_MF,
                )
            try:
                res.pcsc = bench_roundtrip(transports, n_rt)
            finally:
                for transport, _ in transports.values():
                    transport.disconnect()
            res.kiosk = bench_kiosk(ours.name, n_kiosk)
        # Throughput: our card in every one of the 16 readers, served by the card process.
        with card_host([f"ours:{r.port}" for r in readers]) as host:
            for k in (1, 4, 16):
                name = f"{k} reader(s)"
                res.throughput[name], res.throughput_cpu[name] = bench_throughput(
                    [r.name for r in readers[:k]], seconds, pcscd=pcsc.pid, cards=host.pid
                )
        # The same 16 readers with the cards served by threads of this (the clients') process.
        with attached([(Card.from_persona(PERSONA), r.port) for r in readers]):
            name = THROUGHPUT_SAME_PROCESS
            res.throughput[name], res.throughput_cpu[name] = bench_throughput(
                [r.name for r in readers], seconds, pcscd=pcsc.pid
            )
        # Experiment: the card process with one selector thread instead of a thread per card.
        with card_host([str(r.port) for r in readers], MUX_HOST) as host:
            name = THROUGHPUT_ONE_THREAD
            res.throughput[name], res.throughput_cpu[name] = bench_throughput(
                [r.name for r in readers], seconds, pcscd=pcsc.pid, cards=host.pid
            )


# --- 5. bulk issuance --------------------------------------------------------------------


def bench_issuance(count: int, unique_count: int) -> dict[str, Any]:
    """``mynacard issue`` (its real code path, default jobs) into a temporary directory, with a
    temporary test PKI made beforehand (its CA keys are a one-time setup, not issuance)."""
    saved = os.environ.get("MYNACARD_PKI")
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="mynabench-issue-") as tmp:
        os.environ["MYNACARD_PKI"] = str(Path(tmp) / "pki")
        try:
            issue_cli.issue(issue_cli.IssueOptions(count=1, out=Path(tmp) / "warm", jobs=1))
            for label, n, unique in (("shared", count, False), ("unique", unique_count, True)):
                result = issue_cli.issue(
                    issue_cli.IssueOptions(
                        count=n, out=Path(tmp) / label, unique_keys=unique, prefix=label
                    )
                )
                out[label] = {
                    "count": result.count,
                    "seconds": result.seconds,
                    "cards_per_second": result.cards_per_second,
                    "jobs": result.jobs,
                    "seconds_per_1000": 1000 / result.cards_per_second,
                }
        finally:
            if saved is None:
                os.environ.pop("MYNACARD_PKI", None)
            else:
                os.environ["MYNACARD_PKI"] = saved
    return out


# --- report --------------------------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs" if ns < 10_000 else f"{ns / 1000:,.1f} µs"


OURS = "our card (SELECT JPKI-AP)"
ECHO = "EchoCard (SELECT JPKI-AP)"
VICC = "vicc iso7816 card (SELECT MF)"


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
        ratio = res.pcsc[OURS].median_ns / res.pcsc[ECHO].median_ns
        p99 = res.pcsc[OURS].p99_ns / res.pcsc[ECHO].p99_ns
        target(
            "PC/SC round trip vs echo (median; p99)",
            f"{ratio:.2f}×; {p99:.2f}×",
            f"≤ {T_PCSC_RATIO}× median",
            ratio <= T_PCSC_RATIO,
        )
        kiosk_ms = res.kiosk["stat"].median_ns / 1e6
        target("kiosk flow median", f"{kiosk_ms:.2f} ms", f"≤ {T_KIOSK_MS:g} ms", kiosk_ms <= 5)
        agg = res.throughput["16 reader(s)"]
        target("16 readers aggregate", f"{agg:,.0f} APDU/s", f"≥ {T_AGG_16:,.0f}", agg >= T_AGG_16)
    if res.issuance:
        shared = res.issuance["shared"]
        projected = shared["seconds_per_1000"]
        measured = f"{shared['count']:,} cards in {shared['seconds']:.1f} s"
        if shared["count"] < 1000:
            measured += ", projected: setup not amortized"
        target(
            "1,000 personas issued",
            f"{projected:.1f} s ({measured})",
            f"≤ {T_ISSUE_1000_S:g} s",
            projected <= T_ISSUE_1000_S,
        )


def markdown(res: Results) -> str:
    ip = res.inproc
    call = ip["baseline: bare Python call"].median_ns
    rsa_ns = ip["baseline: raw RSA-2048 sign"].median_ns
    lines = [
        f"# Benchmark ({'quick' if res.quick else 'full'} run)",
        "",
        " · ".join(f"{k}: {v}" for k, v in res.env.items()),
        "",
        "## 1. In-process cost per APDU",
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
        echo = res.pcsc[ECHO]
        lines += [
            "",
            "## 2–3. Through pcscd + vpcd (one private pcscd; cards served by a separate process)",
            "",
            "| Measurement | n | median | p99 | × echo (median) | × echo (p99) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, s in res.pcsc.items():
            lines.append(
                f"| PC/SC {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
                f"| {s.median_ns / echo.median_ns:.2f} | {s.p99_ns / echo.p99_ns:.2f} |"
            )
        k = res.kiosk
        s = k["stat"]
        lo, hi = k["real_reader_ms"]
        lines += [
            f"| Kiosk flow ({k['apdus']} APDUs) | {s.n} | {s.median_ns / 1e6:.2f} ms "
            f"| {s.p99_ns / 1e6:.2f} ms | real readers at 30–50 ms/APDU: {lo:.0f}–{hi:.0f} ms "
            f"({lo / (s.median_ns / 1e6):,.0f}–{hi / (s.median_ns / 1e6):,.0f}× slower) | |",
        ]
        if res.vicc:
            lines += ["", f"vicc not measured: {res.vicc}"]
        else:
            lines += [
                "",
                "vicc: vsmartcard's built-in ISO 7816 card in its own VirtualICC loop (with our "
                "TCP_QUICKACK socket wrapper, without which every APDU stalls 40 ms); it answers "
                "SELECT MF, not the JPKI-AP.",
            ]
        lines += [
            "",
            "## 4. Aggregate throughput (SELECT EF + READ BINARY 256, one pyscard thread per "
            "reader)",
            "",
            "| Readers | APDU/s | × 1 reader | CPU µs/APDU: pcscd | card process | clients "
            "| cores busy |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        one = res.throughput["1 reader(s)"]
        for name, v in res.throughput.items():
            cpu = res.throughput_cpu.get(name, {})
            card = cpu.get("card process µs/APDU", 0.0)
            lines.append(
                f"| {name} | {v:,.0f} | {v / one:.2f} | {cpu.get('pcscd µs/APDU', 0):.1f} "
                f"| {f'{card:.1f}' if card else '(in clients)'} "
                f"| {cpu.get('client process µs/APDU', 0):.1f} | {cpu.get('cores busy', 0):.2f} |"
            )
    if res.issuance:
        lines += [
            "",
            "## 5. Bulk issuance (`mynacard issue`, default jobs)",
            "",
            "| Keys | cards | seconds | cards/s | jobs | projected s / 1,000 cards |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, what in (
            ("shared", "JPKI keys per card, other 4 shared by the run (default)"),
            ("unique", "all 6 keys per card (--unique-keys)"),
        ):
            r = res.issuance[label]
            lines.append(
                f"| {what} | {r['count']:,} | {r['seconds']:.1f} | {r['cards_per_second']:.1f} "
                f"| {r['jobs']} | {r['seconds_per_1000']:.1f} |"
            )
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
    parser.add_argument("--no-pcsc", action="store_true", help="skip the PC/SC sections (2-4)")
    parser.add_argument(
        "--issue-count",
        type=int,
        help="cards for the issuance section (default: 1000, --quick 40; 0 skips it)",
    )
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
    issue_count = args.issue_count if args.issue_count is not None else (40 if quick else 1000)
    if issue_count > 0:  # before the PC/SC part: its workers fork from a single-threaded process
        res.issuance = bench_issuance(issue_count, max(4, issue_count // 10))
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
