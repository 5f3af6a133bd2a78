"""Japanese era (元号) conversion for the dates JPKI and the card use.

Each era starts on the Gregorian date given in the table below. 明治 starts on 1868-01-25, the
Gregorian equivalent of the retroactive 明治元年1月1日; earlier dates are refused. Era years count
Gregorian years from the era's first year (元年 = 1), the convention used by the card's
照合番号B and by JPKI's birth-date field, whose month and day are always Gregorian.
"""

from __future__ import annotations

from datetime import date
from enum import Enum

__all__ = ["Era", "era_of", "era_yymmdd", "parse_san_birth_date", "san_birth_date"]


class Era(Enum):
    """A Japanese era: kanji name, romaji name, JPKI era digit and Gregorian first day."""

    MEIJI = ("明治", "Meiji", 1, date(1868, 1, 25))
    TAISHO = ("大正", "Taisho", 2, date(1912, 7, 30))
    SHOWA = ("昭和", "Showa", 3, date(1926, 12, 25))
    HEISEI = ("平成", "Heisei", 4, date(1989, 1, 8))
    REIWA = ("令和", "Reiwa", 5, date(2019, 5, 1))

    kanji: str
    romaji: str
    digit: int
    start: date

    def __init__(self, kanji: str, romaji: str, digit: int, start: date) -> None:
        self.kanji = kanji
        self.romaji = romaji
        self.digit = digit
        self.start = start

    @classmethod
    def from_digit(cls, digit: int) -> Era:
        """The era with JPKI era digit ``digit`` (1 = 明治 … 5 = 令和)."""
        for era in cls:
            if era.digit == digit:
                return era
        raise ValueError(f"no era has digit {digit} (1 = 明治 … 5 = 令和)")


def era_of(d: date) -> tuple[Era, int]:
    """The era ``d`` falls in and its era year (元年 = 1)."""
    for era in reversed(Era):
        if d >= era.start:
            return era, d.year - era.start.year + 1
    raise ValueError(f"{d.isoformat()} is before 明治 ({Era.MEIJI.start.isoformat()})")


def era_yymmdd(d: date) -> str:
    """``YYMMDD`` with the era year, as in 照合番号B: 1980-02-17 → ``550217``."""
    _, year = era_of(d)
    if year > 99:
        raise ValueError(f"era year {year} of {d.isoformat()} does not fit in two digits")
    return f"{year:02d}{d.month:02d}{d.day:02d}"


def san_birth_date(d: date) -> str:
    """JPKI SAN birth date ``EYYYYMMDD``: era digit, then the Gregorian date (``319800217``)."""
    era, _ = era_of(d)
    return f"{era.digit}{d.year:04d}{d.month:02d}{d.day:02d}"


def parse_san_birth_date(value: str) -> date:
    """Inverse of :func:`san_birth_date`; the era digit must match the date.

    Era digit ``0`` (生年月日不明) is refused: it has no date to return.
    """
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise ValueError(f"birth date {value!r} is not EYYYYMMDD (9 digits)")
    if value[0] == "0":
        raise ValueError(f"birth date {value!r} has era digit 0 (unknown); not supported")
    era = Era.from_digit(int(value[0]))
    try:
        d = date(int(value[1:5]), int(value[5:7]), int(value[7:9]))
    except ValueError as exc:
        raise ValueError(f"birth date {value!r} is not a valid Gregorian date") from exc
    if era_of(d)[0] is not era:
        raise ValueError(f"birth date {value!r}: era digit {era.digit} does not match the date")
    return d
