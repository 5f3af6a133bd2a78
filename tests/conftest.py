"""Shared fixtures: the demo persona and fresh in-memory cards."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from card_emulator import Card

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """One private test PKI per test run (subprocesses inherit it through the environment)."""
    if "MYNACARD_PKI" not in os.environ:
        base = Path(tempfile.mkdtemp(prefix="mynacard-pki-"))
        os.environ["MYNACARD_PKI"] = str(base)


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
