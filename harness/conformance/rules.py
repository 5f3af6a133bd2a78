"""The rules a コンビニ交付 kiosk must keep, checked over a recorded trace and its outcome.

Two kinds of rule:

* **general rules** hold in every scenario. Most look at the APDUs the kiosk sent (e.g. never
  VERIFY a blocked PIN, never sign before a successful VERIFY, never touch the signing
  certificate) and a violation names the command that broke the rule; ``finish-cleanly`` asks
  that the kiosk always reports an outcome.
* **outcome rules** apply to the scenarios whose catalogue entry names them and compare what
  the kiosk reported (``accepted`` / ``refused`` with a reason) with what the scenario expects
  (e.g. reject a revoked certificate, report a removed card).

The trace is walked once into :class:`Step` s (which AP, which EF, which credential or key each
command addressed — with a :class:`~harness.traces.decoder.Decoder`, as the card tracks them);
every rule is then a plain function of the steps and the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from apdu import CodecError, CommandApdu
from apdu.vocabulary import Jpki
from harness.traces.decoder import Decoder
from harness.traces.trace_file import Event, Exchange, Trace

AUTH_PIN = Jpki.PIN_AUTH
AUTH_KEY = Jpki.KEY_AUTH
SIGNING_OBJECTS = {
    Jpki.EF_SIGN_CERT: "署名用証明書 (JPKI 0001)",
    Jpki.EF_SIGN_CA: "署名用CA証明書 (JPKI 0002)",
    Jpki.KEY_SIGN: "署名用秘密鍵 (JPKI 001A)",
    Jpki.PIN_SIGN: "署名用パスワード (JPKI 001B)",
}


class Kind(Enum):
    """What one command did, as far as the rules care."""

    SELECT_AP = "select-ap"
    SELECT_EF = "select-ef"
    READ = "read"
    PIN_CHECK = "pin-check"  # VERIFY without data: ask for the retry counter
    VERIFY = "verify"  # VERIFY with a PIN
    SIGN = "sign"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Step:
    """One exchange of the trace, annotated."""

    seq: int
    kind: Kind
    application: str | None
    target: int | None  # EF / IEF / key FID the command addressed
    sw: str
    command: str  # masked hex
    meaning: str
    after_reset: bool = False  # the first command after a power event

    @property
    def label(self) -> str:
        """``#7 VERIFY 利用者証明用暗証番号 (JPKI 0018) → 63C2``."""
        return f"#{self.seq} {self.meaning} → {self.sw or 'no answer'}"


def steps(trace: Trace) -> list[Step]:
    """Annotate every exchange of ``trace`` with the AP / EF state the card had."""
    decoder = Decoder()
    out: list[Step] = []
    reset = False
    for item in trace.items:
        if isinstance(item, Event):
            decoder.reset()
            reset = True
            continue
        out.append(_step(decoder, item, reset))
        reset = False
    return out


def _step(decoder: Decoder, item: Exchange, after_reset: bool) -> Step:
    raw = bytes.fromhex(item.command.replace("XX", "00").replace(" ", ""))
    response = bytes.fromhex(item.response.replace(" ", ""))
    current = decoder.current
    meaning = decoder.command(raw, response if len(response) >= 2 else b"")
    kind, target = Kind.OTHER, None
    try:
        cmd = CommandApdu.parse(raw)
    except CodecError:
        cmd = None
    if cmd is not None and not cmd.cla & 0x0C:
        if cmd.ins == 0xA4 and cmd.p1 == 0x04:
            kind = Kind.SELECT_AP
        elif cmd.ins == 0xA4 and cmd.p1 == 0x02 and len(cmd.data) == 2:
            kind, target = Kind.SELECT_EF, int.from_bytes(cmd.data, "big")
        elif cmd.ins == 0xB0:
            kind = Kind.READ
            target = cmd.p1 & 0x1F if cmd.p1 & 0x80 else current
        elif cmd.ins == 0x20:
            kind = Kind.VERIFY if cmd.data else Kind.PIN_CHECK
            target = cmd.p2 & 0x1F or current
        elif cmd.ins == 0x2A and cmd.p1 == 0x00:
            kind = Kind.SIGN
            target = (cmd.p2 & 0x1F) if cmd.p2 & 0x80 and cmd.p2 & 0x1F else current
    sw = item.sw if len(response) >= 2 else ""
    return Step(item.seq, kind, decoder.application, target, sw, item.command, meaning, after_reset)


# -- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the kiosk reported: ``accepted`` or ``refused`` (with a reason), or that it did
    not report at all (``crashed`` / ``timeout``, with ``detail``)."""

    outcome: str
    reason: str = ""
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.outcome}:{self.reason}" if self.reason else self.outcome
        return f"{text} ({self.detail})" if self.detail else text

    @property
    def reported(self) -> bool:
        return self.outcome in ("accepted", "refused")


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a scenario expects the kiosk to report."""

    outcome: str
    reason: str = ""

    def met_by(self, outcome: Outcome) -> bool:
        if outcome.outcome != self.outcome:
            return False
        return not self.reason or outcome.reason == self.reason

    def __str__(self) -> str:
        return f"{self.outcome}:{self.reason}" if self.reason else self.outcome


# -- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """Where a rule was broken: the offending command (``None`` for an outcome rule)."""

    message: str
    step: Step | None = None

    def text(self) -> str:
        return f"{self.step.label}: {self.message}" if self.step else self.message


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: an id for reports, a sentence, and its check."""

    id: str
    title: str
    check: Callable[[Sequence[Step], Outcome, Expectation], list[Violation]]


def _jpki(step: Step) -> bool:
    return step.application == "jpki"


def _check_counter_first(steps: Sequence[Step], *_: object) -> list[Violation]:
    checked: set[int | None] = set()
    for step in steps:
        if step.kind is Kind.PIN_CHECK:
            checked.add(step.target)
        elif step.kind is Kind.VERIFY and step.target not in checked:
            return [
                Violation(
                    "a PIN was sent without first asking the card how many tries are left", step
                )
            ]
    return []


def _never_verify_blocked(steps: Sequence[Step], *_: object) -> list[Violation]:
    return [
        Violation("a PIN was sent to a blocked credential (the card answered 6984)", step)
        for step in steps
        if step.kind is Kind.VERIFY and step.sw == "6984"
    ]


def _stop_on_6984(steps: Sequence[Step], *_: object) -> list[Violation]:
    blocked_at: Step | None = None
    out: list[Violation] = []
    for step in steps:
        if blocked_at is not None and step.kind in (Kind.VERIFY, Kind.SIGN):
            out.append(
                Violation(f"went on after the card said blocked (6984 at #{blocked_at.seq})", step)
            )
        if step.sw == "6984" and blocked_at is None:
            blocked_at = step
    return out


def _sign_after_verify(steps: Sequence[Step], *_: object) -> list[Violation]:
    verified = False
    out: list[Violation] = []
    for step in steps:
        if step.after_reset or step.kind is Kind.SELECT_AP:
            verified = False
        if step.kind is Kind.VERIFY and _jpki(step) and step.target == AUTH_PIN:
            verified = step.sw == "9000"
        elif step.kind is Kind.SIGN and not verified:
            out.append(
                Violation("asked for a signature without a successful VERIFY of the PIN", step)
            )
    return out


def _no_signing_certificate(steps: Sequence[Step], *_: object) -> list[Violation]:
    return [
        Violation(f"touched {SIGNING_OBJECTS[step.target]}, which a kiosk has no use for", step)
        for step in steps
        if _jpki(step)
        and step.target in SIGNING_OBJECTS
        and step.kind in (Kind.SELECT_EF, Kind.READ, Kind.VERIFY, Kind.PIN_CHECK, Kind.SIGN)
    ]


def _finish_cleanly(_: Sequence[Step], outcome: Outcome, __: Expectation) -> list[Violation]:
    if outcome.reported:
        return []
    return [Violation(f"the kiosk reported no outcome: {outcome}")]


def _expected_outcome(
    _: Sequence[Step], outcome: Outcome, expected: Expectation
) -> list[Violation]:
    if expected.met_by(outcome):
        return []
    return [Violation(f"expected {expected}, the kiosk reported {outcome}")]


GENERAL_RULES: tuple[Rule, ...] = (
    Rule(
        "check-counter-before-verify",
        "check the PIN counter (VERIFY without data) before sending a PIN",
        _check_counter_first,
    ),
    Rule("never-verify-blocked-pin", "never send a PIN to a blocked PIN", _never_verify_blocked),
    Rule(
        "stop-on-6984", "stop (no VERIFY, no signature) once the card answers 6984", _stop_on_6984
    ),
    Rule(
        "sign-after-verify",
        "never ask for a signature before a successful VERIFY",
        _sign_after_verify,
    ),
    Rule(
        "no-signing-certificate",
        "never read the signing certificate or use the signing key / password",
        _no_signing_certificate,
    ),
    Rule(
        "finish-cleanly",
        "always finish with an outcome (no crash, no hang)",
        _finish_cleanly,
    ),
)

OUTCOME_RULES: tuple[Rule, ...] = tuple(
    Rule(rule_id, title, _expected_outcome)
    for rule_id, title in (
        ("complete-valid-transaction", "complete the transaction with a good card and PIN"),
        ("report-locked-pin", "tell the customer the PIN is locked"),
        ("reject-expired-certificate", "reject an expired certificate"),
        ("reject-revoked-certificate", "reject a revoked or suspended (一時保留) certificate"),
        ("report-removed-card", "report a card pulled out mid-transaction"),
    )
)

RULES: dict[str, Rule] = {rule.id: rule for rule in (*GENERAL_RULES, *OUTCOME_RULES)}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's result in one scenario."""

    rule: Rule
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


def judge(
    trace: Trace, outcome: Outcome, expected: Expectation, outcome_rules: Sequence[str]
) -> list[Verdict]:
    """Every general rule, plus ``outcome_rules`` (ids), applied to one scenario's run."""
    annotated = steps(trace)
    chosen = [*GENERAL_RULES, *(RULES[rule_id] for rule_id in outcome_rules)]
    return [Verdict(rule, rule.check(annotated, outcome, expected)) for rule in chosen]
