"""Section 4's throughput and memory through ``mynacard serve`` itself (issue 18).

One ``serve --private-socket`` process holds the demo persona's card in every reader: 16 cards
on one pcscd for the 1-, 2-, 4- and 16-reader rows, 64 cards on 4 pcscd for the 64-reader row,
1 card for the memory baseline. The clients run in processes of their own
(bench/pcsc_clients.py, one per pcscd, one pyscard thread per reader), started together. CPU
per APDU is read from /proc for ``serve`` (the card process) and its pcscd instances; resident
memory (VmRSS) of ``serve`` after its throughput run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_core import PERSONA, ROOT, read_line, wait_ready

from harness.process_usage import cpu_seconds, rss_mib

CLIENTS = ROOT / "bench" / "pcsc_clients.py"
SERVE = [sys.executable, "-m", "harness.cli", "serve", "--private-socket"]
_PCSCD = re.compile(r"^pcscd \(pid (\d+)\) serving (\S+?)(?::|$)")


@dataclass
class Served:
    """A running ``serve``: its PID and, per pcscd, (pid, socket)."""

    proc: subprocess.Popen[str]
    pcscd: list[tuple[int, str]] = field(default_factory=list)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM our own child by its PID, then wait (SIGKILL after 20 s)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)


@contextlib.contextmanager
def serve(cards: int, env: dict[str, str]) -> Iterator[Served]:
    """``mynacard serve`` with ``cards`` demo cards until the block ends."""
    personas = [arg for _ in range(cards) for arg in ("--persona", str(PERSONA))]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
        [*SERVE, *personas], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    served = Served(proc)
    watchdog = threading.Timer(120, proc.kill)  # our own child, if it never gets ready
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocking reads: several lines may come in one chunk
            found = _PCSCD.match(line)
            if found:
                served.pcscd.append((int(found[1]), found[2]))
            if line.startswith("Ctrl-C"):
                break
        else:
            raise RuntimeError(f"mynacard serve ({cards} cards) did not get ready")
        watchdog.cancel()
        yield served
    finally:
        watchdog.cancel()
        _stop(proc)


def clients_run(
    served: Served, per_socket: list[int], seconds: float
) -> tuple[float, dict[str, float]]:
    """APDU/s of clients on ``per_socket[i]`` readers of pcscd ``i``, and CPU µs per APDU."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for (_, socket_path), count in zip(served.pcscd, per_socket, strict=False):
            env = {**os.environ, "PCSCLITE_CSOCK_NAME": socket_path}
            procs.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, str(CLIENTS), str(count)],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            wait_ready(proc, "pcsc clients")
        pids = [served.proc.pid, *(pid for pid, _ in served.pcscd), *(p.pid for p in procs)]
        before = [cpu_seconds(pid) for pid in pids]
        t0 = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        time.sleep(seconds)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        elapsed = time.perf_counter() - t0
        used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        total = 0
        for proc in procs:
            answer = read_line(proc, 30)
            if not answer.isdigit():
                raise RuntimeError(f"pcsc clients: {answer or 'no answer'}")
            total += int(answer)
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its handle
                proc.wait(5)
    n_pcscd = len(served.pcscd)
    cpu = {
        "pcscd µs/APDU": sum(used[1 : 1 + n_pcscd]) / total * 1e6,
        "card process µs/APDU": used[0] / total * 1e6,
        "client process µs/APDU": sum(used[1 + n_pcscd :]) / total * 1e6,
        "cores busy": sum(used) / elapsed,
    }
    return total / elapsed, cpu


def bench_serve(
    seconds: float,
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float]]:
    """Throughput rows (name → APDU/s), their CPU per APDU, and ``serve``'s memory (MiB)."""
    rates: dict[str, float] = {}
    cpus: dict[str, dict[str, float]] = {}
    memory: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="myna-bench-serve-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MYNACARD_PKI": str(work / "pki")}
    env.pop("PCSCLITE_CSOCK_NAME", None)
    try:
        with serve(1, env) as served:
            rates["1 card, 1 reader (memory baseline)"], _ = clients_run(served, [1], seconds)
            memory["serve, 1 card"] = rss_mib(served.proc.pid)
        with serve(16, env) as served:
            for k in (1, 2, 4, 16):
                name = f"{k} reader(s)"
                rates[name], cpus[name] = clients_run(served, [k], seconds)
            memory["serve, 16 cards"] = rss_mib(served.proc.pid)
        with serve(64, env) as served:
            if len(served.pcscd) != 4:
                raise RuntimeError(f"64 cards on {len(served.pcscd)} pcscd, not 4")
            name = "64 reader(s), 4 pcscd"
            rates[name], cpus[name] = clients_run(served, [16] * 4, seconds)
            memory["serve, 64 cards"] = rss_mib(served.proc.pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del rates["1 card, 1 reader (memory baseline)"]
    return rates, cpus, memory


if __name__ == "__main__":
    rates, cpus, memory = bench_serve(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} APDU/s {cpus[name]}")
    print(memory)
