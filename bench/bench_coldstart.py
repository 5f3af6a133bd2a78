"""Benchmark row: ``mynacard serve`` cold start, from the command's start to a card a pyscard
client sees.

Each run starts ``mynacard serve --private-socket`` as a subprocess (a fresh interpreter, so
every import, the PKI opening, the personalization and pcscd's start are counted) with
``PCSCLITE_CSOCK_NAME`` set to a path of ours, which ``serve`` then uses for its pcscd. A
probe process started before it (its own start-up not counted) waits for that socket, then
for the first reader ``SCardListReaders`` lists, then on ``SCardGetStatusChange`` until a card
is present, and prints the CLOCK_MONOTONIC time it saw it. ``serve`` is then stopped with
SIGTERM by its PID and waited for. The PKI directory (``$MYNACARD_PKI``) is a temporary one,
created by an untimed first run.

    .venv/bin/python bench/bench_coldstart.py [-n RUNS]

Where the time went (issue 18; one shared 2-core machine at load 3-4, so every figure is about
twice an idle machine's; phases timed in the serving process, from the parent's start):

=====================================  ===============  ===============================
phase                                  before           after
=====================================  ===============  ===============================
interpreter, imports to pcscd's start  ~0.95 s (all      ~0.25 s (serve's parser and
                                       commands)        pcscd modules only)
card emulator, PKI, cryptography       in the above     ~0.3 s, while pcscd starts
PKI opening (CA keys)                  ~8 ms            ~4 ms (no RSA re-validation)
personalization of the demo card       1.0-1.7 s (six   ~0.15 s (kept card keys; PIL
                                       RSA key gens)    loads one plugin, not ~40);
                                                        0.06-0.09 s with its two
                                                        certificates recorded in one
                                                        transaction (PkiStore.deferred)
pcscd start and first listing          ~25 ms           ~25 ms (overlapped)
wait for pcscd's presence poll         ~400 ms (always  up to 400 ms after the card is
                                       a full period)   in: the poll grid starts at pcscd
=====================================  ===============  ===============================

Medians of this benchmark on that machine: 2.67 s before, 1.07-1.09 s after. Later runs: 0.51 s
on an idle machine, 0.52-0.61 s at load 2-4, the demo card made 0.21-0.35 s after pcscd starts
(0.29-0.41 s before its two certificates were recorded in one transaction: sometimes too late
for the poll at 0.4 s).
pcscd polls at its start (the card cannot be in yet: vpcd's port opens microseconds before) and
then every 400 ms, so the card is seen at the first poll after it is in: 0.4 s after pcscd
starts when the card is made within 0.4 s of it, 0.8 s when not (the case on the loaded
machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_core import ROOT, read_line

PROBE = r"""
import os, sys, time
from smartcard import scard
path = os.environ["PCSCLITE_CSOCK_NAME"]
print("ready", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(path):
    if time.monotonic() > deadline:
        sys.exit("socket never appeared")
    time.sleep(0.002)
rv, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
while rv != scard.SCARD_S_SUCCESS:
    time.sleep(0.002)
    rv, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
rv, names = scard.SCardListReaders(ctx, [])
while rv != scard.SCARD_S_SUCCESS or not names:
    time.sleep(0.002)
    rv, names = scard.SCardListReaders(ctx, [])
state = scard.SCARD_STATE_UNAWARE
while True:
    rv, states = scard.SCardGetStatusChange(ctx, 30000, [(names[0], state)])
    if rv != scard.SCARD_S_SUCCESS:
        sys.exit(f"SCardGetStatusChange: {rv:#x}")
    if states[0][1] & scard.SCARD_STATE_PRESENT:
        print(repr(time.monotonic()), flush=True)
        break
    state = states[0][1] & ~scard.SCARD_STATE_CHANGED
scard.SCardReleaseContext(ctx)
"""

SERVE = [sys.executable, "-m", "harness.cli", "serve", "--private-socket"]


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM our own child by its PID, then wait (SIGKILL after 15 s)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def one_run(work: Path, env: dict[str, str]) -> float:
    """Seconds from starting ``serve`` to the probe seeing its card."""
    socket_dir = Path(tempfile.mkdtemp(prefix="cs-", dir=work))
    os.chmod(socket_dir, 0o755)  # noqa: S103 - pcscd's socket directory, like /run/pcscd
    env = {**env, "PCSCLITE_CSOCK_NAME": str(socket_dir / "pcscd.comm")}
    probe = subprocess.Popen(  # noqa: S603 - our own interpreter and snippet
        [sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, text=True
    )
    serve: subprocess.Popen[str] | None = None
    try:
        if read_line(probe, 30) != "ready":
            raise RuntimeError("probe did not start")
        start = time.monotonic()
        serve = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            SERVE, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        seen = read_line(probe, 60)
        if not seen:
            raise RuntimeError("the probe saw no card within 60 s")
        return float(seen) - start
    finally:
        if serve is not None:
            _stop(serve)
        _stop(probe)
        shutil.rmtree(socket_dir, ignore_errors=True)


def bench_coldstart(runs: int) -> dict[str, float]:
    """Median, minimum and maximum seconds of ``runs`` cold starts (after one untimed run that
    creates the temporary PKI directory)."""
    work = Path(tempfile.mkdtemp(prefix="myna-bench-coldstart-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MYNACARD_PKI": str(work / "pki")}
        env.pop("PCSCLITE_CSOCK_NAME", None)
        first = one_run(work, env)  # creates the PKI (CA keys): not a cold start of serve
        samples = [one_run(work, env) for _ in range(runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": float(runs),
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "first_run_s": first,
    }


def main() -> int:
    """Print the figures of ``-n`` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=7, help="timed runs (default 7)")
    result = bench_coldstart(parser.parse_args().n)
    print(
        f"serve cold start to a visible card: median {result['median_s']:.3f} s "
        f"(min {result['min_s']:.3f}, max {result['max_s']:.3f}; {result['runs']:.0f} runs; "
        f"first run, creating the PKI: {result['first_run_s']:.3f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
