"""Two private pcscds for the relay tests: the demo card in the inner one's reader (standing in
for a real card in a real reader) and ``mynacard relay`` as a subprocess putting it into the
outer one's vpcd reader, which this process (and OpenSC) use.

This process's libpcsclite talks to the outer pcscd (its ``PCSCLITE_CSOCK_NAME``); the inner
one is only asked from subprocesses. The outer pcscd is not network-isolated: the relay is
another process and reaches its vpcd port on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from card_emulator import Card
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.vpcd import VpcdClient
from readers.scard import SOCKET_ENV, ask_in_subprocess

ROOT = Path(__file__).resolve().parents[2]
DEMO_PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
AUTH_PIN = "1234"


def wait_present(
    pcscd: PrivatePcscd, reader: str, present: bool = True, timeout: float = 10
) -> None:
    """Wait until ``pcscd`` (not this process's) reports a card in (or not in) ``reader``."""
    deadline = time.monotonic() + timeout
    while True:
        listing = ask_in_subprocess(pcscd.socket_path, timeout)
        if listing is not None and (reader in listing.present) == present:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"card {'not ' if present else ''}gone from {reader!r}")
        time.sleep(0.1)


@dataclass
class Relay:
    card: Card
    inner: PrivatePcscd
    inner_client: VpcdClient
    outer: PrivatePcscd
    process: subprocess.Popen[str]
    trace: Path
    log: Path

    @property
    def inner_reader(self) -> str:
        return self.inner.readers[0].name

    @property
    def reader(self) -> str:
        """The outer (virtual) reader a client uses."""
        return self.outer.readers[0].name

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.outer.env}


def start_env(inner: PrivatePcscd) -> dict[str, str]:
    """A relay's environment: its host side talks to the inner pcscd."""
    return {**os.environ, SOCKET_ENV: inner.socket_path, "PYTHONPATH": str(ROOT)}


def start_relay(inner: PrivatePcscd, args: list[str], log: Path) -> subprocess.Popen[str]:
    env = start_env(inner)
    argv = [sys.executable, "-m", "harness.cli", "relay", *args]
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    work = Path(tempfile.mkdtemp(prefix="myna-relay-"))
    try:
        with (
            PrivatePcscd(2, name="relay outer", isolate_network=False) as outer,
            PrivatePcscd(
                2, name="relay inner", socket_path=str(work / "inner.comm"), set_environ=False
            ) as inner,
        ):
            card = Card.from_persona(DEMO_PERSONA)
            reader = inner.readers[0]
            client = VpcdClient(card, reader.port, netns=reader.netns).start()
            wait_present(inner, reader.name)
            trace, log = work / "relay.jsonl", work / "relay.log"
            process = start_relay(
                inner,
                [
                    "--reader",
                    reader.name,
                    "--vpcd",
                    f"127.0.0.1:{outer.readers[0].port}",
                    "--trace",
                    str(trace),
                ],
                log,
            )
            try:
                try:
                    outer.wait_for_card(outer.readers[0].name, timeout=20)
                except TimeoutError:
                    stop_process(process)
                    pytest.fail(f"relay did not come up:\n{log.read_text()}")
                yield Relay(card, inner, client, outer, process, trace, log)
            finally:
                stop_process(process)
                client.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
