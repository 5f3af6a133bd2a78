"""Reports of a kiosk conformance run: JUnit XML for CI and one self-contained HTML page.

The HTML page has no external resources (inline CSS, no scripts): a summary, the scenario
table, the per-rule verdict matrix, and for every failed scenario the violated rules, the
commands that broke them (highlighted in the scenario's APDU trace) and the kiosk's stderr. A
matrix run (``--matrix``) adds the generation × scenario table: PASS, FAIL with the rules broken,
or n/a with the reason the catalogue gives; the text report prints the same table.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from apdu import describe
from harness.conformance.rules import GENERAL_RULES, OUTCOME_RULES, Rule
from harness.conformance.runner import ConformanceReport, NotApplicable, ScenarioResult
from harness.traces.trace_file import Event, Exchange

# -- JUnit -----------------------------------------------------------------------------------


def junit_xml(report: ConformanceReport) -> bytes:
    """One ``<testcase>`` per (scenario, applicable rule); a broken rule is a ``<failure>``."""
    cases = [(r, v) for r in report.results for v in r.verdicts]
    failures = sum(1 for _, v in cases if not v.passed)
    skipped = report.not_applicable
    suites = ET.Element("testsuites", name="mynacard kiosk conformance")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="kiosk-conformance",
        tests=str(len(cases) + len(skipped)),
        failures=str(failures),
        errors="0",
        skipped=str(len(skipped)),
        time=f"{report.seconds:.3f}",
        timestamp=report.started.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="kiosk-command", value=report.kiosk_command)
    for result, verdict in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"kiosk.{result.key.replace('/', '.')}",
            name=verdict.rule.id,
            time=f"{result.seconds / max(1, len(result.verdicts)):.3f}",
        )
        if not verdict.passed:
            failure = ET.SubElement(
                case,
                "failure",
                message=verdict.violations[0].text(),
                type=verdict.rule.id,
            )
            failure.text = "\n".join(v.text() for v in verdict.violations) + (
                f"\n\nrule: {verdict.rule.title}\nkiosk outcome: {result.outcome}"
                f"\ntrace: {result.trace_path}"
            )
    for na in skipped:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"kiosk.{na.generation}.{na.scenario.name}",
            name="not-applicable",
            time="0",
        )
        ET.SubElement(case, "skipped", message=na.reason)
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:"Noto Sans CJK JP","Noto Sans",sans-serif;margin:24px;color:#1d2433;
  background:#fff;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
  border-bottom:2px solid #d8dee9;padding-bottom:4px}h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d0d7e2;padding:4px 8px;
  text-align:left;vertical-align:top}th{background:#eef2f7}
.pass{background:#d9f2dd;color:#14532d;font-weight:bold}
.fail{background:#fbd5d5;color:#7f1d1d;font-weight:bold}
.na{color:#98a2b3;text-align:center}.matrix td{text-align:center}
.gen td.na{text-align:left;font-size:12px;max-width:260px}.gen td{min-width:150px}
.summary{font-size:16px;padding:10px 14px;border-radius:6px;display:inline-block}
code,.mono{font-family:"Noto Sans Mono CJK JP",monospace;font-size:12px}
td.mono{white-space:nowrap}
tr.bad td{background:#fff1f0}.rule{color:#7f1d1d;font-weight:bold}
pre{background:#f6f8fa;border:1px solid #d0d7e2;padding:8px;overflow-x:auto;font-size:12px}
.muted{color:#667085}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _all_rules(report: ConformanceReport) -> list[Rule]:
    used = {v.rule.id for r in report.results for v in r.verdicts}
    return [rule for rule in (*GENERAL_RULES, *OUTCOME_RULES) if rule.id in used]


def _summary(report: ConformanceReport) -> list[str]:
    passed = sum(1 for r in report.results if r.passed)
    total = len(report.results)
    broken = sorted({rule for r in report.results for rule in r.failed_rules})
    css = "pass" if report.passed else "fail"
    verdict = "CONFORMS" if report.passed else "DOES NOT CONFORM"
    what = "(generation, scenario) pairs" if report.matrix else "scenarios"
    na = f", {len(report.not_applicable)} n/a" if report.matrix else ""
    out = [
        f'<p class="summary {css}" id="verdict">{verdict}: {passed} of {total} {what} '
        f"passed{na}</p>",
        "<p>Kiosk command: <code>"
        + _e(report.kiosk_command)
        + f"</code><br>Run: {_e(report.started.strftime('%Y-%m-%d %H:%M:%S UTC'))}, "
        f"{report.seconds:.1f} s</p>",
    ]
    if broken:
        out.append("<p>Rules broken: " + ", ".join(f"<b>{_e(b)}</b>" for b in broken) + "</p>")
    return out


def _cells(report: ConformanceReport) -> dict[tuple[str, str], ScenarioResult | NotApplicable]:
    cells: dict[tuple[str, str], ScenarioResult | NotApplicable] = {}
    for r in report.results:
        cells[r.generation, r.scenario.name] = r
    for na in report.not_applicable:
        cells[na.generation, na.scenario.name] = na
    return cells


def _scenario_names(report: ConformanceReport) -> list[str]:
    names: list[str] = []
    for scenario in [r.scenario for r in report.results] + [
        na.scenario for na in report.not_applicable
    ]:
        if scenario.name not in names:
            names.append(scenario.name)
    return names


def _generation_matrix(report: ConformanceReport) -> list[str]:
    """The migration matrix: a row per scenario, a column per generation."""
    cells = _cells(report)
    out = [
        "<h2>Migration matrix: generation × scenario</h2>",
        "<p>Every scenario on a card of every generation; n/a where the catalogue says the "
        "scenario does not apply, with its reason.</p>",
        '<table class="gen" id="generation-matrix"><tr><th>Scenario</th>'
        + "".join(
            f'<th title="{_e(g.story)}">{_e(g.name)}<br><span class="muted">{_e(g.title)}</span>'
            "</th>"
            for g in report.generations
        )
        + "</tr>",
    ]
    for name in _scenario_names(report):
        row = [f"<tr><td>{_e(name)}</td>"]
        for g in report.generations:
            cell = cells.get((g.name, name))
            if cell is None:
                row.append('<td class="na">not run</td>')
            elif isinstance(cell, NotApplicable):
                row.append(f'<td class="na" data-cell="n/a">n/a: {_e(cell.reason)}</td>')
            elif cell.passed:
                row.append('<td class="pass" data-cell="pass">PASS</td>')
            else:
                broken = "".join(f"<br><code>{_e(rule)}</code>" for rule in cell.failed_rules)
                row.append(
                    f'<td class="fail" data-cell="fail"><a href="#s-{_e(cell.key)}">FAIL</a>'
                    f"{broken}</td>"
                )
        out.append("".join(row) + "</tr>")
    out.append("</table>")
    return out


def matrix_text(report: ConformanceReport) -> str:
    """The generation × scenario table as text (``PASS``, ``FAIL``, ``n/a``)."""
    cells = _cells(report)
    names = _scenario_names(report)
    width = max([len("scenario"), *(len(n) for n in names)])
    columns = [max(len(g.name), 4) for g in report.generations]
    lines = [
        f"{'scenario':<{width}}  "
        + "  ".join(f"{g.name:<{w}}" for g, w in zip(report.generations, columns, strict=True))
    ]
    for name in names:
        words = []
        for g, w in zip(report.generations, columns, strict=True):
            cell = cells.get((g.name, name))
            word = (
                "-"
                if cell is None
                else "n/a"
                if isinstance(cell, NotApplicable)
                else "PASS"
                if cell.passed
                else "FAIL"
            )
            words.append(f"{word:<{w}}")
        lines.append(f"{name:<{width}}  " + "  ".join(words).rstrip())
    for na in report.not_applicable:
        lines.append(f"  n/a {na.generation}/{na.scenario.name}: {na.reason}")
    return "\n".join(lines)


def _scenario_table(report: ConformanceReport) -> list[str]:
    out = [
        "<h2>Scenarios</h2>",
        '<table id="scenarios"><tr><th>Scenario</th><th>What happens</th><th>Expected</th>'
        "<th>Kiosk reported</th><th>Result</th><th>Time</th></tr>",
    ]
    for r in report.results:
        s = r.scenario
        css, word = ("pass", "PASS") if r.passed else ("fail", "FAIL")
        name = f'<a href="#s-{_e(r.key)}">{_e(r.key)}</a>' if not r.passed else _e(r.key)
        out.append(
            f"<tr><td>{name}<br><span class='muted'>{_e(s.title)}</span></td>"
            f"<td>{_e(s.story)}</td><td><code>{_e(s.expect)}</code></td>"
            f"<td><code>{_e(r.outcome)}</code></td><td class='{css}'>{word}</td>"
            f"<td>{r.seconds:.1f} s</td></tr>"
        )
    out.append("</table>")
    return out


def _matrix(report: ConformanceReport, rules: list[Rule]) -> list[str]:
    out = [
        "<h2>Rules</h2>",
        '<table id="rules"><tr><th>Rule</th><th>Meaning</th><th>Applies</th></tr>',
    ]
    for rule in rules:
        where = "every scenario" if rule in GENERAL_RULES else "scenarios that name it"
        out.append(
            f"<tr><td><code>{_e(rule.id)}</code></td><td>{_e(rule.title)}</td><td>{where}</td></tr>"
        )
    out += ["</table>", '<h3>Verdict per scenario and rule</h3><table class="matrix" id="matrix">']
    out.append(
        "<tr><th>Scenario</th>"
        + "".join(f"<th><code>{_e(rule.id)}</code></th>" for rule in rules)
        + "</tr>"
    )
    for r in report.results:
        verdicts = {v.rule.id: v for v in r.verdicts}
        cells = []
        for rule in rules:
            verdict = verdicts.get(rule.id)
            if verdict is None:
                cells.append('<td class="na">–</td>')
            elif verdict.passed:
                cells.append('<td class="pass">✓</td>')
            else:
                cells.append(f'<td class="fail" title="{_e(verdict.violations[0].text())}">✗</td>')
        out.append(f"<tr><td>{_e(r.key)}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    return out


def _trace_rows(result: ScenarioResult, marks: dict[int, list[str]]) -> Iterable[str]:
    start = result.trace.items[0].t if result.trace.items else 0.0
    for item in result.trace.items:
        offset = f"{item.t - start:8.3f}"
        if isinstance(item, Event):
            yield f"<tr><td class='mono'>{offset}</td><td colspan='5'>— {_e(item.event)}</td></tr>"
            continue
        assert isinstance(item, Exchange)
        broke = marks.get(item.seq, [])
        css = " class='bad'" if broke else ""
        sw = describe(int(item.sw, 16)) if len(item.sw) == 4 else "(no answer)"
        note = "".join(f"<div class='rule'>✗ {_e(rule)}</div>" for rule in broke)
        yield (
            f"<tr{css}><td class='mono'>{offset}</td><td class='mono'>#{item.seq}</td>"
            f"<td class='mono'>{_e(item.command)}</td><td>{_e(item.meaning)}{note}</td>"
            f"<td class='mono'>{_e(item.sw or '—')}</td><td>{_e(sw)}</td></tr>"
        )


def _failure(result: ScenarioResult) -> list[str]:
    s = result.scenario
    out = [
        f'<h3 id="s-{_e(result.key)}">{_e(result.key)} — {_e(s.title)}</h3>',
        f"<p>{_e(s.story)}<br>Expected <code>{_e(s.expect)}</code>, the kiosk reported "
        f"<code>{_e(result.outcome)}</code>.</p><ul>",
    ]
    marks: dict[int, list[str]] = {}
    for verdict in result.verdicts:
        for violation in verdict.violations:
            if violation.step is not None:
                marks.setdefault(violation.step.seq, []).append(verdict.rule.id)
            out.append(
                f"<li><span class='rule'>{_e(verdict.rule.id)}</span>: {_e(violation.text())}</li>"
            )
    out.append("</ul>")
    out.append(
        f"<p class='muted'>Trace ({_e(result.trace_path.name)}; PINs masked):</p>"
        "<table class='trace'><tr><th>t (s)</th><th>#</th><th>Command</th><th>Meaning</th>"
        "<th>SW</th><th>Status</th></tr>"
    )
    out += list(_trace_rows(result, marks))
    out.append("</table>")
    if result.stderr.strip():
        tail = "\n".join(result.stderr.strip().splitlines()[-25:])
        out.append(f"<p class='muted'>Kiosk stderr (last lines):</p><pre>{_e(tail)}</pre>")
    return out


def html_report(report: ConformanceReport) -> str:
    """The whole report as one HTML document."""
    rules = _all_rules(report)
    body = ["<h1>Kiosk conformance report</h1>", *_summary(report)]
    if report.matrix:
        body += _generation_matrix(report)
    body += _scenario_table(report)
    body += _matrix(report, rules)
    failed = [r for r in report.results if not r.passed]
    if failed:
        body.append("<h2>Failures</h2>")
        for result in failed:
            body += _failure(result)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Kiosk conformance report</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_reports(report: ConformanceReport, html_path: Path, junit_path: Path) -> None:
    """Write both reports (creating their directories)."""
    for path in (html_path, junit_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(html_report(report), encoding="utf-8")
    junit_path.write_bytes(junit_xml(report))
