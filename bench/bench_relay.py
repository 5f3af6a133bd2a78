"""Section 2c of the benchmark: the PC/SC round trip through ``mynacard relay`` vs direct.

The relayed card stands in for a real card in a real reader: the demo card in a reader of a
second private pcscd (the "inner" one, served by bench/card_host.py), relayed by
``mynacard relay`` (a subprocess whose libpcsclite talks to the inner pcscd) into a vpcd reader
of the benchmark's own pcscd. The baseline is the same card served directly into a reader of
the benchmark's pcscd, measured interleaved with the relayed one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_core import ROOT, SELECT_JPKI, Stat

from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import VpcdReader
from readers.host_side.pcsc import PcscTransport
from readers.scard import SOCKET_ENV

DIRECT = "direct: our card (SELECT JPKI-AP)"
RELAYED = "through mynacard relay (SELECT JPKI-AP)"

Connect = Callable[[str, float], PcscTransport]
Roundtrip = Callable[[dict[str, tuple[PcscTransport, bytes]], int], dict[str, Stat]]
CardHost = Callable[[list[str]], contextlib.AbstractContextManager[subprocess.Popen[str]]]


@contextlib.contextmanager
def relay_process(inner: PrivatePcscd, reader: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """``mynacard relay --reader READER --vpcd 127.0.0.1:PORT`` with its host side on
    ``inner``, until the block ends (then SIGTERM to our own child)."""
    env = {**os.environ, SOCKET_ENV: inner.socket_path, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "harness.cli", "relay", "--reader", reader]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
        [*argv, "--vpcd", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def bench_relay(
    readers: list[VpcdReader], n: int, connect: Connect, roundtrip: Roundtrip, host: CardHost
) -> dict[str, Stat]:
    """SELECT round trips on ``readers[0]`` (the card served directly) and ``readers[1]`` (the
    same kind of card through the relay), interleaved."""
    direct, outer = readers[0], readers[1]
    work = tempfile.mkdtemp(prefix="myna-bench-relay-")
    try:
        with (
            PrivatePcscd(
                2,
                name="bench inner",
                socket_path=str(Path(work) / "inner.comm"),
                set_environ=False,
                isolate_network=False,
            ) as inner,
            host([f"ours:{direct.port}", f"ours:{inner.readers[0].port}"]),
            relay_process(inner, inner.readers[0].name, outer.port) as relay,
        ):
            transports = {
                DIRECT: (connect(direct.name, 10.0), SELECT_JPKI),
            }
            try:
                transports[RELAYED] = (connect(outer.name, 30.0), SELECT_JPKI)
            except Exception as exc:
                relay.terminate()
                _, err = relay.communicate(timeout=10)
                raise RuntimeError(f"relay did not come up: {exc}\n{err}") from exc
            try:
                return roundtrip(transports, n)
            finally:
                for transport, _ in transports.values():
                    transport.disconnect()
    finally:
        shutil.rmtree(work, ignore_errors=True)
