"""The ``mynacard`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from card_emulator import Card, ImageError, PersonaError
from card_emulator import persona as persona_module
from harness.summary import jpki_summary
from readers.client import CardError, InterlockError, MynaClient
from readers.transport import InProcessTransport

DEMO_PERSONA = Path(__file__).resolve().parent.parent / "vectors" / "personas" / "demo.toml"


def _cmd_demo(args: argparse.Namespace) -> int:
    persona = persona_module.load(args.persona)
    card = Card.from_persona(args.persona)
    print(f"Demo card for {persona.holder.name} (persona {persona.label!r}), in-process")
    print(f"  ATR              {card.atr.hex(' ').upper()}")
    client = MynaClient(InProcessTransport(card))
    ok = jpki_summary(client, auth_pin=persona.pins.jpki_auth, sign_password=persona.pins.jpki_sign)
    return 0 if ok else 1


def _cmd_persona_check(args: argparse.Namespace) -> int:
    for path in args.files:
        persona = persona_module.load(path)
        h = persona.holder
        print(f"{path}: ok — {h.name}, born {h.birth_date}, card expires {persona.card.expiry}")
    return 0


def _cmd_personalize(args: argparse.Namespace) -> int:
    card = Card.from_persona(args.persona, image=args.image)
    print(f"{args.image}: card image ready (ATR {card.atr.hex().upper()})")
    card.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mynacard",
        description="Emulated Japanese My Number card (マイナンバーカード) and its test tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="put the demo card to work and print what a reader sees")
    demo.add_argument("--persona", type=Path, default=DEMO_PERSONA, help="persona TOML file")
    demo.set_defaults(func=_cmd_demo)

    check = sub.add_parser("persona-check", help="validate persona files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(func=_cmd_persona_check)

    personalize = sub.add_parser("personalize", help="create a durable card image from a persona")
    personalize.add_argument("--persona", type=Path, required=True, help="persona TOML file")
    personalize.add_argument("--image", type=Path, required=True, help="card image to create")
    personalize.set_defaults(func=_cmd_personalize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mynacard`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (PersonaError, ImageError, CardError, InterlockError) as exc:
        print(f"mynacard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
