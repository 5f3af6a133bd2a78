"""The ``mynacard`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu import MynacardError, TraceRecord
from harness.card_server import (
    MAX_SERVED,
    CardServer,
    ServableCard,
    parse_endpoint,
)
from harness.demo_persona import demo_persona_path, generation_persona_path
from harness.serve_config import configure as configure_serve

if TYPE_CHECKING:
    from harness.console.controlled_card import ControlledCard
    from harness.faults import Scenario

# Cold start (issue 18): the card emulator, the PKI, the other commands' modules (the audit,
# conformance, fingerprint, issuance, relay... engines, the web console, the host-side client)
# are imported where they are used (the function-level imports below). ``mynacard serve``
# starts its pcscd before it imports the card emulator, so pcscd's presence poll (every 400 ms)
# runs while the card is made; :func:`build_parser` imports the modules that register a
# command only when it builds the full parser.

DEMO_PERSONA = demo_persona_path()


class UsageError(ValueError):
    """A bad combination of command-line arguments."""


def _cmd_demo(args: argparse.Namespace) -> int:
    from card_emulator import Card  # noqa: PLC0415
    from harness.commands.demo import run_demo  # noqa: PLC0415 - see the imports above
    from harness.commands.summary import jpki_summary  # noqa: PLC0415
    from harness.default_pki import personalize_shared  # noqa: PLC0415
    from harness.personas import profile_persona  # noqa: PLC0415
    from readers.host_side.client import MynaClient  # noqa: PLC0415
    from readers.host_side.transport import InProcessTransport  # noqa: PLC0415

    path, persona = profile_persona(args.persona, args.profile)
    if not args.in_process:
        return 0 if run_demo(path, persona=persona) else 1
    card = Card(personalize_shared(persona))
    print(f"Demo card for {persona.holder.name} (persona {persona.label!r}), in-process")
    print(f"  ATR              {card.atr.hex(' ').upper()}")
    client = MynaClient(InProcessTransport(card))
    ok = jpki_summary(client, auth_pin=persona.pins.jpki_auth, sign_password=persona.pins.jpki_sign)
    return 0 if ok else 1


def _cmd_persona_check(args: argparse.Namespace) -> int:
    from card_emulator import persona as persona_module  # noqa: PLC0415

    for path in args.files:
        persona = persona_module.load(path)
        h = persona.holder
        print(f"{path}: ok — {h.name}, born {h.birth_date}, card expires {persona.card.expiry}")
    return 0


def _cmd_personalize(args: argparse.Namespace) -> int:
    from harness.default_pki import shared_card  # noqa: PLC0415

    card = shared_card(args.persona, image=args.image)
    print(f"{args.image}: card image ready (ATR {card.atr.hex().upper()})")
    card.close()
    return 0


def _describe(card: ServableCard) -> str:
    from card_emulator import Card  # noqa: PLC0415
    from harness.console.controlled_card import ControlledCard  # noqa: PLC0415
    from harness.console.state import holder_name  # noqa: PLC0415
    from harness.faults import FaultyCard  # noqa: PLC0415

    if isinstance(card, ControlledCard):
        faults = card.faults
        return _describe(faults if faults is not None else card.card)
    if isinstance(card, FaultyCard):
        inner = _describe(card.card)  # type: ignore[arg-type]
        return f"{inner}, faults of {card.scenario.name}, ATR {card.atr.hex(' ').upper()}"
    if not isinstance(card, Card):
        return type(card).__name__
    meta = card.content.meta
    name = holder_name(card)
    holder = f"{name}, " if name is not None else ""
    return (
        f"{meta.get('persona_label', 'card')}: {holder}{meta.get('token', '')}, "
        f"ATR {card.atr.hex(' ').upper()}"
    )


def _serve_scenario(text: str) -> tuple[dict[str, Any], Scenario | None]:
    """A catalogue scenario by name (persona overrides + faults), or a fault scenario file."""
    from harness.conformance.catalogue import load_catalogue  # noqa: PLC0415
    from harness.faults import Scenario  # noqa: PLC0415

    by_name = {s.name: s for s in load_catalogue()}
    if text in by_name:
        entry = by_name[text]
        return dict(entry.persona), entry.card
    if not Path(text).is_file():
        raise UsageError(
            f"--scenario {text!r} is neither a file nor a kiosk scenario ({', '.join(by_name)})"
        )
    return {}, Scenario.load(text)


def _check_trace_path(path: Path) -> None:
    """``serve --trace``: a file we can append to, in a directory that exists."""
    try:
        if path.is_dir():
            raise UsageError(f"--trace {path}: is a directory, not a file")
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(f"--trace {path}: directory {folder} does not exist")
        if not os.access(path if path.exists() else folder, os.W_OK):
            raise UsageError(f"--trace {path}: not writable")
    except OSError as exc:  # e.g. a file name longer than the file system allows
        raise UsageError(f"--trace: cannot use {str(path)[:80]!r} ({exc.strerror})") from None


def _check_console_port(port: object) -> None:
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
    ):
        raise UsageError(f"--console-port must be 0-65535, not {port}")


def _console_card(card: ServableCard) -> ControlledCard:
    """``card`` in the proxy the console drives (its faults inside the proxy)."""
    from card_emulator import Card  # noqa: PLC0415
    from harness.console.controlled_card import ControlledCard  # noqa: PLC0415
    from harness.faults import FaultyCard  # noqa: PLC0415

    if isinstance(card, FaultyCard) and isinstance(card.card, Card):
        return ControlledCard(card.card, card.scenario)
    if isinstance(card, Card):
        return ControlledCard(card)
    raise TypeError(f"the console drives emulated cards, not {type(card).__name__}")


def _reserve_console_port(args: argparse.Namespace) -> Any:
    """The console's listening socket, bound before pcscd starts (a busy ``--console-port``
    is refused before anything else happens); ``None`` without ``--console``."""
    if not args.console:
        return None
    from harness.console.web.server import listen_socket  # noqa: PLC0415

    return listen_socket(args.console_port or 0)


def _start_console(
    server: CardServer, args: argparse.Namespace, personas: list[Path], listener: Any
) -> Any:
    """The console over ``server``'s cards (PKI: the shared one they were issued by), on
    ``listener``; prints its address."""
    from harness.console import CardController  # noqa: PLC0415 - web stack only when asked
    from harness.console.web.process import ConsoleProcess  # noqa: PLC0415
    from harness.default_pki import pki_store  # noqa: PLC0415

    controller = CardController.for_server(server, pki=pki_store())
    console = ConsoleProcess(controller, personas=personas, listener=listener)
    console.start()
    print(f"console {console.url}", flush=True)
    return console


def _log_apdu(record: TraceRecord) -> None:
    print(f"[{record.reader}] {record.text()}", flush=True)


def _serve_cards(
    args: argparse.Namespace,
    personas: list[Path],
    overrides: dict[str, Any],
    faults: Scenario | None,
) -> list[tuple[str, ServableCard]]:
    """The cards ``serve`` puts into readers (personas checked before any card is made)."""
    from card_emulator import persona as persona_module  # noqa: PLC0415
    from harness.default_pki import shared_card  # noqa: PLC0415
    from harness.faults import FaultyCard  # noqa: PLC0415
    from harness.personas import card_from_persona, profile_overrides  # noqa: PLC0415

    generation: dict[Path, dict[str, Any]] = {}
    for path in personas:  # every persona checked before any card is made (and recorded)
        persona_module.load(path)
        generation[path] = profile_overrides(path, args.profile)
    cards: list[tuple[str, ServableCard]] = []
    for path in personas:
        if generation[path]:  # --profile: another generation than the persona names
            if args.image:
                raise UsageError(
                    f"--profile {args.profile} with --image: {path} names profile "
                    f"{persona_module.load(path).profile!r}, and a durable image keeps the "
                    "generation it was made with; give a persona naming that profile"
                )
            card = card_from_persona(
                path,
                **{**overrides, **generation[path]},
                **({"counters": dict(faults.counters)} if faults is not None else {}),
            )
        elif args.image:
            if faults is not None and (overrides or faults.counters):
                raise UsageError(
                    "--image with a --scenario that changes the persona or its counters: "
                    "a durable image keeps its own state; use a scenario with faults only"
                )
            card = shared_card(path, image=args.image)
        elif faults is None:
            card = shared_card(path)
        else:
            card = card_from_persona(path, **overrides, counters=dict(faults.counters))
        cards.append((str(path), card if faults is None else FaultyCard(card, faults)))
    if args.console:  # each card in the proxy whose lock the console and the reader share
        cards = [(label, _console_card(card)) for label, card in cards]
    return cards


def _cmd_serve(args: argparse.Namespace) -> int:
    port_given = args.console_port is not None
    args = configure_serve(args)  # --config FILE under the flags given; $MYNACARD_PKI from it
    if port_given and not args.console:
        raise UsageError("--console-port goes with --console (or [console] enabled = true)")
    _check_console_port(args.console_port)
    if args.image and len(args.persona) > 1:
        raise UsageError("--image goes with exactly one --persona")
    if args.trace is not None:
        _check_trace_path(args.trace)
    try:
        endpoints = [parse_endpoint(text) for text in args.vpcd]
    except ValueError as exc:
        raise UsageError(f"--vpcd {exc}") from None
    if args.readers is not None and not 1 <= args.readers <= MAX_SERVED:
        raise UsageError(f"--readers must be 1-{MAX_SERVED}, not {args.readers}")
    if not 0 < args.reconnect_timeout <= 3600:
        raise UsageError(
            f"--reconnect-timeout must be more than 0 and at most 3600 seconds, "
            f"not {args.reconnect_timeout}"
        )
    if args.profile is not None:  # checked before pcscd starts (imports the card emulator)
        from harness.personas import profile_value  # noqa: PLC0415

        args.profile = profile_value(args.profile)
    personas = args.persona or [generation_persona_path(args.profile)]
    overrides, faults = _serve_scenario(args.scenario) if args.scenario else ({}, None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before pcscd starts: stopped cleanly
    listener = _reserve_console_port(args)
    server = CardServer(
        [],
        readers=args.readers,
        endpoints=endpoints,
        trace=args.trace,
        private_socket=args.private_socket,
        on_exchange=_log_apdu if args.verbose else None,
        reconnect_for=args.reconnect_timeout,
    )
    try:
        # pcscd first: its first presence poll has passed before any card can be in, and the
        # next comes 400 ms later; making the cards (importing the emulator, personalizing)
        # runs meanwhile. A persona error stops pcscd again (nothing was printed yet).
        server.open_readers(len(personas))
        server.cards = _serve_cards(args, personas, overrides, faults)
    except BaseException:
        server.stop()
        if listener is not None:
            listener.close()
        raise
    with server:
        console = _start_console(server, args, personas, listener) if listener else None
        server.announce_pcscd()
        for served in server.served:
            print(f"  {served.endpoint}  ← {_describe(served.card)}")
        for empty in server.empty_readers:
            print(f"  {empty}  (empty)")
        server.announce_clients(args.trace)
        try:
            server.run_until(stop)
        finally:
            if console is not None:  # the console first, then the cards
                console.stop()
    if server.failure is not None:
        print(f"mynacard serve: {server.failure}; cards removed, pcscd stopped", file=sys.stderr)
        return 1
    print("stopped: cards removed, pcscd stopped.")
    return 0


class _VersionAction(argparse._VersionAction):
    """``--version``, with the version looked up (importlib.metadata) only when asked."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from apdu.version import version  # noqa: PLC0415 - importlib.metadata: ~40 ms

        self.version = f"%(prog)s {version()}"
        super().__call__(parser, namespace, values, option_string)


def _root_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any]]:
    parser = argparse.ArgumentParser(
        prog="mynacard",
        description="Emulated Japanese My Number card (マイナンバーカード) and its test tools.",
    )
    return parser, parser.add_subparsers(dest="command", required=True, metavar="COMMAND")


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        action=_VersionAction,
        version="%(prog)s VERSION",
        help="show program's version number and exit",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole ``mynacard`` parser: every command with its help and flags (the docs site's
    CLI page and shell completion are generated from it)."""
    # Only the full parser needs the modules that register these commands.
    from harness.audit import cli as audit_cli  # noqa: PLC0415
    from harness.commands import completion, fidelity  # noqa: PLC0415
    from harness.commands import pki as pki_cli  # noqa: PLC0415
    from harness.commands import trace as trace_cli  # noqa: PLC0415
    from harness.conformance import cli as conformance_cli  # noqa: PLC0415
    from harness.doctor import cli as doctor_cli  # noqa: PLC0415
    from harness.fingerprint import cli as fingerprint_cli  # noqa: PLC0415
    from harness.fleet import cli as fleet_cli  # noqa: PLC0415
    from harness.issuance import cli as issue_cli  # noqa: PLC0415
    from harness.relay import cli as relay_cli  # noqa: PLC0415

    parser, sub = _root_parser()

    demo = sub.add_parser("demo", help="put the demo card to work and print what a reader sees")
    demo.add_argument(
        "--persona",
        type=Path,
        help="persona TOML file (default: the demo persona of --profile's generation)",
    )
    demo.add_argument(
        "--profile",
        metavar="NAME|FILE",
        help="card generation: current, next-generation or a profile file (default: the "
        "persona's own)",
    )
    demo.add_argument(
        "--in-process", action="store_true", help="talk to the card directly, without PC/SC"
    )
    demo.set_defaults(func=_cmd_demo)

    check = sub.add_parser("persona-check", help="validate persona files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(func=_cmd_persona_check)

    _add_serve(sub)

    personalize = sub.add_parser("personalize", help="create a durable card image from a persona")
    personalize.add_argument("--persona", type=Path, required=True, help="persona TOML file")
    personalize.add_argument("--image", type=Path, required=True, help="card image to create")
    personalize.set_defaults(func=_cmd_personalize)

    relay_cli.register(sub, UsageError)
    fleet_cli.register(sub, UsageError)
    trace_cli.register(sub)
    audit_cli.register(sub)
    pki_cli.register(sub)
    conformance_cli.register(sub)
    issue_cli.register(sub)
    fidelity.register(sub)
    doctor_cli.register(sub)
    fingerprint_cli.register(sub)
    completion.register(sub, parser)
    _add_version(parser)
    return parser


def _serve_parser() -> argparse.ArgumentParser:
    """The root parser with only ``serve`` (same usage, same ``serve`` flags and messages):
    what ``mynacard serve ...`` parses with, without importing every other command."""
    parser, sub = _root_parser()
    _add_serve(sub)
    _add_version(parser)
    return parser


def _add_serve(sub: argparse._SubParsersAction[Any]) -> None:
    serve = sub.add_parser(
        "serve", help="put cards into virtual PC/SC readers (vpcd) until interrupted"
    )
    serve.add_argument(
        "--persona", type=Path, action="append", default=[], help="persona file (repeatable)"
    )
    serve.add_argument("--image", type=Path, help="serve this durable card image (created if new)")
    serve.add_argument(
        "--profile",
        metavar="NAME|FILE",
        help="card generation of every card: current, next-generation or a profile file "
        "(default: each persona's own; without --persona, the demo persona of that generation)",
    )
    serve.add_argument(
        "--readers",
        type=int,
        help="number of virtual readers (default: one per card; over 16, one pcscd per 16)",
    )
    serve.add_argument(
        "--vpcd",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="connect to this vpcd endpoint instead of starting readers (repeatable)",
    )
    serve.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="inject faults: a kiosk scenario by name (mynacard conformance list) or a fault "
        "scenario TOML file (harness/faults/)",
    )
    serve.add_argument("--trace", type=Path, help="append masked APDUs to this JSON Lines file")
    serve.add_argument(
        "--private-socket",
        action="store_true",
        help="always run our own pcscd on a private socket",
    )
    serve.add_argument(
        "--reconnect-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a card waits for its reader to come back when pcscd or vpcd goes away "
        "before serve gives up and exits non-zero (default 30)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="print every (masked) APDU")
    serve.add_argument(
        "--console",
        action="store_true",
        help="serve the live console (watch and drive the cards in a browser) on 127.0.0.1 and "
        "print its address: console http://127.0.0.1:PORT/?token=TOKEN",
    )
    serve.add_argument(
        "--console-port",
        type=int,
        metavar="PORT",
        help="the console's port, 0-65535 (default 0: any free port)",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read these settings from a TOML file (keys: readers, personas, profile, image, "
        "vpcd, scenario, trace, private_socket, reconnect_timeout, verbose, pki, and [console] "
        "enabled, port); flags given here win",
    )
    serve.set_defaults(func=_cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mynacard`` console script."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = _serve_parser() if arguments[:1] == ["serve"] else build_parser()
    args = parser.parse_args(arguments)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))
    except MynacardError as exc:  # every error raised on purpose names what is wrong
        print(f"mynacard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
