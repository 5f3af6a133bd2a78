"""TraceRecord.exchange: the cheap constructor a served card uses makes the same record."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import TraceRecord


@given(
    timestamp=st.floats(allow_nan=False),
    command=st.binary(max_size=300),
    response=st.binary(max_size=300),
    duration=st.floats(min_value=0, allow_nan=False),
    reader=st.text(max_size=40),
)
def test_exchange_makes_what_the_constructor_makes(
    timestamp: float, command: bytes, response: bytes, duration: float, reader: str
) -> None:
    fast = TraceRecord.exchange(timestamp, command, response, duration, reader)
    slow = TraceRecord(timestamp, command, response, duration, reader=reader)
    assert fast == slow and fast.to_json() == slow.to_json() and fast.text() == slow.text()


def test_an_exchange_record_is_frozen_and_owns_its_extra() -> None:
    one = TraceRecord.exchange(1.0, b"\x00\xa4\x04\x00", b"\x90\x00", 0.001, "r")
    two = TraceRecord.exchange(1.0, b"\x00\xa4\x04\x00", b"\x90\x00", 0.001, "r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.note = "changed"  # type: ignore[misc]
    one.extra["k"] = 1
    assert two.extra == {}
