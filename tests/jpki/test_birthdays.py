"""The n-th-birthday rule (発行日後 n 回目の誕生日) shared by certificates and cards."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki.profile import birthday_in, nth_birthday_after

LEAP_DAY_BIRTH = date(2000, 2, 29)


@pytest.mark.parametrize(
    ("year", "birth", "expected"),
    [
        (2021, date(1980, 5, 2), date(2021, 5, 2)),
        (2020, LEAP_DAY_BIRTH, date(2020, 2, 29)),  # leap year: the day itself
        (2021, LEAP_DAY_BIRTH, date(2021, 2, 28)),  # common year: 28 February
        (2100, LEAP_DAY_BIRTH, date(2100, 2, 28)),  # divisible by 100, not by 400: common
        (2400, LEAP_DAY_BIRTH, date(2400, 2, 29)),
        (2021, date(1990, 2, 28), date(2021, 2, 28)),
        (2020, date(1990, 3, 1), date(2020, 3, 1)),
    ],
)
def test_birthday_in(year: int, birth: date, expected: date) -> None:
    assert birthday_in(year, birth) == expected


@pytest.mark.parametrize(
    ("issued", "birth", "n", "expected"),
    [
        # an ordinary birthday; issued before, on and after it
        (date(2019, 5, 1), date(1980, 5, 2), 5, date(2023, 5, 2)),
        (date(2019, 5, 2), date(1980, 5, 2), 5, date(2024, 5, 2)),  # the issue day: not counted
        (date(2019, 5, 3), date(1980, 5, 2), 5, date(2024, 5, 2)),
        (date(2019, 5, 2), date(1980, 5, 2), 1, date(2020, 5, 2)),
        # born 29 February, issued in a common year (2021)
        (date(2021, 2, 27), LEAP_DAY_BIRTH, 1, date(2021, 2, 28)),
        (date(2021, 2, 28), LEAP_DAY_BIRTH, 1, date(2022, 2, 28)),  # 28 Feb is that birthday
        (date(2021, 3, 1), LEAP_DAY_BIRTH, 1, date(2022, 2, 28)),
        (date(2021, 3, 1), LEAP_DAY_BIRTH, 3, date(2024, 2, 29)),  # lands in a leap year
        (date(2021, 3, 1), LEAP_DAY_BIRTH, 4, date(2025, 2, 28)),
        # born 29 February, issued in a leap year (2020)
        (date(2020, 2, 28), LEAP_DAY_BIRTH, 1, date(2020, 2, 29)),
        (date(2020, 2, 29), LEAP_DAY_BIRTH, 1, date(2021, 2, 28)),  # the issue day: not counted
        (date(2020, 3, 1), LEAP_DAY_BIRTH, 1, date(2021, 2, 28)),
        (date(2020, 3, 1), LEAP_DAY_BIRTH, 10, date(2030, 2, 28)),
        # born 28 February / 1 March, issued around the end of February
        (date(2020, 2, 28), date(1990, 2, 28), 1, date(2021, 2, 28)),
        (date(2020, 2, 29), date(1990, 2, 28), 1, date(2021, 2, 28)),
        (date(2021, 2, 28), date(1990, 2, 28), 1, date(2022, 2, 28)),
        (date(2020, 2, 29), date(1990, 3, 1), 1, date(2020, 3, 1)),
        (date(2021, 2, 28), date(1990, 3, 1), 1, date(2021, 3, 1)),
        (date(2021, 3, 1), date(1990, 3, 1), 1, date(2022, 3, 1)),
        (date(2020, 3, 1), date(1990, 3, 1), 10, date(2030, 3, 1)),
    ],
)
def test_nth_birthday_after(issued: date, birth: date, n: int, expected: date) -> None:
    assert nth_birthday_after(issued, birth, n) == expected


def test_n_must_be_positive() -> None:
    with pytest.raises(ValueError, match="1 or more"):
        nth_birthday_after(date(2020, 1, 1), date(1980, 1, 1), 0)


def _is_birthday(day: date, birth: date) -> bool:
    """Whether ``day`` is a birthday, from the rule as stated (not from the code under test)."""
    if (birth.month, birth.day) == (2, 29):
        if calendar.isleap(day.year):
            return (day.month, day.day) == (2, 29)
        return (day.month, day.day) == (2, 28)
    return (day.month, day.day) == (birth.month, birth.day)


_DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2150, 12, 31))
_BIRTHS = st.one_of(st.just(LEAP_DAY_BIRTH), st.just(date(1996, 2, 29)), _DATES)


@given(issued=_DATES, birth=_BIRTHS, n=st.integers(min_value=1, max_value=12))
def test_nth_birthday_after_properties(issued: date, birth: date, n: int) -> None:
    result = nth_birthday_after(issued, birth, n)
    assert result > issued
    if (birth.month, birth.day) == (2, 29):
        assert (result.month, result.day) == ((2, 29) if calendar.isleap(result.year) else (2, 28))
    else:
        assert (result.month, result.day) == (birth.month, birth.day)
    days = (result - issued).days
    birthdays = [
        day
        for day in (issued + timedelta(days=k) for k in range(1, days + 1))
        if _is_birthday(day, birth)
    ]
    assert len(birthdays) == n and birthdays[-1] == result  # the n-th birthday after issued
