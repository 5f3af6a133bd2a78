"""Section 2b of the benchmark: the PC/SC round trip with the live console attached and busy.

What a lab runs: two ``mynacard serve --vpcd`` processes, one card each, in two readers of the
benchmark's pcscd — one plain, one with ``--console`` (its web server in a console process of
its own, at idle priority). The benchmark's client (pyscard → pcscd → vpcd) sends SELECT
JPKI-AP in slices that alternate between the two cards (ABBA), in two blocks per round: with the
console idle, then while bench/console_load.py (another process, normal priority) keeps
:data:`CONCURRENCY` API calls in flight and reads the event stream. The plain card is measured
at the same moments under the same load, so the comparison isolates what the console costs its
card.

The noise is the run's own: a permutation test deals the same slices to the two sides at
random many times, and the 95th percentile of the ratios it gets is the band a difference must
exceed to be more than chance (:func:`bench_core.compare_slices`). Comparing one ratio against
one other ratio of two identical blocks, as this benchmark did before, called the same card
"slower than noise" about half the time. The card processes' CPU time per APDU (``/proc``) says
what the console costs the card's process itself.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench_core import (
    ROOT,
    SELECT_JPKI,
    Stat,
    check,
    compare_slices,
    wait_ready,
)

from harness.process_usage import cpu_seconds
from readers.card_side.reader_conf import VpcdReader
from readers.host_side.pcsc import PcscTransport

CONSOLE_LOAD = ROOT / "bench" / "console_load.py"
CONCURRENCY = 200
"""API calls the load keeps in flight."""
ROUNDS = 4
START_TIMEOUT = 120.0
"""Seconds serve may take to put its card in (the first run may make the test PKI)."""

WITHOUT = "SELECT JPKI-AP, no console"
IDLE = "SELECT JPKI-AP, console attached, idle"
WITH = f"SELECT JPKI-AP, console attached + {CONCURRENCY} concurrent API calls + event stream"
BESIDE = "SELECT JPKI-AP, no console, beside that loaded console (same moments)"
SLICES = 16
"""Slices per card in each block, alternating (ABBA) between the console's card and the plain
one: the unit the permutation test deals out (:func:`bench_core.compare_slices`)."""


@contextlib.contextmanager
def console_load(url: str, concurrency: int = CONCURRENCY) -> Iterator[dict[str, Any]]:
    """bench/console_load.py against ``url`` until the block ends; then the dict it printed."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(CONSOLE_LOAD), url, str(concurrency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    done: dict[str, Any] = {}
    try:
        wait_ready(proc, "console load")
        yield done
        proc.stdin.close()
        done.update(json.loads(proc.stdout.readline() or "{}"))
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.terminate()  # our own child, by its handle
            proc.wait(5)


@contextlib.contextmanager
def served(reader: VpcdReader, *, console: bool) -> Iterator[tuple[int, str]]:
    """``mynacard serve --vpcd`` of the demo card into ``reader`` (with ``--console``): yields
    its PID and the console's address ("" without), until the block ends (SIGTERM by PID)."""
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "serve",
        "--vpcd",
        f"{reader.host}:{reader.port}",
    ]
    if console:
        command.append("--console")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    url = ""
    watchdog = threading.Timer(START_TIMEOUT, proc.kill)  # our own child, by its handle
    watchdog.start()
    try:
        output = []
        for line in proc.stdout:  # blocking: serve prints its readers once they are served
            output.append(line)
            if line.startswith("console "):
                url = line.split(" ", 1)[1].strip()
            if "←" in line:
                break
        else:
            raise RuntimeError(f"{' '.join(command[3:])} did not start: {''.join(output)}")
        watchdog.cancel()
        yield proc.pid, url
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGTERM)  # our own child, by its PID
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _samples(transport: PcscTransport, n: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        transport.transmit(SELECT_JPKI)
        out.append(clock() - t0)
    return out


def _pairs(slices: int) -> Iterator[tuple[bool, int]]:
    """``(first_side_first, index)`` for each pair of slices: ABBA order, so neither side is
    always the one measured first after a change (the load starting, a block ending)."""
    for index in range(slices):
        yield index % 2 == 0, index


def bench_console(
    readers: list[VpcdReader],
    n: int,
    connect: Callable[[str], PcscTransport],
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """The four rows (``rounds`` rounds of two interleaved blocks of ``n // rounds`` APDUs per
    card), the two comparisons the targets are judged on with their permutation bands, the
    card processes' CPU per APDU, and what the load did."""
    plain_reader, console_reader = readers[0], readers[1]
    rows: dict[str, list[list[int]]] = {WITHOUT: [], IDLE: [], WITH: [], BESIDE: []}
    cpu = {"plain": 0.0, "idle": 0.0, "loaded": 0.0}
    counted = {"plain": 0, "idle": 0, "loaded": 0}
    load: dict[str, float] = {"requests": 0, "events": 0, "seconds": 0.0}
    errors: list[str] = []
    with (
        served(plain_reader, console=False) as (plain_pid, _),
        served(console_reader, console=True) as (console_pid, url),
    ):
        transports = {
            "plain": connect(plain_reader.name),
            "console": connect(console_reader.name),
        }
        try:
            for transport in transports.values():
                check(transport.transmit(SELECT_JPKI), "SELECT via PC/SC")
                _samples(transport, max(10, n // 10))  # warm up
            size = max(1, n // rounds // SLICES)

            def measure(where: str, pid: int, account: str) -> list[int]:
                before = cpu_seconds(pid)
                samples = _samples(transports[where], size)
                cpu[account] += cpu_seconds(pid) - before
                counted[account] += size
                return samples

            def interleaved(console_row: str, plain_row: str, account: str) -> None:
                for console_first, _ in _pairs(SLICES):
                    for on_console in (console_first, not console_first):
                        if on_console:
                            rows[console_row].append(measure("console", console_pid, account))
                        else:
                            rows[plain_row].append(measure("plain", plain_pid, "plain"))

            for _ in range(rounds):
                interleaved(IDLE, WITHOUT, "idle")
                with console_load(url) as done:
                    interleaved(WITH, BESIDE, "loaded")
                for key in ("requests", "events", "seconds"):
                    load[key] += float(done.get(key, 0))
                errors += done.get("errors", [])
        finally:
            for transport in transports.values():
                transport.disconnect()
    if errors:
        raise RuntimeError(f"console load: {errors[0]}")
    flat = {name: [x for part in slices for x in part] for name, slices in rows.items()}
    stats = {name: Stat.of(samples) for name, samples in flat.items()}
    loaded = compare_slices(rows[WITH], rows[BESIDE])
    idle = compare_slices(rows[IDLE], rows[WITHOUT])
    return {
        "stats": stats,
        "loaded": loaded,
        "idle": idle,
        "vs_resting_median": stats[WITH].median_ns / stats[WITHOUT].median_ns,
        "vs_resting_p99": stats[WITH].p99_ns / stats[WITHOUT].p99_ns,
        "slices": SLICES * rounds,
        "cpu_us_per_apdu": {
            key: seconds / counted[key] * 1e6 for key, seconds in cpu.items() if counted[key]
        },
        "load_requests_per_second": load["requests"] / load["seconds"] if load["seconds"] else 0,
        "load_events": int(load["events"]),
        "concurrency": CONCURRENCY,
    }
