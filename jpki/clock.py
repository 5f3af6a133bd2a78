"""One clock for the test PKI and personalization, so tests and testers can travel in time.

Everything time-dependent — which CA generation issues a card's certificates, when a revocation
is recorded, the ``thisUpdate`` / ``nextUpdate`` of CRLs, ``producedAt`` / ``thisUpdate`` of OCSP
responses — asks a :class:`Clock`. Three kinds:

* :class:`SystemClock` — real time (the default);
* :class:`FrozenClock` — stands still at a moment until told otherwise (tests);
* :class:`OffsetClock` — real time shifted so that it read ``moment`` when it was made, then runs
  on (``mynacard pki serve --at 2031-01-01``).

The process-wide default is :func:`default_clock`: whatever :func:`set_default_clock` (or the
:func:`using_clock` context manager) installed, else an :class:`OffsetClock` from the
``MYNACARD_AT`` environment variable (so a subprocess can be sent to another date), else real time.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Protocol

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "JST",
    "Clock",
    "FrozenClock",
    "OffsetClock",
    "SystemClock",
    "default_clock",
    "jst_day_end",
    "jst_day_start",
    "parse_moment",
    "set_default_clock",
    "using_clock",
]

JST: Final = dt.timezone(dt.timedelta(hours=9), "JST")


def jst_day_start(day: dt.date) -> dt.datetime:
    """00:00:00 JST on ``day``, as an aware UTC datetime (a certificate's notBefore)."""
    return dt.datetime.combine(day, dt.time(0, 0), JST).astimezone(dt.UTC)


def jst_day_end(day: dt.date) -> dt.datetime:
    """23:59:59 JST on ``day``, as an aware UTC datetime (JPKI's notAfter convention)."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), JST).astimezone(dt.UTC)


ENVIRONMENT_VARIABLE: Final = "MYNACARD_AT"


class Clock(Protocol):
    """Anything that tells the time as a timezone-aware datetime."""

    def now(self) -> dt.datetime:
        """The current moment (timezone-aware)."""
        ...


class SystemClock:
    """Real time, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"moment {moment} must be timezone-aware")
    return moment.astimezone(dt.UTC)


class FrozenClock:
    """A clock that reads ``moment`` until :meth:`set` or :meth:`advance` moves it."""

    def __init__(self, moment: dt.datetime) -> None:
        self._moment = _aware(moment)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._moment

    def set(self, moment: dt.datetime) -> None:
        """Jump to ``moment`` (backwards too)."""
        with self._lock:
            self._moment = _aware(moment)

    def advance(self, delta: dt.timedelta) -> None:
        """Move on by ``delta``."""
        with self._lock:
            self._moment += delta

    def __repr__(self) -> str:
        return f"FrozenClock({self.now().isoformat()})"


class OffsetClock:
    """Real time shifted so that it read ``moment`` when it was created."""

    def __init__(self, moment: dt.datetime) -> None:
        self._offset = _aware(moment) - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    def __repr__(self) -> str:
        return f"OffsetClock(now={self.now().isoformat()})"


def parse_moment(text: str) -> dt.datetime:
    """``2031-01-01`` → that day 00:00 JST; an ISO datetime without offset is JST too.

    ``2031-01-01T09:00:00Z`` and ``…+09:00`` keep their offsets. Raises ValueError naming the
    accepted forms.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(0, 0), JST)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (2031-01-01) or ISO datetime (2031-01-01T09:00:00+09:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=JST)


_default: Clock | None = None
_environment_clock: tuple[str, Clock] | None = None
_lock = threading.Lock()


def default_clock() -> Clock:
    """The installed clock, else ``$MYNACARD_AT`` (running on from that moment), else real time."""
    global _environment_clock  # noqa: PLW0603 - one process-wide clock is the point
    with _lock:
        if _default is not None:
            return _default
        configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
        if not configured:
            return SystemClock()
        if _environment_clock is None or _environment_clock[0] != configured:
            _environment_clock = (configured, OffsetClock(parse_moment(configured)))
        return _environment_clock[1]


def set_default_clock(clock: Clock | None) -> None:
    """Install ``clock`` as the process-wide default (``None``: back to env / real time)."""
    global _default  # noqa: PLW0603 - one process-wide clock is the point
    with _lock:
        _default = clock


@contextmanager
def using_clock(clock: Clock) -> Iterator[Clock]:
    """Install ``clock`` as the default for the duration of a ``with`` block."""
    with _lock:
        previous = _default
    set_default_clock(clock)
    try:
        yield clock
    finally:
        set_default_clock(previous)
