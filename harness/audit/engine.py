"""Access-rule audit: probe any My Number card (emulated or real) over a Transport.

For every application (AP) × EF / key × credential state (nothing verified, each credential
alone, each pair of credentials of the same AP) the audit records the exact status word of
READ BINARY / READ RECORD and of a signature (or INTERNAL AUTHENTICATE) with a harmless
DigestInfo, and compares the matrix with the declared rules (``access_rules.toml``, or another
rules file). Security state is per AP and cleared by SELECT by AID (card-facts §4), so every
state starts with a fresh SELECT of its AP.

The engine is here; the findings and their renderings are in :mod:`harness.audit.report`, the
declared rules, the objects to probe and the comparison in :mod:`harness.audit.rules`, the
commands in :mod:`harness.audit.probe`.

Safety on real cards (DESIGN.md "Durability and safety"):

* only empty VERIFYs (retry counters) and the credentials the user supplies are sent; a
  supplied credential is never tried when its counter is at 1 or lower, and is dropped after its
  first rejection, so a mistyped PIN costs at most one try;
* a wrong value is only ever sent with ``allow_destructive`` (and never when it could block);
* the retry counters are read before and after the audit and both are reported;
* secrets are never printed: the report names credentials by AP, FID and label only, and
  signature responses are discarded after their status word is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from card_emulator.access import AccessRules, load_rules
from harness.audit.probe import (
    Prober,
    read_token,
    wrong_value,
)
from harness.audit.report import (
    SW_OK,
    ApplicationMatrix,
    AuditReport,
    Counter,
    State,
)
from harness.audit.rules import (
    CardLayout,
    compare,
    credential_label,
    layouts_from_rules,
    merge_layouts,
)
from readers.host_side.transport import Transport

# The names of the split-out modules stay importable from here, where they used to live.

SMARTPHONE_TOKENS = ("JPKIAPGPSETOKEN",)
"""JPKI token labels of a smartphone's card applet: its rules are the ``smartphone`` overlay."""


def run_audit(
    transport: Transport,
    *,
    credentials: Mapping[tuple[str, int], bytes],
    reference: Callable[[list[str]], Mapping[str, AccessRules]] = load_rules,
    card_rules: Mapping[str, AccessRules] | None = None,
    layouts: Sequence[CardLayout] | None = None,
    allow_destructive: bool = False,
    source: str = "card",
    aids: Mapping[str, bytes] | None = None,
) -> AuditReport:
    """Probe the card behind ``transport`` and compare with the reference rules.

    ``reference(overlays)`` gives the declared rules for the card variant (the overlays follow
    from the JPKI token label). ``card_rules`` (an emulated card's own stored rules) is checked
    too, so both a drifted rule and a chip that does not enforce its own table are reported.
    ``aids`` names the applications to probe (default: today's card's five); a card of another
    profile passes its own, e.g. ``{app.name: app.aid for app in content.applications}``.
    """
    prober = Prober(transport)
    token = read_token(prober)
    overlays = ["smartphone"] if token in SMARTPHONE_TOKENS else []
    declared = dict(reference(overlays))
    report = AuditReport(source=source, token=token, overlays=overlays)
    planned = layouts_from_rules(declared) if aids is None else layouts_from_rules(declared, aids)
    plan = merge_layouts(planned, layouts or [])

    run = _Run(prober, credentials, allow_destructive, report)
    run.read_counters_before(plan)
    for lay in plan:
        run.probe_application(lay, declared.get(lay.name, AccessRules()))
    run.read_counters_after(plan)

    tables: list[tuple[str, Mapping[str, AccessRules]]] = [("declared", declared)]
    if card_rules is not None:
        tables.append(("card", card_rules))
    for matrix in report.applications:
        for against, rules in tables:
            report.differences += compare(matrix, rules.get(matrix.name, AccessRules()), against)
    report.apdus = prober.count
    return report


def _states(usable: Sequence[int]) -> list[State]:
    """Nothing verified, each credential alone, each pair of credentials."""
    states = [State()] + [State((c,)) for c in usable]
    return states + [State(p) for p in itertools.combinations(usable, 2)]


@dataclass
class _Run:
    """One audit in progress: what it sends, what it may verify, what it has found."""

    prober: Prober
    credentials: Mapping[tuple[str, int], bytes]
    allow_destructive: bool
    report: AuditReport
    selectable: dict[str, bool] = field(default_factory=dict)
    before: dict[tuple[str, int], int | None] = field(default_factory=dict)
    """Tries left per (AP, credential) before the audit (None: not a counter's answer)."""

    def _counters(self, lay: CardLayout) -> list[Counter]:
        """The retry counters of ``lay``'s credentials (its AP already selected)."""
        return [
            Counter(lay.name, fid, credential_label(lay.name, fid), self.prober.counter(fid))
            for fid in lay.credentials
        ]

    def read_counters_before(self, plan: Sequence[CardLayout]) -> None:
        """Which APs select, and their retry counters before anything is verified."""
        for lay in plan:
            self.selectable[lay.name] = self.prober.select_ap(lay.aid) == SW_OK
            if self.selectable[lay.name]:
                self.report.counters_before += self._counters(lay)
        self.before = {(c.application, c.fid): c.tries for c in self.report.counters_before}

    def read_counters_after(self, plan: Sequence[CardLayout]) -> None:
        """The retry counters after the audit; a counter that went down is a problem."""
        for lay in plan:
            if self.selectable[lay.name]:
                self.prober.select_ap(lay.aid)
                self.report.counters_after += self._counters(lay)
        if self.allow_destructive:
            return  # its wrong VERIFYs lower counters on purpose (and restore them)
        for c in self.report.counters_after:
            was = self.before.get((c.application, c.fid))
            if was is not None and c.tries is not None and c.tries < was:
                self.report.problems.append(
                    f"{c.application} {c.fid:04X}: counter went down from {was} to {c.tries}"
                )

    def probe_application(self, lay: CardLayout, rules: AccessRules) -> None:
        """The matrix of one AP: every object under every state its credentials allow."""
        matrix = ApplicationMatrix(lay.name, lay.aid, self.selectable[lay.name], rules=rules)
        self.report.applications.append(matrix)
        if not matrix.selectable:
            self.report.problems.append(f"{lay.name}: AID {lay.aid.hex().upper()} not selectable")
            return
        usable = self._usable(lay)
        for state in _states(usable):
            if any(c not in usable for c in state.credentials):
                continue  # a credential was rejected: never try it again
            if self._establish(lay, state, usable):
                matrix.states.append(state)
                for fid in lay.files:
                    matrix.read.setdefault(fid, {})[state] = self.prober.read(fid)
                for fid in lay.keys:
                    matrix.use.setdefault(fid, {})[state] = self.prober.use(fid)
        # drop states that lost a credential after they were recorded
        matrix.states = [s for s in matrix.states if all(c in usable for c in s.credentials)]
        if self.allow_destructive:
            self._destructive_probes(lay, usable)

    def _usable(self, lay: CardLayout) -> list[int]:
        """The supplied credentials of ``lay`` safe to verify (a note for each one skipped)."""
        usable: list[int] = []
        for fid in lay.credentials:
            if (lay.name, fid) not in self.credentials:
                continue
            tries = self.before.get((lay.name, fid))
            if tries is None or tries == 0:
                self.report.notes.append(
                    f"{lay.name} {fid:04X}: blocked or unreadable; not verified"
                )
            elif tries <= 1 and not self.allow_destructive:
                self.report.notes.append(
                    f"{lay.name} {fid:04X}: one try left; not verified "
                    "(a wrong value would block it; --allow-destructive overrides)"
                )
            else:
                usable.append(fid)
        return usable

    def _establish(self, lay: CardLayout, state: State, usable: list[int]) -> bool:
        """Select the AP afresh and verify ``state``'s credentials; drop one that is rejected."""
        self.prober.select_ap(lay.aid)
        for fid in state.credentials:
            sw = self.prober.verify(fid, self.credentials[(lay.name, fid)])
            if sw != SW_OK:
                self.report.problems.append(
                    f"{lay.name} {fid:04X}: supplied credential rejected (SW {sw:04X}); "
                    "not tried again"
                )
                usable.remove(fid)
                return False
        return True

    def _destructive_probes(self, lay: CardLayout, usable: Sequence[int]) -> None:
        """One wrong VERIFY then the right one, for each credential with at least 2 tries left."""
        for fid in list(usable):
            tries = self.before.get((lay.name, fid))
            if tries is None or tries < 2:
                continue
            secret = self.credentials[(lay.name, fid)]
            self.prober.select_ap(lay.aid)
            sw = self.prober.verify(fid, wrong_value(secret))
            expected = 0x63C0 | (tries - 1)
            if sw != expected:
                self.report.problems.append(
                    f"{lay.name} {fid:04X}: wrong value answered {sw:04X}, expected {expected:04X}"
                )
            sw = self.prober.verify(fid, secret)
            if sw != SW_OK:
                self.report.problems.append(
                    f"{lay.name} {fid:04X}: right value after a wrong one: {sw:04X}"
                )
            self.report.notes.append(
                f"{lay.name} {fid:04X}: one wrong attempt made (then the right one)"
            )
