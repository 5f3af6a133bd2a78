"""個人番号 (Individual Number) check digit: 行政手続における特定の個人を識別するための番号の
利用等に関する法律施行令 第八条 (the statutory mod-11 rule)."""

from __future__ import annotations


def check_digit(first_eleven: str) -> int:
    """The check digit for the first 11 digits of a 個人番号."""
    if len(first_eleven) != 11 or not first_eleven.isascii() or not first_eleven.isdigit():
        raise ValueError("the check digit is computed over exactly 11 ASCII digits")
    total = 0
    for n, digit in enumerate(reversed(first_eleven), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(digit) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_valid(number: str) -> bool:
    """True for 12 ASCII digits whose last digit is the right check digit."""
    return (
        len(number) == 12
        and number.isascii()
        and number.isdigit()
        and check_digit(number[:11]) == int(number[11])
    )
