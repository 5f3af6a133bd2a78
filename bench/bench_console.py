"""Section 2b of the benchmark: the PC/SC round trip with the live console attached and busy.

The same card, served by this process as ``mynacard serve`` serves it, measured through
pyscard → pcscd → vpcd in alternating blocks: without the console (a plain
:class:`~harness.card_server.CardServer`) and with it (the card controlled by a
:class:`~harness.console.CardController`, a :class:`~harness.console.web.server.ConsoleServer`
over it, idle, and then with bench/console_load.py in another process looping
``GET /api/cards`` on several threads while it reads ``/api/events``). The rows are ratios to
the first.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench_core import PERSONA, ROOT, SELECT_JPKI, Stat, check, wait_ready

from card_emulator import Card
from harness.card_server import CardServer, Endpoint
from harness.console import CardController
from harness.console.web.server import ConsoleServer
from readers.card_side.reader_conf import VpcdReader
from readers.host_side.pcsc import PcscTransport

CONSOLE_LOAD = ROOT / "bench" / "console_load.py"
LOAD_THREADS = 8

WITHOUT = "SELECT JPKI-AP, no console"
IDLE = "SELECT JPKI-AP, console attached, idle"
WITH = f"SELECT JPKI-AP, console attached + load ({LOAD_THREADS} threads GET /api/cards + SSE)"


@contextlib.contextmanager
def console_load(url: str, threads: int = LOAD_THREADS) -> Iterator[dict[str, Any]]:
    """bench/console_load.py against ``url`` until the block ends; then the dict it printed."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(CONSOLE_LOAD), url, str(threads)],
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


def _samples(transport: PcscTransport, n: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        transport.transmit(SELECT_JPKI)
        out.append(clock() - t0)
    return out


def bench_console(
    readers: list[VpcdReader],
    n: int,
    connect: Callable[[str], PcscTransport],
    rounds: int = 4,
) -> dict[str, Any]:
    """Per-APDU latency without the console, with it attached and idle, and with it under load
    (``rounds`` alternating blocks of ``n // rounds`` each), the load's request rate and event
    count, and the ratios of loaded to no console."""
    plain_reader, console_reader = readers[0], readers[1]

    def endpoint(reader: VpcdReader) -> Endpoint:
        return Endpoint(reader.host, reader.port, reader.name, reader.netns)

    plain = CardServer([("plain", Card.from_persona(PERSONA))], endpoints=[endpoint(plain_reader)])
    plain.start()
    controller = CardController.serve(
        [("console", Card.from_persona(PERSONA))], endpoints=[endpoint(console_reader)]
    )
    without: list[int] = []
    idle: list[int] = []
    with_console: list[int] = []
    load: dict[str, float] = {"requests": 0, "events": 0, "seconds": 0.0}
    errors: list[str] = []
    try:
        with ConsoleServer(controller) as console:
            transports = {
                "plain": connect(plain_reader.name),
                "console": connect(console_reader.name),
            }
            try:
                for transport in transports.values():
                    check(transport.transmit(SELECT_JPKI), "SELECT via PC/SC")
                    _samples(transport, max(10, n // 10))  # warm up
                block = max(1, n // rounds)
                for _ in range(rounds):
                    without += _samples(transports["plain"], block)
                    idle += _samples(transports["console"], block)
                    with console_load(console.url) as done:
                        with_console += _samples(transports["console"], block)
                    for key in ("requests", "events", "seconds"):
                        load[key] += float(done.get(key, 0))
                    errors += done.get("errors", [])
            finally:
                for transport in transports.values():
                    transport.disconnect()
    finally:
        controller.close()
        plain.stop()
    if errors:
        raise RuntimeError(f"console load: {errors[0]}")
    base, busy = Stat.of(without), Stat.of(with_console)
    return {
        "stats": {WITHOUT: base, IDLE: Stat.of(idle), WITH: busy},
        "ratio_median": busy.median_ns / base.median_ns,
        "ratio_p99": busy.p99_ns / base.p99_ns,
        "load_requests_per_second": load["requests"] / load["seconds"] if load["seconds"] else 0,
        "load_events": int(load["events"]),
        "threads": LOAD_THREADS,
    }
