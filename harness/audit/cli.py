"""``mynacard audit``: print a card's access matrix and compare it with the declared rules.

Wire into :mod:`harness.cli` with ``audit_cli.register(sub)``. Exit status: 0 when the card
matches the declared rules, 1 on any difference (each one names its cell), 2 when the audit
could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from apdu import TraceRecord
from apdu.vocabulary import credential_name
from card_emulator import Card, ImageError, PersonaError
from card_emulator.access import AccessRules, RulesError, load_rules
from card_emulator.objects import CredentialFormat
from card_emulator.persona import load as load_persona
from card_emulator.profiles import DEFAULT_PROFILE, CardProfile, ProfileError, load_profile
from harness.audit.engine import run_audit
from harness.audit.report import AuditError, AuditReport
from harness.audit.rules import CardLayout, load_credentials, load_rules_file
from harness.standalone import run_alone
from readers.host_side.pcsc import PcscTransport
from readers.host_side.transport import InProcessTransport, Transport
from readers.scard import PcscError

FORMATS = ("text", "markdown", "html", "json")


def register(subparsers: Any) -> None:
    """Add the ``audit`` sub-command to ``mynacard``'s sub-parsers."""
    audit = subparsers.add_parser(
        "audit",
        help="probe every AP x EF x key under every credential state and compare with the rules",
        description=(
            "Probe a card (emulated or real) for which file / key opens under which credential "
            "and compare the matrix with the declared access rules. On a real card only empty "
            "VERIFYs and the credentials you supply are sent, unless --allow-destructive."
        ),
    )
    where = audit.add_mutually_exclusive_group(required=True)
    where.add_argument("--persona", type=Path, help="audit a fresh emulated card from this persona")
    where.add_argument("--reader", help="audit the card in this PC/SC reader")
    audit.add_argument(
        "--credentials",
        type=Path,
        help='TOML file of credentials to verify: jpki_auth = "....", text_pin = ... '
        "(a persona's own values are used by default)",
    )
    audit.add_argument("--rules", type=Path, help="compare with this rules file instead")
    audit.add_argument(
        "--profile",
        help="the card generation whose declared rules and applications to audit: current "
        "(default), next-generation or a profile file (default with --persona: the persona's)",
    )
    audit.add_argument("--format", choices=FORMATS, default="text", help="report format")
    audit.add_argument(
        "--allow-destructive",
        action="store_true",
        help="also send one wrong value per credential (never when it could block it)",
    )
    audit.add_argument("--trace", type=Path, help="append masked APDUs to this JSON Lines file")
    audit.add_argument(
        "-v", "--verbose", action="store_true", help="print every (masked) APDU on stderr"
    )
    audit.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the audit the arguments describe; print the report; return the exit status."""
    try:
        report = _audit(args)
    except (AuditError, PersonaError, ImageError, PcscError, RulesError, ProfileError) as exc:
        print(f"mynacard audit: {exc}", file=sys.stderr)
        return 2
    print(report.render(args.format), end="")
    return 0 if report.ok else 1


def _reference(
    args: argparse.Namespace, profile: CardProfile
) -> Callable[[list[str]], Mapping[str, AccessRules]]:
    if args.rules is not None:
        return partial(load_rules_file, args.rules)
    if profile.rules_file is None:
        return lambda _overlays: profile.rules()
    return load_rules


def _recorder(args: argparse.Namespace) -> Callable[[TraceRecord], None] | None:
    if not (args.trace or args.verbose):
        return None
    trace_path: Path | None = args.trace

    def record(rec: TraceRecord) -> None:
        if args.verbose:
            print(rec.text(), file=sys.stderr)
        if trace_path is not None:
            with trace_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")

    return record


def _audit(args: argparse.Namespace) -> AuditReport:
    supplied = load_credentials(args.credentials) if args.credentials else {}
    on_exchange = _recorder(args)
    if args.persona is not None:
        persona = load_persona(args.persona)
        profile = load_profile(args.profile or persona.profile, args.persona.parent)
        reference = _reference(args, profile)
        card = Card.from_persona(args.persona)
        credentials = {
            (app.name, fid): c.value
            for app in card.content.applications
            for fid, c in app.credentials.items()
            if (profile.rules_file is None or credential_name(app.name, fid) is not None)
            and c.format is not CredentialFormat.UNKNOWN
        }
        credentials.update(supplied)
        layouts = [
            CardLayout(
                app.name,
                app.aid,
                tuple(sorted({*app.files, *app.records})),
                tuple(sorted(app.keys)),
                tuple(sorted(app.credentials)),
            )
            for app in card.content.applications
        ]
        transport: Transport = InProcessTransport(card, on_exchange=on_exchange)
        return run_audit(
            transport,
            credentials=credentials,
            reference=reference,
            card_rules=card.content.rules,
            layouts=layouts,
            allow_destructive=args.allow_destructive,
            source=f"persona {args.persona}",
            aids=profile.aids(),
        )
    profile = load_profile(args.profile or DEFAULT_PROFILE)
    with PcscTransport(args.reader, on_exchange=on_exchange) as pcsc:
        return run_audit(
            pcsc,
            credentials=supplied,
            reference=_reference(args, profile),
            allow_destructive=args.allow_destructive,
            source=f"reader {args.reader!r}",
            aids=profile.aids(),
        )


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m harness.audit.cli audit ...``)."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
