"""照合番号B and the 券面AP birth-date key, derived from Gregorian dates (card-facts §9)."""

from __future__ import annotations

import datetime as dt

from jpki.era import era_yymmdd


def birth_date_key(birth_date: dt.date) -> str:
    """``YYMMDD`` with the Japanese era year: 1980-02-17 (昭和55年) → ``550217``."""
    return era_yymmdd(birth_date)


def check_code_b(birth_date: dt.date, expiry: dt.date, security_code: str) -> str:
    """照合番号B: era ``YYMMDD`` ‖ Gregorian expiry year ‖ セキュリティコード (14 digits).

    1980-02-17, 2035-02-17, ``2285`` → ``55021720352285``.
    """
    return f"{birth_date_key(birth_date)}{expiry.year:04d}{security_code}"
