"""Watching a PC/SC reader for its card coming and going (SCardGetStatusChange).

pcscd reports presence changes of a real reader at once and of a vpcd reader within one
presence poll (about 400 ms). A card swapped between two looks counts as removed and inserted
(pcsc-lite's event counter, the upper 16 bits of the event state, moved on).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from readers.scard import (
    SCARD_E_TIMEOUT,
    SCARD_S_SUCCESS,
    STATE_CHANGED,
    STATE_PRESENT,
    STATE_UNAWARE,
    STATE_UNKNOWN,
    establish,
    pyscard,
    u32,
)

__all__ = ["PresenceWatcher"]

log = logging.getLogger(__name__)

STATE_MUTE = 0x0200  # SCARD_STATE_MUTE: a card pcscd cannot talk to counts as no card
_POLL_MS = 250  # how long one SCardGetStatusChange blocks: how fast stop() is seen

Change = Callable[[bool, bytes], None]
"""``change(present, atr)``: the card came (with its ATR) or went (``b""``)."""


def _present(event: int) -> bool:
    return bool(event & STATE_PRESENT) and not event & (STATE_MUTE | STATE_UNKNOWN)


class PresenceWatcher:
    """Calls ``on_change(present, atr)`` from a thread of its own whenever the card in
    ``reader`` goes (``False``, ``b""``) or comes (``True``, its ATR). The reader vanishing
    or pcscd going away count as removal; the watcher carries on and sees them come back."""

    def __init__(self, reader: str, on_change: Change) -> None:
        self.reader = reader
        self.on_change = on_change
        self.present: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, present: bool) -> PresenceWatcher:
        """Watch, starting from ``present`` (what the caller saw when it connected)."""
        self.present = present
        self._thread = threading.Thread(
            target=self._run, name=f"presence {self.reader}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def _report(self, present: bool, atr: bytes) -> None:
        self.present = present
        try:
            self.on_change(present, atr)
        except Exception:
            log.exception("presence of %r: on_change raised", self.reader)

    def _run(self) -> None:
        scard = pyscard()
        ctx: Any = None
        state = STATE_UNAWARE
        counter: int | None = None
        try:
            while not self._stop.is_set():
                if ctx is None:
                    try:
                        ctx = establish()
                    except Exception as exc:  # pcscd gone: the card is gone with it
                        log.debug("presence of %r: %s", self.reader, exc)
                        if self.present:
                            self._report(False, b"")
                        self._stop.wait(0.5)
                        continue
                    state, counter = STATE_UNAWARE, None
                hresult, states = scard.SCardGetStatusChange(ctx, _POLL_MS, [(self.reader, state)])
                code = u32(hresult)
                if code == SCARD_E_TIMEOUT:
                    continue
                if code != SCARD_S_SUCCESS:  # pcscd restarted, reader unplugged, ...
                    log.debug("presence of %r: SCardGetStatusChange %08X", self.reader, code)
                    scard.SCardReleaseContext(ctx)
                    ctx = None
                    if self.present:
                        self._report(False, b"")
                    self._stop.wait(0.5)
                    continue
                _, event, atr = states[0]
                state = event & ~STATE_CHANGED
                now = _present(event)
                seen = event >> 16
                swapped = counter is not None and seen != counter and now and bool(self.present)
                counter = seen
                if swapped and now:  # out and in again between two looks
                    self._report(False, b"")
                    self._report(True, bytes(atr))
                elif now != self.present:
                    self._report(now, bytes(atr) if now else b"")
        finally:
            if ctx is not None:
                scard.SCardReleaseContext(ctx)
