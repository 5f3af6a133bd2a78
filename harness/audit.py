"""Access-rule audit: probe any My Number card (emulated or real) over a Transport.

For every application (AP) × EF / key × credential state (nothing verified, each credential
alone, each pair of credentials of the same AP) the audit records the exact status word of
READ BINARY / READ RECORD and of a signature (or INTERNAL AUTHENTICATE) with a harmless
DigestInfo, and compares the matrix with the declared rules (``access_rules.toml``, or another
rules file). Security state is per AP and cleared by SELECT by AID (card-facts §4), so every
state starts with a fresh SELECT of its AP.

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

import hashlib
import html
import itertools
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import CommandApdu, builders, retries_in
from apdu.errors import MynacardError
from card_emulator.access import AccessRules, RulesError, load_rules
from card_emulator.apps import common, jpki, juki, kenmen, text
from card_emulator.credential_names import CREDENTIALS
from readers.host_side.transport import Transport

SW_OK = 0x9000
SW_DENIED = 0x6982
SW_BLOCKED = 0x6984
SW_CONDITIONS = 0x6985
SW_INCOMPATIBLE = 0x6981

APPLICATION_AIDS: dict[str, bytes] = {
    "jpki": jpki.AID,
    "text": text.AID,
    "kenmen": kenmen.AID,
    "common": common.AID,
    "juki": juki.AID,
}
"""The APs a real card is probed for, in probing order."""

EXTRA_IEFS: dict[str, tuple[int, ...]] = {"text": (0x0012,)}
"""Credential objects without a user secret whose counter is still worth reporting."""

PROBE_DIGEST_INFO = (
    bytes.fromhex("3031300D060960864801650304020105000420")
    + hashlib.sha256(b"mynacard access audit probe").digest()
)
"""DigestInfo(SHA-256) of a fixed harmless message; only the status word is read."""

PROBE_CHALLENGE = hashlib.sha256(b"mynacard access audit challenge").digest()

SMARTPHONE_TOKENS = ("JPKIAPGPSETOKEN",)


class AuditError(MynacardError, RuntimeError):
    """The audit could not run (bad credentials file, rules file, card not answering)."""


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """A set of credentials verified in one AP (empty = nothing verified)."""

    credentials: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return "+".join(f"{c:04X}" for c in self.credentials) or "none"


@dataclass(frozen=True, slots=True)
class Cell:
    """What one object answered under one state: the command used and the exact SW."""

    operation: str  # "read-binary", "read-record", "sign", "internal-auth", "select"
    sw: int

    @property
    def outcome(self) -> str:
        """``open``, ``closed`` or ``error``."""
        if self.sw == SW_OK:
            return "open"
        if self.sw == SW_DENIED:
            return "closed"
        return "error"

    def text(self) -> str:
        short = {"read-binary": "", "read-record": "R:", "sign": "", "internal-auth": "IA:"}
        return f"{short.get(self.operation, self.operation + ':')}{self.sw:04X}"


@dataclass(frozen=True, slots=True)
class Difference:
    """One cell where the card disagrees with a rule table."""

    application: str
    kind: str  # "read" or "use"
    fid: int
    state: str
    expected: str  # "open" / "closed"
    observed: str  # e.g. "9000 (open)"
    against: str  # which table: "declared" or "card"

    def text(self) -> str:
        return (
            f"{self.application} {self.kind} {self.fid:04X} under {self.state}: expected "
            f"{self.expected} ({self.against} rules), card answered {self.observed}"
        )


@dataclass(frozen=True, slots=True)
class Counter:
    """A retry counter read with an empty VERIFY."""

    application: str
    fid: int
    label: str
    sw: int

    @property
    def tries(self) -> int | None:
        return retries_in(self.sw)

    def text(self) -> str:
        tries = self.tries
        if tries is not None:
            return f"{tries} {'try' if tries == 1 else 'tries'} left"
        return f"SW {self.sw:04X}"


@dataclass(slots=True)
class ApplicationMatrix:
    """The matrix of one AP."""

    name: str
    aid: bytes
    selectable: bool
    states: list[State] = field(default_factory=list)
    read: dict[int, dict[State, Cell]] = field(default_factory=dict)
    use: dict[int, dict[State, Cell]] = field(default_factory=dict)
    rules: AccessRules = field(default_factory=AccessRules)


@dataclass(slots=True)
class AuditReport:
    """Everything the audit found."""

    source: str
    token: str
    overlays: list[str]
    applications: list[ApplicationMatrix] = field(default_factory=list)
    counters_before: list[Counter] = field(default_factory=list)
    counters_after: list[Counter] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    apdus: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences and not self.problems

    # --- renderers ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def cells(table: dict[int, dict[State, Cell]]) -> dict[str, dict[str, str]]:
            return {
                f"{fid:04X}": {s.label: f"{c.sw:04X}" for s, c in row.items()}
                for fid, row in sorted(table.items())
            }

        return {
            "source": self.source,
            "token": self.token,
            "overlays": self.overlays,
            "ok": self.ok,
            "apdus": self.apdus,
            "applications": [
                {
                    "name": m.name,
                    "aid": m.aid.hex().upper(),
                    "selectable": m.selectable,
                    "states": [s.label for s in m.states],
                    "read": cells(m.read),
                    "use": cells(m.use),
                    "declared": m.rules.to_data(),
                }
                for m in self.applications
            ],
            "counters_before": [_counter_json(c) for c in self.counters_before],
            "counters_after": [_counter_json(c) for c in self.counters_after],
            "differences": [d.text() for d in self.differences],
            "problems": list(self.problems),
            "notes": list(self.notes),
        }

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.to_json(), indent=2, ensure_ascii=False)
        if fmt == "markdown":
            return self._render_markdown()
        if fmt == "html":
            return self._render_html()
        return self._render_text()

    def _rows(self, m: ApplicationMatrix) -> list[tuple[str, str, list[str]]]:
        """(object, declared condition, cells) with ``!`` marking a difference."""
        bad = {(d.application, d.kind, d.fid, d.state) for d in self.differences}
        rows: list[tuple[str, str, list[str]]] = []
        for kind, table in (("read", m.read), ("use", m.use)):
            for fid, row in sorted(table.items()):
                cond = m.rules.read_condition(fid) if kind == "read" else m.rules.use_condition(fid)
                cells = []
                for s in m.states:
                    cell = row.get(s)
                    mark = "!" if (m.name, kind, fid, s.label) in bad else ""
                    cells.append("-" if cell is None else cell.text() + mark)
                rows.append((f"{kind} {fid:04X}", cond.describe(), cells))
        return rows

    def _summary_lines(self) -> list[str]:
        lines = [f"APDUs sent: {self.apdus}"]
        lines.append("Retry counters (before -> after):")
        after = {(c.application, c.fid): c for c in self.counters_after}
        for c in self.counters_before:
            a = after.get((c.application, c.fid))
            lines.append(
                f"  {c.application} {c.fid:04X} {c.label}: {c.text()} -> "
                f"{a.text() if a else 'not read'}"
            )
        for note in self.notes:
            lines.append(f"note: {note}")
        for problem in self.problems:
            lines.append(f"PROBLEM: {problem}")
        for d in self.differences:
            lines.append(f"DIFFERENCE: {d.text()}")
        verdict = "matches the declared rules" if self.ok else "DOES NOT match the declared rules"
        lines.append(f"Result: the card {verdict}.")
        return lines

    def _render_text(self) -> str:
        out = [
            f"Access audit of {self.source} (token {self.token or '?'}, overlays "
            f"{','.join(self.overlays) or 'none'})",
            "cells: SW of READ BINARY / signature; R: READ RECORD, IA: INTERNAL AUTHENTICATE;"
            " ! = differs from the declared rule",
        ]
        for m in self.applications:
            out.append("")
            out.append(f"[{m.name}] AID {m.aid.hex().upper()}")
            if not m.selectable:
                out.append("  not selectable")
                continue
            header = ["object", "declared", *(s.label for s in m.states)]
            rows = [[obj, cond, *cells] for obj, cond, cells in self._rows(m)]
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for r in [header, *rows]:
                line = "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                out.append("  " + line.rstrip())
        out.append("")
        out.extend(self._summary_lines())
        return "\n".join(out) + "\n"

    def _render_markdown(self) -> str:
        out = [f"# Access audit of `{self.source}`", ""]
        out.append(f"Token `{self.token or '?'}`, overlays: {','.join(self.overlays) or 'none'}.")
        for m in self.applications:
            out += ["", f"## {m.name} (`{m.aid.hex().upper()}`)", ""]
            if not m.selectable:
                out.append("not selectable")
                continue
            header = ["object", "declared", *(s.label for s in m.states)]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            for obj, cond, cells in self._rows(m):
                out.append("| " + " | ".join([obj, cond, *cells]) + " |")
        out += ["", "```", *self._summary_lines(), "```"]
        return "\n".join(out) + "\n"

    def _render_html(self) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8"><title>Access audit</title></head><body>',
            f"<h1>Access audit of {e(self.source)}</h1>",
        ]
        for m in self.applications:
            out.append(f"<h2>{e(m.name)} <code>{m.aid.hex().upper()}</code></h2>")
            if not m.selectable:
                out.append("<p>not selectable</p>")
                continue
            header = ["object", "declared", *(s.label for s in m.states)]
            out.append("<table border=1><tr>" + "".join(f"<th>{e(h)}</th>" for h in header))
            for obj, cond, cells in self._rows(m):
                tds = "".join(
                    f'<td style="color:red">{e(c)}</td>' if c.endswith("!") else f"<td>{e(c)}</td>"
                    for c in [obj, cond, *cells]
                )
                out.append(f"<tr>{tds}</tr>")
            out.append("</table>")
        out.append("<pre>" + e("\n".join(self._summary_lines())) + "</pre>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _counter_json(c: Counter) -> dict[str, Any]:
    return {"application": c.application, "fid": f"{c.fid:04X}", "sw": f"{c.sw:04X}"}


# --- inputs --------------------------------------------------------------------------------


def load_credentials(path: str | Path) -> dict[tuple[str, int], bytes]:
    """A TOML file of ``name = "secret"`` (names of credential_names.CREDENTIALS)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditError(f"{path}: cannot read credentials ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("credentials", data)
    out: dict[tuple[str, int], bytes] = {}
    for name, value in table.items():
        where = CREDENTIALS.get(name)
        if where is None:
            known = ", ".join(CREDENTIALS)
            raise AuditError(f"{path}: {name}: unknown credential (known: {known})")
        if not isinstance(value, str) or not value or not value.isascii():
            # never echo the value itself
            raise AuditError(f"{path}: {name}: expected a non-empty ASCII string")
        out[(where.application, where.fid)] = value.encode("ascii")
    return out


def load_rules_file(path: str | Path, overlays: Iterable[str] = ()) -> dict[str, AccessRules]:
    """Rules from a file shaped like ``card_emulator/access_rules.toml``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditError(f"{path}: cannot read rules ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: not valid TOML ({exc})") from None
    try:
        available: Mapping[str, Any] = raw.pop("overlay", {})
        rules = {ap: AccessRules.from_data(t, ap) for ap, t in raw.items()}
        for name in overlays:
            for ap, patch in available.get(name, {}).items():
                rules[ap] = rules[ap].overridden(patch, f"overlay.{name}.{ap}")
    except (RulesError, KeyError) as exc:
        raise AuditError(f"{path}: {exc}") from None
    return rules


# --- the prober ----------------------------------------------------------------------------


class _Prober:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.count = 0

    def send(self, command: CommandApdu) -> tuple[bytes, int]:
        response = self.transport.transmit(command.to_bytes())
        self.count += 1
        if len(response) < 2:
            raise AuditError(f"no status word in the answer to {command!r}")
        return response[:-2], int.from_bytes(response[-2:], "big")

    def sw(self, command: CommandApdu) -> int:
        return self.send(command)[1]

    def select_ap(self, aid: bytes) -> int:
        return self.sw(builders.select_aid(aid))

    def counter(self, fid: int) -> int:
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return sw
        return self.sw(builders.verify(None))

    def verify(self, fid: int, secret: bytes) -> int:
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return sw
        return self.sw(builders.verify(secret))

    def read(self, fid: int) -> Cell:
        sw = self.sw(builders.select_ef(fid))
        if sw != SW_OK:
            return Cell("select", sw)
        sw = self.sw(builders.read_binary(0, 1))
        if sw != SW_INCOMPATIBLE:
            return Cell("read-binary", sw)
        return Cell("read-record", self.sw(builders.read_record(1, le=1)))

    def use(self, fid: int) -> Cell:
        if 1 <= fid <= 0x1E:
            sw = self.sw(builders.compute_signature(PROBE_DIGEST_INFO, key_sfi=fid))
        else:
            sw = self.sw(builders.select_ef(fid))
            if sw != SW_OK:
                return Cell("select", sw)
            sw = self.sw(builders.compute_signature(PROBE_DIGEST_INFO))
        if sw != SW_CONDITIONS or not 1 <= fid <= 0x1E:
            return Cell("sign", sw)
        # 6985: not a signing key; an INTERNAL AUTHENTICATE key (common AP 0019) answers here
        return Cell("internal-auth", self.sw(builders.internal_authenticate(PROBE_CHALLENGE, fid)))


def _wrong_value(secret: bytes) -> bytes:
    """A value of the same length that differs from ``secret`` in its last character."""
    last = secret[-1:]
    replacement = b"0" if last != b"0" else b"1"
    return secret[:-1] + replacement


@dataclass(frozen=True, slots=True)
class CardLayout:
    """What to probe in one AP."""

    name: str
    aid: bytes
    files: tuple[int, ...]
    keys: tuple[int, ...]
    credentials: tuple[int, ...]


def layouts_from_rules(
    rules: Mapping[str, AccessRules], aids: Mapping[str, bytes] = APPLICATION_AIDS
) -> list[CardLayout]:
    """The objects to probe when only the declared rules are known (a real card)."""
    out = []
    for name, aid in aids.items():
        r = rules.get(name, AccessRules())
        creds = {w.fid for w in CREDENTIALS.values() if w.application == name}
        creds |= set(EXTRA_IEFS.get(name, ()))
        for cond in r.conditions():
            creds |= cond.credentials
        out.append(
            CardLayout(name, aid, tuple(sorted(r.read)), tuple(sorted(r.use)), tuple(sorted(creds)))
        )
    return out


def merge_layouts(a: Sequence[CardLayout], b: Sequence[CardLayout]) -> list[CardLayout]:
    """Union of two layouts, AP by AP (order of ``a`` first)."""
    by_name = {x.name: x for x in b}
    out = []
    seen = set()
    for x in [*a, *b]:
        if x.name in seen:
            continue
        seen.add(x.name)
        y = by_name.get(x.name, x)
        out.append(
            CardLayout(
                x.name,
                x.aid,
                tuple(sorted({*x.files, *y.files})),
                tuple(sorted({*x.keys, *y.keys})),
                tuple(sorted({*x.credentials, *y.credentials})),
            )
        )
    return out


def _label(app: str, fid: int) -> str:
    for name, where in CREDENTIALS.items():
        if (where.application, where.fid) == (app, fid):
            return f"{name} ({where.label})"
    return "no user secret"


def _read_token(prober: _Prober) -> str:
    if prober.select_ap(jpki.AID) != SW_OK:
        return ""
    if prober.sw(builders.select_ef(jpki.EF_TOKEN)) != SW_OK:
        return ""
    data, sw = prober.send(builders.read_binary(0, 32))
    return data.decode("ascii", "replace").rstrip(" \x00") if sw == SW_OK else ""


def run_audit(
    transport: Transport,
    *,
    credentials: Mapping[tuple[str, int], bytes],
    reference: Callable[[list[str]], Mapping[str, AccessRules]] = load_rules,
    card_rules: Mapping[str, AccessRules] | None = None,
    layouts: Sequence[CardLayout] | None = None,
    allow_destructive: bool = False,
    source: str = "card",
) -> AuditReport:
    """Probe the card behind ``transport`` and compare with the reference rules.

    ``reference(overlays)`` gives the declared rules for the card variant (the overlays follow
    from the JPKI token label). ``card_rules`` (an emulated card's own stored rules) is checked
    too, so both a drifted rule and a chip that does not enforce its own table are reported.
    """
    prober = _Prober(transport)
    token = _read_token(prober)
    overlays = ["smartphone"] if token in SMARTPHONE_TOKENS else []
    declared = dict(reference(overlays))
    report = AuditReport(source=source, token=token, overlays=overlays)
    plan = merge_layouts(layouts_from_rules(declared), layouts or [])

    # counters before
    selectable: dict[str, bool] = {}
    for lay in plan:
        selectable[lay.name] = prober.select_ap(lay.aid) == SW_OK
        if selectable[lay.name]:
            for fid in lay.credentials:
                report.counters_before.append(
                    Counter(lay.name, fid, _label(lay.name, fid), prober.counter(fid))
                )
    before = {(c.application, c.fid): c.tries for c in report.counters_before}

    for lay in plan:
        matrix = ApplicationMatrix(
            lay.name, lay.aid, selectable[lay.name], rules=declared.get(lay.name, AccessRules())
        )
        report.applications.append(matrix)
        if not matrix.selectable:
            report.problems.append(f"{lay.name}: AID {lay.aid.hex().upper()} not selectable")
            continue
        usable: list[int] = []
        for fid in lay.credentials:
            secret = credentials.get((lay.name, fid))
            if secret is None:
                continue
            tries = before.get((lay.name, fid))
            if tries is None or tries == 0:
                report.notes.append(f"{lay.name} {fid:04X}: blocked or unreadable; not verified")
            elif tries <= 1 and not allow_destructive:
                report.notes.append(
                    f"{lay.name} {fid:04X}: one try left; not verified "
                    "(a wrong value would block it; --allow-destructive overrides)"
                )
            else:
                usable.append(fid)
        states = [State()] + [State((c,)) for c in usable]
        states += [State(p) for p in itertools.combinations(usable, 2)]
        for state in states:
            if any(c not in usable for c in state.credentials):
                continue  # a credential was rejected: never try it again
            prober.select_ap(lay.aid)
            established = True
            for fid in state.credentials:
                sw = prober.verify(fid, credentials[(lay.name, fid)])
                if sw != SW_OK:
                    report.problems.append(
                        f"{lay.name} {fid:04X}: supplied credential rejected (SW {sw:04X}); "
                        "not tried again"
                    )
                    usable.remove(fid)
                    established = False
                    break
            if not established:
                continue
            matrix.states.append(state)
            for fid in lay.files:
                matrix.read.setdefault(fid, {})[state] = prober.read(fid)
            for fid in lay.keys:
                matrix.use.setdefault(fid, {})[state] = prober.use(fid)
        # drop states that lost a credential after they were recorded
        matrix.states = [s for s in matrix.states if all(c in usable for c in s.credentials)]
        if allow_destructive:
            _destructive_probes(
                prober,
                lay,
                usable=usable,
                credentials=credentials,
                before=before,
                report=report,
            )

    for lay in plan:
        if selectable[lay.name]:
            prober.select_ap(lay.aid)
            for fid in lay.credentials:
                report.counters_after.append(
                    Counter(lay.name, fid, _label(lay.name, fid), prober.counter(fid))
                )
    for c in report.counters_after:
        was = before.get((c.application, c.fid))
        if was is not None and c.tries is not None and c.tries < was and not allow_destructive:
            report.problems.append(
                f"{c.application} {c.fid:04X}: counter went down from {was} to {c.tries}"
            )

    tables: list[tuple[str, Mapping[str, AccessRules]]] = [("declared", declared)]
    if card_rules is not None:
        tables.append(("card", card_rules))
    for matrix in report.applications:
        for against, rules in tables:
            _compare(matrix, rules.get(matrix.name, AccessRules()), against, report)
    report.apdus = prober.count
    return report


def _destructive_probes(
    prober: _Prober,
    lay: CardLayout,
    *,
    usable: list[int],
    credentials: Mapping[tuple[str, int], bytes],
    before: Mapping[tuple[str, int], int | None],
    report: AuditReport,
) -> None:
    """One wrong VERIFY then the right one, for each credential with at least 2 tries left."""
    for fid in list(usable):
        tries = before.get((lay.name, fid))
        if tries is None or tries < 2:
            continue
        secret = credentials[(lay.name, fid)]
        prober.select_ap(lay.aid)
        sw = prober.verify(fid, _wrong_value(secret))
        if sw != 0x63C0 | (tries - 1):
            report.problems.append(
                f"{lay.name} {fid:04X}: wrong value answered {sw:04X}, "
                f"expected {0x63C0 | (tries - 1):04X}"
            )
        sw = prober.verify(fid, secret)
        if sw != SW_OK:
            report.problems.append(f"{lay.name} {fid:04X}: right value after a wrong one: {sw:04X}")
        report.notes.append(f"{lay.name} {fid:04X}: one wrong attempt made (then the right one)")


def _compare(
    matrix: ApplicationMatrix, rules: AccessRules, against: str, report: AuditReport
) -> None:
    for kind, table in (("read", matrix.read), ("use", matrix.use)):
        for fid, row in sorted(table.items()):
            cond = rules.read_condition(fid) if kind == "read" else rules.use_condition(fid)
            for state, cell in row.items():
                if state not in matrix.states:
                    continue
                expected = "open" if cond.opens(state.credentials) else "closed"
                if cell.outcome != expected:
                    report.differences.append(
                        Difference(
                            matrix.name,
                            kind,
                            fid,
                            state.label,
                            expected,
                            f"{cell.sw:04X} ({cell.outcome}, {cell.operation})",
                            against,
                        )
                    )
