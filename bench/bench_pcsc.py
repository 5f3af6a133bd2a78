"""Sections 2-4 of the benchmark: through a private pcscd and vpcd.

(2) the PC/SC round trip of our card vs an echo card and vsmartcard's own vicc card, and (2b, in
bench_console.py) with the live console attached and busy vs without; (3) the kiosk flow; (4)
aggregate throughput with 1, 2, 4 and 16 readers and with 64 readers on 4 pcscd, served by
``mynacard serve`` itself with the clients in processes of their own (bench_serve.py), how much
CPU pcscd, the card process and the clients spend per APDU, and ``serve``'s resident memory
with 1, 16 and 64 cards. Sections 2-3 serve the cards from a separate process
(bench/card_host.py); 16 readers are also measured with the cards served from the clients' own
process, and with the bench/mux_host.py experiment (the bare selector loop issue 18 started
from) as a baseline.
"""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_console import bench_console
from bench_core import (
    CARD_HOST,
    ECHO,
    MUX_HOST,
    OURS,
    PERSONA,
    READ_256,
    REAL_READER_MS,
    SELECT_EF_000A,
    SELECT_JPKI,
    SELECT_MF,
    VICC,
    Results,
    Stat,
    check,
    time_calls,
    wait_ready,
)
from bench_relay import bench_relay
from bench_serve import bench_serve

from card_emulator import Card
from harness.process_usage import cpu_seconds
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.vicc import ViccUnavailableError, load_virtualsmartcard
from readers.card_side.vpcd import VpcdClient
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import PcscTransport, PcscTransportError

THROUGHPUT_SAME_PROCESS = "16 reader(s), cards served in the clients' process"
THROUGHPUT_ONE_THREAD = "16 reader(s), experiment: one selector thread serves all cards"


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
    """Cards served by threads of this process, each inserted into its vpcd slot (port)."""
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
        wait_ready(proc, "card host")
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
    """A kiosk's login flow (select, read a certificate, verify, sign), ``n`` times."""
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


def _own_cpu_seconds() -> float:
    """User + system CPU time of this process."""
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
    before = (cpu_seconds(pcscd), cpu_seconds(cards), _own_cpu_seconds())
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    after = (cpu_seconds(pcscd), cpu_seconds(cards), _own_cpu_seconds())
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


def vicc_unavailable() -> str:
    """Why vsmartcard's vicc cannot be measured here ("" when it can)."""
    try:
        load_virtualsmartcard()
    except ViccUnavailableError as exc:
        return str(exc)
    return ""


def bench_pcsc(res: Results, quick: bool) -> None:
    """Sections 2-4 into ``res`` (one private pcscd with 16 readers)."""
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
                OURS: (connect(ours.name), SELECT_JPKI),
                ECHO: (connect(echo.name), SELECT_JPKI),
            }
            if not res.vicc:
                transports[VICC] = (
                    connect(vicc.name, probe=SELECT_MF),
                    SELECT_MF,
                )
            try:
                res.pcsc = bench_roundtrip(transports, n_rt)
            finally:
                for transport, _ in transports.values():
                    transport.disconnect()
            res.kiosk = bench_kiosk(ours.name, n_kiosk)
        # Throughput and memory: `mynacard serve` itself, clients in processes of their own.
        rates, cpus, res.memory = bench_serve(seconds)
        res.throughput.update(rates)
        res.throughput_cpu.update(cpus)
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
        # 2b: the live console attached to a card this process serves, busy, and without it.
        res.console = bench_console(readers[:2], n_rt, connect)
        # 2c: through `mynacard relay` (a second private pcscd's card) vs the direct path.
        res.relay = bench_relay(
            readers[:2],
            n_rt,
            connect,
            bench_roundtrip,
            card_host,
        )
