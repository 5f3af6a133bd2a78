"""``mynacard conformance …``: run a kiosk program against the conformance catalogue.

    mynacard conformance list
    mynacard conformance run --kiosk-cmd "python3 my_kiosk.py" [--scenario NAME …] [--out DIR]
    mynacard conformance run --kiosk-cmd "…" --matrix [--generation NAME …]

``run`` exits 0 when the kiosk keeps every rule in every scenario, 1 when it breaks one, and 2
on a usage or setup error. It writes ``DIR/report.html`` (one self-contained page),
``DIR/junit.xml``, and the evidence: ``DIR/traces/*.jsonl`` (masked APDU traces),
``DIR/kiosk-output/*`` (the kiosk's stdout and stderr), ``DIR/personas/*.toml``.

``--matrix`` is the relying-party migration matrix: every scenario on a card of every
generation of the catalogue (``current``, ``next-generation``, ``smartphone``; ``--generation``
picks some), the evidence in one folder per generation, and the report's generation × scenario
table (pass, fail with the rules broken, or n/a with the reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from card_emulator import PersonaError
from harness.conformance.catalogue import (
    load_catalogue,
    load_full_catalogue,
    select,
    select_generations,
)
from harness.conformance.report import matrix_text, write_reports
from harness.conformance.rules import GENERAL_RULES
from harness.conformance.runner import DEFAULT_TIMEOUT, ConformanceRunner
from harness.faults import ScenarioError
from jpki.pki_store import PkiError
from readers.scard import PcscError


def _list(args: argparse.Namespace) -> int:
    scenarios = load_catalogue(args.catalogue)
    width = max(len(s.name) for s in scenarios)
    print("Scenarios (each also checks the general rules):")
    for s in scenarios:
        print(f"  {s.name:<{width}}  {s.title}: expect {s.expect} [{s.outcome_rule}]")
    print("General rules:")
    for rule in GENERAL_RULES:
        print(f"  {rule.id:<28} {rule.title}")
    generations = load_full_catalogue(args.catalogue).generations
    if generations:
        print("Generations (run --matrix):")
        for g in generations:
            print(f"  {g.name:<{width}}  {g.title}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print("mynacard conformance: --timeout must be > 0", file=sys.stderr)
        return 2
    if args.generation and not args.matrix:
        print("mynacard conformance: --generation goes with --matrix", file=sys.stderr)
        return 2
    catalogue = load_full_catalogue(args.catalogue)
    scenarios = select(catalogue.scenarios, args.scenario)
    generations = select_generations(catalogue.generations, args.generation)
    if args.matrix and not generations:
        print(
            "mynacard conformance: --matrix: the catalogue declares no [[generation]]",
            file=sys.stderr,
        )
        return 2
    out: Path = args.out
    runner = ConformanceRunner(
        args.kiosk_cmd,
        out,
        base_persona=args.persona,
        timeout=args.timeout,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    report = runner.run(scenarios, generations if args.matrix else None)
    html_path = args.html or out / "report.html"
    junit_path = args.junit or out / "junit.xml"
    write_reports(report, html_path, junit_path)
    passed = sum(1 for r in report.results if r.passed)
    if report.matrix:
        print(matrix_text(report))
        print(
            f"{passed}/{len(report.results)} (generation, scenario) pairs passed, "
            f"{len(report.not_applicable)} n/a, in {report.seconds:.1f} s"
        )
    else:
        print(f"{passed}/{len(report.results)} scenarios passed in {report.seconds:.1f} s")
    for result in report.results:
        for verdict in result.verdicts:
            for violation in verdict.violations:
                print(f"  FAIL {result.key} / {verdict.rule.id}: {violation.text()}")
    print(f"report: {html_path}\njunit:  {junit_path}")
    return 0 if report.passed else 1


def _guarded(function: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(function(args))
        except (ScenarioError, PersonaError, PkiError, PcscError, ValueError) as exc:
            print(f"mynacard conformance: {exc}", file=sys.stderr)
            return 2

    return run


def register(subparsers: Any) -> None:
    """Add ``conformance`` and its subcommands to a ``mynacard`` command line."""
    conformance = subparsers.add_parser(
        "conformance", help="kiosk conformance suite: run a kiosk program against scenarios"
    )
    sub = conformance.add_subparsers(dest="conformance_command", required=True, metavar="SUB")
    listing = sub.add_parser("list", help="the scenarios and rules")
    listing.add_argument("--catalogue", type=Path, help="a catalogue TOML instead of the built-in")
    listing.set_defaults(func=_guarded(_list))

    run = sub.add_parser("run", help="run the kiosk once per scenario and write the reports")
    run.add_argument(
        "--kiosk-cmd",
        required=True,
        metavar="COMMAND",
        help='the kiosk program, e.g. "python3 kiosk.py" (split like a shell would)',
    )
    run.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable; default: all)",
    )
    run.add_argument(
        "--matrix",
        action="store_true",
        help="the relying-party migration matrix: every scenario on every card generation of "
        "the catalogue (current, next-generation, smartphone)",
    )
    run.add_argument(
        "--generation",
        action="append",
        default=[],
        metavar="NAME",
        help="with --matrix: only this generation (repeatable; default: all)",
    )
    run.add_argument("--catalogue", type=Path, help="a catalogue TOML instead of the built-in")
    run.add_argument("--persona", type=Path, help="base persona (default: the demo persona)")
    run.add_argument(
        "--out", type=Path, default=Path("conformance-report"), help="output directory"
    )
    run.add_argument("--html", type=Path, help="HTML report path (default OUT/report.html)")
    run.add_argument("--junit", type=Path, help="JUnit XML path (default OUT/junit.xml)")
    run.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one kiosk run may take (default {DEFAULT_TIMEOUT:.0f})",
    )
    run.set_defaults(func=_guarded(_run))
