"""Fixed values and rules of the JPKI user-certificate profile (card-facts §5.4)."""

from __future__ import annotations

import calendar
import secrets
from datetime import date, datetime
from typing import Final

from cryptography import x509

from jpki.clock import JST, jst_day_end
from jpki.names import NameStyle, Tree

__all__ = [
    "CPS_URI",
    "JST",
    "PRODUCTION_AUTH_OCSP_URL",
    "VALIDITY_BIRTHDAYS",
    "birthday_in",
    "certificate_policy_oid",
    "nth_birthday_after",
    "random_serial_number",
    "validity_end",
]

# JST is re-exported here for callers of the profile (it is defined once, in jpki.clock).

CPS_URI: Final = "http://www.jpki.go.jp/cps.html"

PRODUCTION_AUTH_OCSP_URL: Final = "http://ocspauthnorm.jpki.go.jp"
"""AIA OCSP URL of a real 利用者証明用 certificate (2019). Never a default: pass it explicitly."""

VALIDITY_BIRTHDAYS: Final = 5
"""User certificates end on the holder's 5th birthday after issuance."""

# Policy OIDs. Production: auth class 30 (.3.30), sign class 20 (.1.20). Test hierarchy: the sign
# certificate of a real test card carries .0.20. No public source gives a test-hierarchy auth OID,
# so the auth certificate uses the production OID in both styles rather than an invented one.
_POLICY_OIDS: Final = {
    (Tree.AUTH, NameStyle.PRODUCTION): x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30"),
    (Tree.AUTH, NameStyle.TEST): x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30"),
    (Tree.SIGN, NameStyle.PRODUCTION): x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.20"),
    (Tree.SIGN, NameStyle.TEST): x509.ObjectIdentifier("1.2.392.200149.8.5.1.0.20"),
}

_SERIAL_BITS: Final = 64


def certificate_policy_oid(tree: Tree, style: NameStyle) -> x509.ObjectIdentifier:
    """The CertificatePolicies OID of a user certificate of ``tree`` in ``style``."""
    return _POLICY_OIDS[tree, style]


def random_serial_number() -> int:
    """A positive random 64-bit certificate serial number."""
    while True:
        serial = secrets.randbits(_SERIAL_BITS)
        if serial:
            return serial


def birthday_in(year: int, birth_date: date) -> date:
    """The holder's birthday in ``year``: the birth month and day, 29 Feb → 28 Feb in common years.

    28 February is the day on which Japanese age reckoning (年齢計算ニ関スル法律) completes the
    year of a 29 February birth in a common year, so a term ending on it never outlives the
    nominal rule and always ends in the birth month.
    """
    if birth_date.month == 2 and birth_date.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birth_date.replace(year=year)


def nth_birthday_after(issued: date, birth_date: date, n: int) -> date:
    """The ``n``-th birthday (``n`` ≥ 1) after ``issued`` (発行日後: not the issue date itself).

    Birthdays fall on :func:`birthday_in`'s dates, e.g. issued 2019-07-25, born 05-02, n=5 →
    2024-05-02; issued on the birthday 2019-05-02 → also 2024-05-02.
    """
    if n < 1:
        raise ValueError(f"n must be 1 or more, not {n}")
    first_year = issued.year
    if birthday_in(first_year, birth_date) <= issued:
        first_year += 1
    return birthday_in(first_year + n - 1, birth_date)


def validity_end(issued: date, birth_date: date) -> datetime:
    """notAfter of a user certificate: 23:59:59 JST on the 5th birthday after ``issued``.

    A birthday on the issuance day itself does not count (発行日後). A ``datetime`` ``issued``
    must be timezone-aware and is taken as its calendar date in JST. Returns an aware UTC
    datetime, e.g. issued 2019-07-25, born 05-02 → 2024-05-02 14:59:59Z.
    """
    if isinstance(issued, datetime):
        if issued.tzinfo is None:
            raise ValueError("issued datetime must be timezone-aware")
        issued = issued.astimezone(JST).date()
    if birth_date > issued:
        raise ValueError(f"birth date {birth_date} is after issuance {issued}")
    return jst_day_end(nth_birthday_after(issued, birth_date, VALIDITY_BIRTHDAYS))
