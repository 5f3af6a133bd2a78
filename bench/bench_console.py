"""Section 2b of the benchmark: the PC/SC round trip with the live console attached and busy.

What a lab runs: two ``mynacard serve --vpcd`` processes, one card each, in two readers of the
benchmark's pcscd — one plain, one with ``--console`` (its web server in a console process of
its own, at idle priority). The benchmark's client (pyscard → pcscd → vpcd) sends SELECT
JPKI-AP in blocks, each round: to the plain card; to the console's card with the console idle;
then, while bench/console_load.py (another process, normal priority) keeps
:data:`CONCURRENCY` API calls in flight and reads the event stream, alternately to the
console's card and to the plain card (the same moments, the same load on the machine, no
console on that card); then to the plain card again.

So the loaded console's card is compared twice: with the plain card at rest (what the machine
being busy costs too: 2 cores shared by the client, pcscd, both cards, the console and a load
generator) and with the plain card beside the same load (what the console costs its card). The
spread between identical blocks is the run's noise: the two resting plain blocks, and the two
halves of the plain card's loaded slices. The card processes' CPU time per APDU (``/proc``)
says what the console costs the card's process itself.
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

from bench_core import ROOT, SELECT_JPKI, Stat, check, cpu_seconds, wait_ready

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
AGAIN = "SELECT JPKI-AP, no console (again)"
SLICES = 8
"""Sub-blocks of the loaded block, alternating between the console's card and the plain one."""


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


def _spread(first: Stat, second: Stat) -> tuple[float, float]:
    """How far apart two measurements of the same thing are: (median ratio, p99 ratio), ≥ 1."""
    return (
        max(first.median_ns, second.median_ns) / min(first.median_ns, second.median_ns),
        max(first.p99_ns, second.p99_ns) / min(first.p99_ns, second.p99_ns),
    )


def bench_console(
    readers: list[VpcdReader],
    n: int,
    connect: Callable[[str], PcscTransport],
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """The five rows (``rounds`` rounds of blocks of ``n // rounds`` APDUs), the run's noise,
    the ratios the target is judged on, the card processes' CPU per APDU, and what the load
    did."""
    plain_reader, console_reader = readers[0], readers[1]
    rows: dict[str, list[int]] = {WITHOUT: [], IDLE: [], WITH: [], BESIDE: [], AGAIN: []}
    halves: tuple[list[int], list[int]] = ([], [])
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
            block = max(SLICES, n // rounds)

            def measure(where: str, size: int, pid: int, account: str | None) -> list[int]:
                before = cpu_seconds(pid)
                samples = _samples(transports[where], size)
                if account is not None:
                    cpu[account] += cpu_seconds(pid) - before
                    counted[account] += size
                return samples

            for _ in range(rounds):
                rows[WITHOUT] += measure("plain", block, plain_pid, "plain")
                rows[IDLE] += measure("console", block, console_pid, "idle")
                with console_load(url) as done:
                    for part in range(SLICES):
                        rows[WITH] += measure("console", block // SLICES, console_pid, "loaded")
                        beside = measure("plain", block // SLICES, plain_pid, None)
                        rows[BESIDE] += beside
                        halves[part % 2].extend(beside)
                for key in ("requests", "events", "seconds"):
                    load[key] += float(done.get(key, 0))
                errors += done.get("errors", [])
                rows[AGAIN] += measure("plain", block, plain_pid, "plain")
        finally:
            for transport in transports.values():
                transport.disconnect()
    if errors:
        raise RuntimeError(f"console load: {errors[0]}")
    stats = {name: Stat.of(samples) for name, samples in rows.items()}
    resting = Stat.of(rows[WITHOUT] + rows[AGAIN])
    loaded, neighbour = stats[WITH], stats[BESIDE]
    noise = _spread(stats[WITHOUT], stats[AGAIN])
    noise_loaded = _spread(Stat.of(halves[0]), Stat.of(halves[1]))
    return {
        "stats": stats,
        "vs_beside_median": loaded.median_ns / neighbour.median_ns,
        "vs_beside_p99": loaded.p99_ns / neighbour.p99_ns,
        "vs_resting_median": loaded.median_ns / resting.median_ns,
        "vs_resting_p99": loaded.p99_ns / resting.p99_ns,
        "idle_median": stats[IDLE].median_ns / resting.median_ns,
        "idle_p99": stats[IDLE].p99_ns / resting.p99_ns,
        "noise_median": noise[0],
        "noise_p99": noise[1],
        "noise_loaded_median": noise_loaded[0],
        "noise_loaded_p99": noise_loaded[1],
        "cpu_us_per_apdu": {
            key: seconds / counted[key] * 1e6 for key, seconds in cpu.items() if counted[key]
        },
        "load_requests_per_second": load["requests"] / load["seconds"] if load["seconds"] else 0,
        "load_events": int(load["events"]),
        "concurrency": CONCURRENCY,
    }
