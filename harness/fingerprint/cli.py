"""``mynacard fingerprint``: a card's behavioural profile, and comparisons of profiles.

* ``mynacard fingerprint (--reader NAME | --persona FILE) [--out FILE] [--dry-run]
  [--no-timing]`` probes a card and prints (or writes) its profile. Exit 0: complete; 1: the run
  stopped at an unexpected ``6Fxx`` or a transport failure (the reason on stderr; with
  ``--out`` the partial profile is written with ``"complete": false`` and ``"stopped"``, without
  ``--out`` nothing is printed); 2: it could not start.
* ``mynacard fingerprint diff A.json B.json [--format text|markdown|json] [--timing]``: exit
  0 when equal, 1 when a behaviour differs, 2 on a file that is not a profile.
* ``mynacard fingerprint adopt FILE``: the profile's ATR, FCI and status-word choices as a
  persona ``[card]`` / ``[policy]`` fragment, and what it cannot express.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from card_emulator import Card, ImageError, PersonaError
from harness.fingerprint import adopt as adopt_module
from harness.fingerprint import profile as profile_module
from harness.fingerprint.diff import FORMATS, compare
from harness.fingerprint.plan import build_plan, describe
from harness.fingerprint.runner import DEFAULT_TIMEOUT, Observations, Runner
from harness.standalone import run_alone
from readers.host_side.pcsc import PcscTransport
from readers.host_side.transport import InProcessTransport
from readers.scard import PcscError

PROG = "mynacard fingerprint"


def register(subparsers: Any) -> None:
    """Add ``fingerprint`` (with ``diff`` and ``adopt``) to ``mynacard``'s sub-parsers."""
    parser = subparsers.add_parser(
        "fingerprint",
        help="a non-destructive, secret-free behavioural profile of a card (JSON); diff, adopt",
        description=(
            "Probe a card with SELECT, READ BINARY, GET DATA, empty VERIFY (no data: no try is "
            "spent) and deliberately unknown INS / CLA bytes, and keep status words, FCI "
            "structure and sizes only — never a certificate, number, name or serial. "
            "Exit 0: complete; 1: stopped at an unexpected 6Fxx or a transport failure; "
            "2: could not start."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--reader", metavar="NAME", help="probe the card in this PC/SC reader")
    where.add_argument(
        "--persona", type=Path, metavar="FILE", help="probe a fresh emulated card, in-process"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help='write the profile here (also when the run stops: marked "complete": false)',
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the APDUs it would send; send nothing"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop when an answer takes longer than this (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--no-timing", action="store_true", help="leave the timing section out of the profile"
    )
    parser.set_defaults(func=run, fingerprint_command=None)
    sub = parser.add_subparsers(dest="fingerprint_command", metavar="ACTION")
    diff = sub.add_parser(
        "diff",
        help="name every behaviour that differs between two profiles",
        description="Exit 0 when the profiles are equal, 1 when they differ, 2 on bad input.",
    )
    diff.add_argument("a", type=Path, metavar="A.json")
    diff.add_argument("b", type=Path, metavar="B.json")
    diff.add_argument("--format", choices=FORMATS, default="text", help="report format")
    diff.add_argument("--timing", action="store_true", help="also compare the timing section")
    diff.set_defaults(func=run_diff)
    adopt = sub.add_parser(
        "adopt",
        help="a persona [card] / [policy] fragment (TOML) reproducing a profile's choices",
    )
    adopt.add_argument("file", type=Path, metavar="FILE")
    adopt.set_defaults(func=run_adopt)


def _error(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Probe (or, with ``--dry-run``, describe) and print or write the profile."""
    if args.reader is None and args.persona is None:
        return _error("give --reader NAME or --persona FILE (or an action: diff, adopt)")
    if not args.timeout > 0:
        return _error(f"--timeout must be more than 0 seconds, not {args.timeout:g}")
    steps = build_plan()
    if args.dry_run:
        print("# reset the card, then (nothing is sent in a dry run):")
        print("\n".join(describe(steps)))
        return 0
    try:
        found = _probe(args, steps)
    except (PersonaError, ImageError, PcscError) as exc:
        return _error(str(exc))
    profile = profile_module.build(found, timing=not args.no_timing)
    text = profile_module.dumps(profile)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if found.stopped is not None:
        kept = f"; incomplete profile written to {args.out}" if args.out else ""
        print(
            f"{PROG}: stopped after {found.sent} commands: {found.stopped}{kept}", file=sys.stderr
        )
        return 1
    if args.out is None:
        sys.stdout.write(text)
    else:
        print(f"{args.out}: {found.sent} commands, profile written")
    return 0


def _probe(args: argparse.Namespace, steps: list[Any]) -> Observations:
    if args.persona is not None:
        card = Card.from_persona(args.persona)  # a throwaway PKI: nothing is written
        transport = InProcessTransport(card)
        return Runner(transport, card.atr, reset=card.reset, timeout=args.timeout).run(steps)
    with PcscTransport(args.reader) as pcsc:
        reset = lambda: pcsc.reconnect(reset=True)  # noqa: E731
        return Runner(pcsc, pcsc.atr, reset=reset, timeout=args.timeout).run(steps)


def run_diff(args: argparse.Namespace) -> int:
    """Compare two profiles."""
    try:
        a = profile_module.load(args.a)
        b = profile_module.load(args.b)
    except profile_module.ProfileError as exc:
        return _error(str(exc))
    report = compare(a, b, a_name=str(args.a), b_name=str(args.b), timing=args.timing)
    sys.stdout.write(report.render(args.format))
    return 0 if report.equal else 1


def run_adopt(args: argparse.Namespace) -> int:
    """Print the persona fragment."""
    try:
        profile = profile_module.load(args.file)
    except profile_module.ProfileError as exc:
        return _error(str(exc))
    sys.stdout.write(adopt_module.fragment(profile, source=str(args.file)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m harness.fingerprint.cli fingerprint ...``)."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
