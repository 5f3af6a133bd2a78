"""Validity rule, policy OIDs and serial numbers of the user-certificate profile."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cryptography import x509

from jpki.names import NameStyle, Tree
from jpki.profile import JST, certificate_policy_oid, random_serial_number, validity_end


def _end(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 14, 59, 59, tzinfo=UTC)


def test_worked_example_from_a_real_certificate() -> None:
    # Real 利用者証明用 certificate: issued 2019-07-25, birthday 2 May → 2024-05-02 14:59:59Z.
    assert validity_end(date(2019, 7, 25), date(1980, 5, 2)) == _end(2024, 5, 2)
    # Its notBefore 2019-07-25 15:28:06Z is already 07-26 in JST; same answer.
    issued = datetime(2019, 7, 25, 15, 28, 6, tzinfo=UTC)
    assert validity_end(issued, date(1980, 5, 2)) == _end(2024, 5, 2)


def test_end_is_2359_59_jst() -> None:
    end = validity_end(date(2020, 1, 1), date(1980, 2, 17))
    assert end.astimezone(JST).replace(tzinfo=None) == datetime(2024, 2, 17, 23, 59, 59)
    assert end.tzinfo is UTC


def test_birthday_on_issuance_day_does_not_count() -> None:
    born = date(1980, 5, 2)
    assert validity_end(date(2019, 5, 1), born) == _end(2023, 5, 2)
    assert validity_end(date(2019, 5, 2), born) == _end(2024, 5, 2)
    assert validity_end(date(2019, 5, 3), born) == _end(2024, 5, 2)


def test_issued_late_in_the_jst_day() -> None:
    # 2019-05-01 15:00Z is 2019-05-02 00:00 JST: the birthday is the issuance day.
    issued = datetime(2019, 5, 1, 15, 0, tzinfo=UTC)
    assert validity_end(issued, date(1980, 5, 2)) == _end(2024, 5, 2)


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (date(2020, 3, 1), _end(2025, 2, 28)),  # 5th birthday in a common year → 28 Feb
        (date(2019, 3, 1), _end(2024, 2, 29)),  # 5th birthday in a leap year → 29 Feb
        (date(2021, 2, 27), _end(2025, 2, 28)),
        (date(2021, 2, 28), _end(2026, 2, 28)),  # 28 Feb is that year's birthday: not counted
        (date(2020, 2, 29), _end(2025, 2, 28)),
    ],
)
def test_29_february_birthday(issued: date, expected: datetime) -> None:
    assert validity_end(issued, date(2000, 2, 29)) == expected


def test_validity_end_refusals() -> None:
    with pytest.raises(ValueError, match="after issuance"):
        validity_end(date(2020, 1, 1), date(2020, 1, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_end(datetime(2020, 1, 1), date(1980, 1, 1))


def test_policy_oids() -> None:
    oid = certificate_policy_oid
    assert oid(Tree.AUTH, NameStyle.PRODUCTION) == x509.ObjectIdentifier(
        "1.2.392.200149.8.5.1.3.30"
    )
    assert oid(Tree.SIGN, NameStyle.PRODUCTION) == x509.ObjectIdentifier(
        "1.2.392.200149.8.5.1.1.20"
    )
    assert oid(Tree.SIGN, NameStyle.TEST) == x509.ObjectIdentifier("1.2.392.200149.8.5.1.0.20")
    # No public test-hierarchy auth OID: the production one is used in both styles.
    assert oid(Tree.AUTH, NameStyle.TEST) == oid(Tree.AUTH, NameStyle.PRODUCTION)


def test_random_serial_numbers() -> None:
    serials = {random_serial_number() for _ in range(200)}
    assert len(serials) == 200
    assert all(0 < s < 2**64 for s in serials)
