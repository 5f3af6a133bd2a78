"""``mynacard trace FILE [--replay --persona P]``: pretty-print or replay an APDU trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from card_emulator import Card, PersonaError
from harness.faults import FaultyCard, Scenario, ScenarioError
from harness.traces.replay import ReplayCard, replay
from harness.traces.trace_file import TraceError, format_trace, read_trace


def _cmd_trace(args: argparse.Namespace) -> int:
    try:
        trace = read_trace(args.file)
    except TraceError as exc:
        print(f"mynacard: {exc}", file=sys.stderr)
        return 2
    if not args.replay:
        for line in format_trace(trace):
            print(line)
        return 0
    recorded = trace.header.get("persona")
    secrets_path = args.secrets_from or (Path(recorded) if recorded else None) or args.persona
    try:
        plain = Card.from_persona(args.persona)
        card: ReplayCard = plain
        if args.scenario is not None:
            card = FaultyCard(plain, Scenario.load(args.scenario))
        secrets = Card.from_persona(secrets_path) if _is_file(secrets_path) else None
    except (PersonaError, ScenarioError) as exc:
        print(f"mynacard: {exc}", file=sys.stderr)
        return 2
    differences = replay(trace, card, secrets=secrets, compare_data=not args.sw_only)
    total = len(trace.exchanges)
    for difference in differences:
        print(difference.text())
    print(f"replayed {total} APDUs against {args.persona}: {len(differences)} difference(s)")
    return 1 if differences else 0


def _is_file(path: str | Path) -> bool:
    """``Path.is_file`` that says False for a path the OS refuses (too long, a NUL)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``trace`` command to the ``mynacard`` parser."""
    trace = subparsers.add_parser("trace", help="pretty-print an APDU trace, or replay it")
    trace.add_argument("file", type=Path, metavar="FILE", help="JSON Lines trace")
    trace.add_argument("--replay", action="store_true", help="replay it against a card")
    trace.add_argument("--persona", type=Path, help="persona of the card to replay against")
    trace.add_argument(
        "--secrets-from",
        type=Path,
        help="persona whose PINs fill masked VERIFY data (default: the trace's, else --persona)",
    )
    trace.add_argument("--scenario", type=Path, help="fault scenario TOML applied to the card")
    trace.add_argument(
        "--sw-only", action="store_true", help="compare status words only, not response data"
    )
    trace.set_defaults(func=_checked)


def _checked(args: argparse.Namespace) -> int:
    if args.replay and args.persona is None:
        print("mynacard trace: --replay needs --persona", file=sys.stderr)
        return 2
    return _cmd_trace(args)
