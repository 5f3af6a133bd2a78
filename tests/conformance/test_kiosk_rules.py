"""The kiosk rules over hand-written traces, and the state machine behind them (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apdu import mask_hex
from harness.conformance.rules import (
    GENERAL_RULES,
    RULES,
    Expectation,
    Kind,
    Outcome,
    judge,
    steps,
)
from harness.traces.trace_file import Event, Exchange, Trace

SELECT_JPKI = "00A4040C0AD392F000260100000001"
SELECT_TEXT_AP = "00A4040C0AD3921000310001010408"
SELECT_PIN = "00A4020C020018"
SELECT_KEY = "00A4020C020017"
SELECT_AUTH_CERT = "00A4020C02000A"
SELECT_SIGN_CERT = "00A4020C020001"
PIN_CHECK = "00200080"
VERIFY = "002000800431323334"
SIGN = "802A00803300" + "00" * 50 + "00"
OK = "9000"
ACCEPTED = Outcome("accepted")


def trace_of(*items: tuple[str, str] | str) -> Trace:
    """(command hex, response hex) pairs, or "reset" for a power event."""
    trace = Trace()
    seq = 0
    for item in items:
        if isinstance(item, str):
            trace.items.append(Event(float(seq), item))
            continue
        seq += 1
        command, response = item
        raw = bytes.fromhex(command)
        trace.items.append(
            Exchange(seq, float(seq), mask_hex(raw), bytes.fromhex(response).hex(" ").upper(), "")
        )
    return trace


GOOD_FLOW = (
    (SELECT_JPKI, OK),
    (SELECT_AUTH_CERT, OK),
    ("00B0000004", "30820500" + OK),
    (SELECT_PIN, OK),
    (PIN_CHECK, "63C3"),
    (VERIFY, OK),
    (SELECT_KEY, OK),
    (SIGN, "00" * 256 + OK),
)


def broken(
    trace: Trace, outcome: Outcome = ACCEPTED, expect: str = "accepted"
) -> dict[str, list[int | None]]:
    verdicts = judge(
        trace, outcome, Expectation(*expect.split(":")), ["complete-valid-transaction"]
    )
    return {
        v.rule.id: [x.step.seq if x.step else None for x in v.violations]
        for v in verdicts
        if not v.passed
    }


def test_the_good_flow_keeps_every_rule() -> None:
    assert broken(trace_of(*GOOD_FLOW)) == {}


def test_steps_name_the_credential_and_key_the_card_tracked() -> None:
    annotated = steps(trace_of(*GOOD_FLOW))
    verify = next(s for s in annotated if s.kind is Kind.VERIFY)
    sign = next(s for s in annotated if s.kind is Kind.SIGN)
    assert (verify.application, verify.target, verify.sw) == ("jpki", 0x0018, "9000")
    assert (sign.application, sign.target) == ("jpki", 0x0017)
    assert "XX XX XX XX" in verify.command  # the PIN never reaches a rule or a report
    assert "利用者証明用" in verify.meaning


def test_a_pin_sent_without_checking_the_counter_is_named_by_its_command() -> None:
    flow = [item for item in GOOD_FLOW if item[0] != PIN_CHECK]
    assert broken(trace_of(*flow)) == {"check-counter-before-verify": [5]}


def test_a_pin_sent_to_a_blocked_pin_and_going_on_after_6984() -> None:
    trace = trace_of(
        (SELECT_JPKI, OK),
        (SELECT_PIN, OK),
        (PIN_CHECK, "63C0"),
        (VERIFY, "6984"),
        (SELECT_KEY, OK),
        (SIGN, "6982"),
    )
    assert broken(trace, Outcome("refused", "pin-locked"), "refused:pin-locked") == {
        "never-verify-blocked-pin": [4],
        "stop-on-6984": [6],
        "sign-after-verify": [6],
    }


def test_the_verified_state_ends_with_a_select_of_the_ap_or_a_reset() -> None:
    for interruption in ([(SELECT_JPKI, OK)], ["reset", (SELECT_JPKI, OK)]):
        trace = trace_of(*GOOD_FLOW, *interruption, (SELECT_KEY, OK), (SIGN, "6982"))
        assert broken(trace) == {"sign-after-verify": [11]}


def test_a_failed_verify_does_not_allow_signing() -> None:
    flow = [(c, "63C2" if c == VERIFY else r) for c, r in GOOD_FLOW]
    assert broken(trace_of(*flow)) == {"sign-after-verify": [8]}


def test_touching_the_signing_certificate_only_counts_in_the_jpki_ap() -> None:
    trace = trace_of((SELECT_JPKI, OK), (SELECT_SIGN_CERT, OK), ("00B0000004", "6982"))
    assert broken(trace) == {"no-signing-certificate": [2, 3]}
    other_ap = trace_of((SELECT_TEXT_AP, OK), (SELECT_SIGN_CERT, OK))
    assert "no-signing-certificate" not in broken(other_ap)


def test_outcomes_finish_cleanly_only_when_reported() -> None:
    crashed = Outcome("crashed", detail="exit status 1")
    result = broken(trace_of(*GOOD_FLOW), crashed)
    assert result == {"finish-cleanly": [None], "complete-valid-transaction": [None]}
    assert broken(trace_of(*GOOD_FLOW), Outcome("timeout")).keys() == result.keys()


def test_an_expectation_with_a_reason_needs_that_reason() -> None:
    expected = Expectation("refused", "certificate-revoked")
    assert expected.met_by(Outcome("refused", "certificate-revoked"))
    assert not expected.met_by(Outcome("refused", "card-error"))
    assert not expected.met_by(ACCEPTED)
    assert Expectation("refused").met_by(Outcome("refused", "anything"))


def test_every_rule_has_a_unique_id_and_a_sentence() -> None:
    assert len(RULES) == len({r.id for r in RULES.values()})
    assert all(r.title for r in RULES.values())
    assert {r.id for r in GENERAL_RULES} >= {
        "never-verify-blocked-pin",
        "sign-after-verify",
        "stop-on-6984",
        "no-signing-certificate",
    }


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=6)), max_size=30))
def test_steps_never_fail_on_arbitrary_bytes(pairs: list[tuple[bytes, bytes]]) -> None:
    trace = trace_of(*((c.hex(), r.hex()) for c, r in pairs))
    annotated = steps(trace)
    assert [s.seq for s in annotated] == list(range(1, len(pairs) + 1))
    judge(trace, ACCEPTED, Expectation("accepted"), ["complete-valid-transaction"])


OPERATIONS: dict[str, list[tuple[str, str] | str]] = {
    "select-ap": [(SELECT_JPKI, OK), (SELECT_PIN, OK)],
    "verify-ok": [(VERIFY, OK)],
    "verify-wrong": [(VERIFY, "63C1")],
    "sign": [(SIGN, OK)],
    "reset": ["reset", (SELECT_JPKI, OK), (SELECT_PIN, OK)],
}


@given(st.lists(st.sampled_from(sorted(OPERATIONS)), max_size=25))
def test_sign_after_verify_matches_a_model_of_the_security_state(ops: list[str]) -> None:
    items: list[tuple[str, str] | str] = list(OPERATIONS["select-ap"])
    expected: list[int | None] = []
    verified = False
    for op in ops:
        items += OPERATIONS[op]
        seq = sum(1 for item in items if not isinstance(item, str))
        if op in ("select-ap", "reset"):
            verified = False
        elif op.startswith("verify"):
            verified = op == "verify-ok"
        elif not verified:
            expected.append(seq)
    result = broken(trace_of(*items))
    assert result.get("sign-after-verify", []) == expected
