"""Shared fixtures: the demo persona and fresh in-memory cards."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from card_emulator import Card

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]  # tests/console/test_client.py runs the plugin in a pytest of its own


MADE_HERE = "MYNACARD_TEST_PKI_MADE"
"""Set to the PKI directory this conftest made, so a pytest-xdist worker knows it is not the
user's: the workers inherit the controller's environment."""


def pytest_configure(config: pytest.Config) -> None:
    """One private test PKI per test run, and per pytest-xdist worker (subprocesses inherit it
    through the environment). Workers must not share one: a test watching the PKI directory
    for changes (the bad-input corpus) would see another worker's cards being issued."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    current = os.environ.get("MYNACARD_PKI")
    ours = current is not None and os.environ.get(MADE_HERE) == current
    if current is None or (worker and ours):
        base = tempfile.mkdtemp(prefix=f"mynacard-pki-{worker or 'run'}-")
        os.environ["MYNACARD_PKI"] = os.environ[MADE_HERE] = base


DEMO_PERSONA = ROOT / "vectors" / "personas" / "demo.toml"

Transmit = Callable[[str | bytes], tuple[bytes, int]]


def exchange(card: Card, command: str | bytes) -> tuple[bytes, int]:
    """Send hex text or bytes; return (data, SW)."""
    raw = bytes.fromhex(command.replace(" ", "")) if isinstance(command, str) else command
    response = card.transmit(raw)
    return response[:-2], int.from_bytes(response[-2:], "big")


@pytest.fixture
def demo_persona() -> Path:
    return DEMO_PERSONA


@pytest.fixture
def card() -> Card:
    """A fresh, fully personalized demo card in memory (strict: internal errors raise)."""
    return Card.from_persona(DEMO_PERSONA, strict=True)


@pytest.fixture
def tx(card: Card) -> Transmit:
    """``tx("00 A4 ...")`` → (data, SW) against the ``card`` fixture."""
    return lambda command: exchange(card, command)


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state in this process's network namespace (/proc/net/tcp{,6})."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
