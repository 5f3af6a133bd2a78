"""Era conversion: every era boundary, the 照合番号B and SAN birth-date formats."""

from __future__ import annotations

from datetime import date

import pytest

from jpki.era import Era, era_of, era_yymmdd, parse_san_birth_date, san_birth_date

# (day before the era, era and year of that day), (first day of the era)
BOUNDARIES = [
    (date(1912, 7, 29), Era.MEIJI, 45, date(1912, 7, 30), Era.TAISHO),
    (date(1926, 12, 24), Era.TAISHO, 15, date(1926, 12, 25), Era.SHOWA),
    (date(1989, 1, 7), Era.SHOWA, 64, date(1989, 1, 8), Era.HEISEI),
    (date(2019, 4, 30), Era.HEISEI, 31, date(2019, 5, 1), Era.REIWA),
]


def test_era_table() -> None:
    assert [(e.kanji, e.romaji, e.digit, e.start) for e in Era] == [
        ("明治", "Meiji", 1, date(1868, 1, 25)),
        ("大正", "Taisho", 2, date(1912, 7, 30)),
        ("昭和", "Showa", 3, date(1926, 12, 25)),
        ("平成", "Heisei", 4, date(1989, 1, 8)),
        ("令和", "Reiwa", 5, date(2019, 5, 1)),
    ]
    assert [Era.from_digit(d) for d in range(1, 6)] == list(Era)
    for bad in (0, 6):
        with pytest.raises(ValueError, match="digit"):
            Era.from_digit(bad)


@pytest.mark.parametrize(("before", "old_era", "old_year", "first", "new_era"), BOUNDARIES)
def test_boundary(before: date, old_era: Era, old_year: int, first: date, new_era: Era) -> None:
    assert era_of(before) == (old_era, old_year)
    assert era_of(first) == (new_era, 1)
    assert first == new_era.start
    assert era_yymmdd(before) == f"{old_year:02d}{before:%m%d}"
    assert era_yymmdd(first) == f"01{first:%m%d}"
    assert san_birth_date(before) == f"{old_era.digit}{before:%Y%m%d}"
    assert san_birth_date(first) == f"{new_era.digit}{first:%Y%m%d}"
    for d in (before, first):
        assert parse_san_birth_date(san_birth_date(d)) == d


def test_meiji_start_and_before() -> None:
    assert era_of(date(1868, 1, 25)) == (Era.MEIJI, 1)
    assert era_of(date(1868, 12, 31)) == (Era.MEIJI, 1)
    assert era_of(date(1869, 1, 1)) == (Era.MEIJI, 2)
    assert san_birth_date(date(1868, 1, 25)) == "118680125"
    for fn in (era_of, era_yymmdd, san_birth_date):
        with pytest.raises(ValueError, match="before 明治"):
            fn(date(1868, 1, 24))


def test_examples_from_the_brief() -> None:
    assert era_yymmdd(date(1980, 2, 17)) == "550217"
    assert era_yymmdd(date(2019, 5, 1)) == "010501"
    assert era_yymmdd(date(2019, 4, 30)) == "310430"
    assert san_birth_date(date(1980, 2, 17)) == "319800217"


def test_demo_persona_collation_number_b() -> None:
    # 照合番号B = era YYMMDD of the birth date ‖ Gregorian expiry year ‖ security code.
    assert era_yymmdd(date(1980, 2, 17)) + "2035" + "2285" == "55021720352285"


def test_era_year_beyond_two_digits() -> None:
    assert era_of(date(2118, 1, 1)) == (Era.REIWA, 100)
    with pytest.raises(ValueError, match="two digits"):
        era_yymmdd(date(2118, 1, 1))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("419800217", "does not match"),  # 1980 is 昭和, not 平成
        ("520190430", "does not match"),  # the day before 令和
        ("019800217", "era digit 0"),
        ("619800217", "no era has digit"),
        ("31980021", "9 digits"),
        ("3198002170", "9 digits"),
        ("3198O0217", "9 digits"),
        ("３19800217", "9 digits"),
        ("319800230", "valid Gregorian"),
        ("118680124", "before 明治"),
    ],
)
def test_parse_san_birth_date_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_san_birth_date(value)
