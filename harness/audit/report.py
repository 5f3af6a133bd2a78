"""What an access-rule audit found: the matrix of status words per AP, and its renderings.

Each :class:`ApplicationMatrix` holds, for one AP, the :class:`Cell` (command and exact status
word) of every object under every credential :class:`State`; the :class:`AuditReport` adds the
retry :class:`Counter` values before and after, the :class:`Difference` from the rule tables,
problems and notes, and renders as text, Markdown, HTML or JSON.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from apdu import retries_in
from apdu.errors import MynacardError
from card_emulator.access import AccessRules

__all__ = [
    "SW_BLOCKED",
    "SW_CONDITIONS",
    "SW_DENIED",
    "SW_INCOMPATIBLE",
    "SW_OK",
    "ApplicationMatrix",
    "AuditError",
    "AuditReport",
    "Cell",
    "Counter",
    "Difference",
    "State",
]

SW_OK = 0x9000
SW_DENIED = 0x6982
SW_BLOCKED = 0x6984
SW_CONDITIONS = 0x6985
SW_INCOMPATIBLE = 0x6981


class AuditError(MynacardError, RuntimeError):
    """The audit could not run (bad credentials file, rules file, card not answering)."""


@dataclass(frozen=True, slots=True)
class State:
    """A set of credentials verified in one AP (empty = nothing verified)."""

    credentials: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """``none`` or the credential FIDs joined by ``+`` (e.g. ``0011+0014``)."""
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
        """The matrix cell: the SW, prefixed ``R:`` / ``IA:`` / the operation if not the usual."""
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
        """Tries left, or None when the SW is not a counter's answer."""
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
        """No difference from the rule tables and no problem."""
        return not self.differences and not self.problems

    # --- renderers ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data (SWs as hex text, secrets never included)."""

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
        """The report as ``json``, ``markdown``, ``html`` or (anything else) ``text``."""
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
