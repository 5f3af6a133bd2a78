"""The PKI declaration, revocation reasons and the state machine of a certificate's history."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki.clock import JST, FrozenClock, OffsetClock, parse_moment
from jpki.declaration import DeclarationError, default_declaration, parse_declaration
from jpki.keys import KeyAlgorithm
from jpki.names import NameStyle, Tree
from jpki.revocation import (
    CertificateState,
    EventKind,
    RevocationError,
    RevocationEvent,
    RevocationReason,
    certificate_status,
    check_new_event,
    parse_reason,
    revocation_status,
)

UTC = dt.UTC
MINIMAL = """
[pki]
base_url = "http://127.0.0.1:9999"
styles = ["test"]

[auth]
[[auth.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2030-01-01

[sign]
[[sign.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2030-01-01
"""


def test_default_declaration_mirrors_the_real_generations() -> None:
    declaration = default_declaration()
    assert declaration.base_url == "http://127.0.0.1:8714"
    assert declaration.styles == (NameStyle.TEST, NameStyle.PRODUCTION)
    for tree in Tree:
        every = declaration.trees[tree].generations
        generations = [g for g in every if g.algorithm is KeyAlgorithm.RSA_2048]
        assert [g.generation for g in generations] == [1, 2, 3, 4]
        next_generation = [g for g in every if g.algorithm is KeyAlgorithm.ECDSA_P384]
        assert [g.generation for g in next_generation] == [5]
        first = generations[0]
        assert first.serial == 1
        assert first.not_before == dt.datetime(2015, 10, 20, tzinfo=JST)
        assert first.not_after == dt.datetime(2025, 10, 19, 23, 59, 59, tzinfo=JST)
        for older, newer in itertools.pairwise(generations):
            assert newer.not_before < older.not_after  # overlapping validity
    assert parse_declaration(declaration.to_toml()) == declaration


def test_generation_in_force_is_the_newest_valid_one() -> None:
    auth = default_declaration().trees[Tree.AUTH]
    assert auth.in_force(dt.datetime(2015, 10, 19, 12, tzinfo=JST)) is None
    assert auth.in_force(dt.datetime(2019, 9, 13, 12, tzinfo=JST)).generation == 1  # type: ignore[union-attr]
    assert auth.in_force(dt.datetime(2019, 9, 14, 0, tzinfo=JST)).generation == 2  # type: ignore[union-attr]
    assert auth.in_force(dt.datetime(2025, 3, 3, tzinfo=JST)).generation == 3  # type: ignore[union-attr]
    assert auth.in_force(dt.datetime(2040, 1, 1, tzinfo=JST)) is None
    p384 = KeyAlgorithm.ECDSA_P384
    assert auth.in_force(dt.datetime(2040, 1, 1, tzinfo=JST), p384).generation == 5  # type: ignore[union-attr]
    assert auth.in_force(dt.datetime(2025, 3, 3, tzinfo=JST), p384) is None


SIGN_SERIAL = "[sign]\n[[sign.generations]]\ngeneration = 1\nserial = -3"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('base_url = "http://127.0.0.1:9999"', 'base_url = "ftp://x"', "pki.base_url"),
        ('base_url = "http://127.0.0.1:9999"', "", "pki.base_url: required field is missing"),
        ('styles = ["test"]', 'styles = ["tset"]', "pki.styles"),
        (
            "generation = 1\nnot_before = 2020-01-01",
            "generation = 0\nnot_before = 2020-01-01",
            "auth.generations[0].generation",
        ),
        (
            "not_after = 2030-01-01\n\n[sign]",
            "not_after = 2019-01-01\n\n[sign]",
            "auth.generations[0].not_after",
        ),
        (
            "not_after = 2030-01-01\n\n[sign]",
            "not_after = 2030-01-01T00:00:00\n\n[sign]",
            "auth.generations[0].not_after: 2030-01-01 00:00:00 needs an offset",
        ),
        ("[auth]\n", "[auth]\ncolour = 1\n", "unknown field(s): auth.colour"),
        ("[sign]\n[[sign.generations]]\ngeneration = 1", SIGN_SERIAL, "sign.generations[0].serial"),
    ],
)
def test_bad_declarations_name_the_field(old: str, new: str, message: str) -> None:
    assert old in MINIMAL
    with pytest.raises(DeclarationError) as info:
        parse_declaration(MINIMAL.replace(old, new, 1), "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert message in str(info.value)


def test_repeated_generations_and_missing_trees_are_refused() -> None:
    again = (
        "[[auth.generations]]\ngeneration = 1\nnot_before = 2021-01-01\nnot_after = 2031-01-01\n"
    )
    twice = MINIMAL.replace("[sign]", again + "\n[sign]")
    with pytest.raises(DeclarationError, match=r"auth\.generations: generation numbers repeat"):
        parse_declaration(twice)
    with pytest.raises(DeclarationError, match="sign: required field is missing"):
        parse_declaration(MINIMAL.split("[sign]", maxsplit=1)[0])


def test_reasons_parse_in_every_spelling() -> None:
    for text in (
        "affiliationChanged",
        "affiliation_changed",
        "AFFILIATION-CHANGED",
        "記載内容変更",
    ):
        assert parse_reason(text) is RevocationReason.AFFILIATION_CHANGED
    assert parse_reason("更新") is RevocationReason.SUPERSEDED
    assert parse_reason("cACompromise").code == 2
    assert parse_reason("cessationOfOperation").code == 5
    with pytest.raises(RevocationError, match="hold"):
        parse_reason("certificateHold")
    assert parse_reason("certificateHold", allow_hold=True).code == 6
    with pytest.raises(RevocationError, match="unknown revocation reason 'lost'"):
        parse_reason("lost")


def _at(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC)


def test_history_states_over_time() -> None:
    events = [
        RevocationEvent(EventKind.HOLD, _at(5)),
        RevocationEvent(EventKind.RELEASE, _at(10)),
        RevocationEvent(EventKind.REVOKE, _at(20), RevocationReason.KEY_COMPROMISE),
    ]
    start, end = _at(1), _at(28)
    states = {
        day: certificate_status(start, end, events, _at(day)).state for day in (2, 6, 11, 21, 29)
    }
    assert states == {
        2: CertificateState.VALID,
        6: CertificateState.HOLD,
        11: CertificateState.VALID,
        21: CertificateState.REVOKED,
        29: CertificateState.EXPIRED,
    }
    assert certificate_status(_at(3), end, events, _at(2)).state is CertificateState.NOT_YET_VALID
    held = revocation_status(events, _at(6))
    assert held.reason is RevocationReason.CERTIFICATE_HOLD and held.since == _at(5)


def test_transitions_are_checked() -> None:
    revoked = [RevocationEvent(EventKind.REVOKE, _at(5), RevocationReason.SUPERSEDED)]
    with pytest.raises(RevocationError, match="already revoked"):
        check_new_event(revoked, RevocationEvent(EventKind.HOLD, _at(6)))
    with pytest.raises(RevocationError, match="not on hold"):
        check_new_event([], RevocationEvent(EventKind.RELEASE, _at(6)))
    held = [RevocationEvent(EventKind.HOLD, _at(5))]
    with pytest.raises(RevocationError, match="already on hold"):
        check_new_event(held, RevocationEvent(EventKind.HOLD, _at(6)))
    with pytest.raises(RevocationError, match="before the certificate's last recorded change"):
        check_new_event(held, RevocationEvent(EventKind.RELEASE, _at(4)))
    check_new_event(held, RevocationEvent(EventKind.REVOKE, _at(7), RevocationReason.UNSPECIFIED))
    with pytest.raises(ValueError, match="needs a reason"):
        RevocationEvent(EventKind.REVOKE, _at(1))


@given(st.lists(st.tuples(st.sampled_from(list(EventKind)), st.integers(1, 28)), max_size=12))
def test_accepted_histories_never_unrevoke(steps: list[tuple[EventKind, int]]) -> None:
    """Whatever sequence is offered, what check_new_event accepts keeps revocation final."""
    history: list[RevocationEvent] = []
    for kind, day in steps:
        reason = RevocationReason.KEY_COMPROMISE if kind is EventKind.REVOKE else None
        event = RevocationEvent(kind, _at(day), reason)
        try:
            check_new_event(history, event)
        except RevocationError:
            continue
        history.append(event)
    revoked_from = next((e.at for e in history if e.kind is EventKind.REVOKE), None)
    for day in range(1, 29):
        status = revocation_status(history, _at(day))
        if revoked_from is not None and _at(day) >= revoked_from:
            assert status.revoked and status.reason is RevocationReason.KEY_COMPROMISE


def test_clocks() -> None:
    assert parse_moment("2031-01-01") == dt.datetime(2031, 1, 1, tzinfo=JST)
    assert parse_moment("2031-01-01T09:30") == dt.datetime(2031, 1, 1, 9, 30, tzinfo=JST)
    assert parse_moment("2031-01-01T00:00:00Z") == dt.datetime(2031, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date"):
        parse_moment("tomorrow")
    frozen = FrozenClock(dt.datetime(2031, 1, 1, tzinfo=UTC))
    frozen.advance(dt.timedelta(days=1))
    assert frozen.now() == dt.datetime(2031, 1, 2, tzinfo=UTC)
    running = OffsetClock(dt.datetime(2031, 1, 1, tzinfo=UTC))
    assert abs(running.now() - dt.datetime(2031, 1, 1, tzinfo=UTC)) < dt.timedelta(seconds=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        FrozenClock(dt.datetime(2031, 1, 1))
