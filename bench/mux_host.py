"""Experiment: every card served by ONE thread (``selectors``) instead of a thread per card.

    .venv/bin/python bench/mux_host.py PORT [PORT …]

Inserts the demo persona's card into the vpcd slot at each ``127.0.0.1:PORT``, prints
``ready`` and serves until standard input closes. The vpcd protocol is the one
:mod:`readers.card_side.vpcd_frames` defines (length-prefixed frames; control bytes 00/01/02
without a reply, 04 answered with the ATR; longer frames are C-APDUs), with ``TCP_QUICKACK``
re-armed before every ``recv`` and again after each answer. It has none of
:class:`~readers.card_side.vpcd.VpcdClient`'s
extras (insertion and removal on demand, hooks, connection retries, timers), so it is a
measurement of what one bare serving thread can do: the experiment issue 18 started from, which
became :mod:`readers.card_side.card_loop`; ``bench/run.py`` reports it beside ``mynacard serve``.
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys
import threading
from pathlib import Path

from card_emulator import Card

ROOT = Path(__file__).resolve().parent.parent

PERSONA = ROOT / "vectors" / "personas" / "demo.toml"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class Slot:
    """One card's connection: received bytes are buffered until whole frames are in."""

    def __init__(self, card: Card, port: int) -> None:
        self.card = card
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        self.sock.settimeout(None)  # blocking: recv only when readable, sendall whole answers
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack()
        self.pending = bytearray()

    def _quickack(self) -> None:
        if _QUICKACK is not None:
            self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def readable(self) -> bool:
        """Take what has arrived and answer every whole frame; False once vpcd has gone."""
        self._quickack()
        try:
            data = self.sock.recv(65537)
        except OSError:
            return False
        if not data:
            return False
        pending = self.pending
        pending += data
        while len(pending) >= 2:
            size = (pending[0] << 8) | pending[1]
            if len(pending) < 2 + size:
                break
            message = bytes(pending[2 : 2 + size])
            del pending[: 2 + size]
            answer = self._handle(message)
            if answer is not None:
                self.sock.sendall(struct.pack(">H", len(answer)) + answer)
        self._quickack()
        return True

    def _handle(self, message: bytes) -> bytes | None:
        if len(message) != 1:
            return self.card.transmit(message)
        control = message[0]
        if control == 0x04:
            return self.card.atr
        if control == 0x00:
            self.card.power_off()
        elif control == 0x01:
            self.card.power_on()
        elif control == 0x02:
            self.card.reset()
        return None


def main(argv: list[str]) -> int:
    try:
        slots = [Slot(Card.from_persona(PERSONA), int(port)) for port in argv]
    except (OSError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
        return 1
    selector = selectors.DefaultSelector()
    for slot in slots:
        selector.register(slot.sock, selectors.EVENT_READ, slot)
    done = threading.Event()

    def wait_for_eof() -> None:  # the parent closes our stdin to stop us
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print("ready", flush=True)
    while not done.is_set() and selector.get_map():
        for key, _ in selector.select(0.2):
            slot = key.data
            if not slot.readable():
                selector.unregister(slot.sock)
                slot.sock.close()
    for slot in slots:
        slot.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
