"""One private pcscd for the whole integration package, demo cards served over vpcd.

The pcscd starts before this package's first in-process PC/SC call (libpcsclite reads
``PCSCLITE_CSOCK_NAME`` once per process) and stops, by PID, when the package is done, so
the per-module pcscds of ``tests/readers`` can bind the same private socket afterwards.

Reader layout, in PC/SC order (which is pcscd's reader.conf.d directory order, not
necessarily A, B, C): readers 0-3 hold four demo cards for the whole package (OpenSC's
PKCS#11 module only gives slots to the first four readers: 4 slots per reader, 16 in all);
readers 4 and 5 are for cards a test plugs in and out itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apdu import tlv
from card_emulator import Card
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import VpcdReader
from readers.card_side.virtual_card import VirtualCard
from readers.card_side.vpcd import VpcdClient
from readers.host_side.pcsc import list_readers
from readers.scard import wait_for_card

ROOT = Path(__file__).resolve().parents[2]
DEMO_PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
AUTH_PIN = "1234"
SIGN_PASSWORD = "ABC123"
READERS = 6
DEMO_CARDS = 4
PKCS11_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"


@dataclass
class Served:
    """A card in a reader, with every exchange the card answered (command, response)."""

    card: VirtualCard
    client: VpcdClient
    reader: VpcdReader
    index: int  # position in the PC/SC reader list (opensc-tool -r)
    exchanges: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.reader.name

    def jpki_file(self, fid: int) -> bytes:
        assert isinstance(self.card, Card)
        return self.card.content.application("jpki").files[fid]


def der_object(data: bytes) -> bytes:
    """The BER object at the start of an EF (the certificate, without any filler)."""
    _, header, length = tlv.read_header(data[:8])
    return data[: header + length]


def serve(card: VirtualCard, reader: VpcdReader, index: int, *, wait: bool = True) -> Served:
    """Insert ``card`` into ``reader`` and (with ``wait``) wait until pcscd reports it."""
    served = Served(card, VpcdClient(card, reader.port, netns=reader.netns), reader, index)
    served.client.on_exchange = lambda record: (
        None if record.event else served.exchanges.append((record.command, record.response))
    )
    served.client.start()
    if wait:
        assert wait_for_card(reader.name) == card.atr
    return served


def unplug(*cards: Served) -> None:
    """Remove the cards and wait until pcscd reports every reader empty."""
    for served in cards:
        served.client.stop()
    for served in cards:
        wait_for_card(served.name, present=False)


@pytest.fixture(scope="package")
def pcsc() -> Iterator[PrivatePcscd]:
    with PrivatePcscd(READERS, name="myna it") as manager:
        yield manager


@pytest.fixture(scope="package")
def readers(pcsc: PrivatePcscd) -> list[VpcdReader]:
    """The private readers in PC/SC (and OpenSC) order."""
    by_name = {reader.name: reader for reader in pcsc.readers}
    ordered = [by_name[name] for name in list_readers() if name in by_name]
    assert len(ordered) == READERS
    return ordered


@pytest.fixture(scope="package")
def demo_cards(readers: list[VpcdReader]) -> Iterator[list[Served]]:
    """Four fresh demo cards (in memory) in readers 0-3 for the whole package."""
    served = [
        serve(Card.from_persona(DEMO_PERSONA), reader, index, wait=False)
        for index, reader in enumerate(readers[:DEMO_CARDS])
    ]
    for card in served:  # the presence polls of the four readers overlap
        assert wait_for_card(card.name) == card.card.atr
    yield served
    unplug(*served)


@pytest.fixture
def spare_readers(readers: list[VpcdReader]) -> list[tuple[int, VpcdReader]]:
    """(PC/SC index, reader) of the readers no package-wide card occupies."""
    return list(enumerate(readers))[DEMO_CARDS:]


@pytest.fixture
def plug(
    spare_readers: list[tuple[int, VpcdReader]],
) -> Iterator[Callable[[VirtualCard], Served]]:
    """``plug(card)`` inserts a card into the next spare reader; all are removed afterwards."""
    plugged: list[Served] = []

    def insert(card: VirtualCard) -> Served:
        index, reader = spare_readers[len(plugged)]
        served = serve(card, reader, index)
        plugged.append(served)
        return served

    yield insert
    unplug(*(served for served in plugged if served.client.running))


@pytest.fixture
def tool_env(pcsc: PrivatePcscd) -> dict[str, str]:
    """Environment for PC/SC subprocesses (OpenSC, openssl, pcsc_scan): the private socket."""
    return {**os.environ, **pcsc.env}


ToolRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_tool(tool_env: dict[str, str], tmp_path: Path) -> ToolRunner:
    """``run_tool("pkcs15-tool", ...)`` → CompletedProcess (text), in ``tmp_path``."""

    def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if shutil.which(argv[0]) is None:
            pytest.skip(f"{argv[0]} not installed")
        done = subprocess.run(
            argv,
            env=tool_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(argv)} exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    return run


class MuteCard:
    """Not a My Number card: a plain ATR, and 6A82 to every SELECT (6D00 otherwise)."""

    def __init__(self) -> None:
        body = bytes([0x88, 0x01]) + b"NOTMYNA!"
        tck = 0
        for byte in body:
            tck ^= byte
        self._atr = bytes([0x3B]) + body + bytes([tck])

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, command: bytes) -> bytes:
        return b"\x6a\x82" if len(command) >= 4 and command[1] == 0xA4 else b"\x6d\x00"

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def reset(self) -> None:
        pass
