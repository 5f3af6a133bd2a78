"""The card side of the PC/SC benchmarks, in a process of its own.

    .venv/bin/python bench/card_host.py KIND:PORT [KIND:PORT …]

KIND is ``ours`` (the demo persona's card, a :class:`~readers.card_side.vpcd.VpcdClient` per
slot on the process's one card loop, as ``mynacard serve`` does), ``echo``
(:class:`~readers.card_side.virtual_card.EchoCard`, same client) or ``vicc`` (vsmartcard's own
built-in ISO 7816 card in vsmartcard's own ``VirtualICC`` loop, only with our ``TCP_QUICKACK``
socket wrapper; see :mod:`readers.card_side.vicc`). Every card is inserted into the vpcd slot at
``127.0.0.1:PORT``; then one line ``ready`` is printed (or ``error: …`` and exit status 1), and
the cards stay in until standard input closes.

Why a separate process: a card server and the programs that use the card are separate
processes in real use, and in one Python process the card loop and the client threads compete
for one interpreter lock (see bench/run.py's section 4).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from card_emulator import Card
from readers.card_side.vicc import ViccRunner, load_virtualsmartcard
from readers.card_side.virtual_card import EchoCard
from readers.card_side.vpcd import VpcdClient

ROOT = Path(__file__).resolve().parent.parent

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
KINDS = ("ours", "echo", "vicc")


class BuiltinViccRunner(ViccRunner):
    """A :class:`ViccRunner` that keeps the library's own card (its ``Iso7816OS``) instead of
    putting one of ours in; everything else (connection, QUICKACK wrapper, loop) is the same."""

    def __init__(self, port: int) -> None:
        super().__init__(EchoCard(), port)  # the card argument is never used
        self.builtin_os: Any = None

    def _construct(self, library: Any) -> Any:
        icc = super()._construct(library)
        if icc is not None:
            self.builtin_os = icc.os
        return icc

    def connect(self) -> Any:
        icc = super().connect()
        icc.os = self.builtin_os
        return icc


def _parse(spec: str) -> tuple[str, int]:
    kind, _, port = spec.partition(":")
    if kind not in KINDS or not port.isdigit():
        raise ValueError(f"bad card spec {spec!r}: expected one of {', '.join(KINDS)} :PORT")
    return kind, int(port)


def main(argv: list[str]) -> int:
    started: list[VpcdClient | ViccRunner] = []
    try:
        specs = [_parse(spec) for spec in argv]
        if any(kind == "vicc" for kind, _ in specs):
            load_virtualsmartcard()
        for kind, port in specs:
            if kind == "vicc":
                started.append(BuiltinViccRunner(port).start())
            else:
                card = Card.from_persona(PERSONA) if kind == "ours" else EchoCard()
                started.append(VpcdClient(card, port).start(timeout=10.0))
    except Exception as exc:  # reported to the parent, which names it
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
        for each in started:
            each.stop()
        return 1
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our standard input
    for each in started:
        each.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
