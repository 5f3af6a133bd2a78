"""``mynacard relay --reader REAL [--trace FILE] [--vpcd HOST:PORT | --private-socket] [-v]``.

The card in PC/SC reader REAL (of the pcscd ``PCSCLITE_CSOCK_NAME`` names, else the system's)
goes into a virtual vpcd reader, where a kiosk or any PC/SC client uses it; every exchange can
be recorded as a masked trace (VERIFY / CHANGE data masked), to replay later against the
emulator with ``mynacard trace FILE --replay --persona P``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from apdu import TraceRecord
from harness.card_server import CardServer, Endpoint, parse_endpoint
from harness.relay.relayed_card import RelayedCard, resolve_reader
from readers.scard import DEFAULT_SOCKET, SOCKET_ENV, atr_in, wait_for_card

__all__ = ["register", "run_relay"]


def _check_trace(path: Path) -> None:
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"--trace {path}: is a directory, not a file")
    if not folder.is_dir():
        raise ValueError(f"--trace {path}: directory {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise ValueError(f"--trace {path}: not writable")


def _wait_for_card(reader: str, stop: threading.Event) -> bool:
    """Return once ``reader`` holds a card (False: stopped first), saying that we wait."""
    if atr_in(reader):
        return True
    print(f"waiting for a card in {reader!r} (Ctrl-C or SIGTERM stops)", flush=True)
    while not stop.is_set():
        try:
            wait_for_card(reader, timeout=0.5)
        except TimeoutError:
            continue
        return True
    return False


def run_relay(args: argparse.Namespace) -> int:
    endpoints: list[Endpoint] = []
    if args.vpcd is not None:
        try:
            endpoints = [parse_endpoint(args.vpcd)]
        except ValueError as exc:
            raise args.usage_error(f"--vpcd {exc}") from None
    if args.trace is not None:
        try:
            _check_trace(args.trace)
        except ValueError as exc:
            raise args.usage_error(str(exc)) from None
    if not 0 < args.reconnect_timeout <= 3600:
        raise args.usage_error(
            f"--reconnect-timeout must be more than 0 and at most 3600 s, not "
            f"{args.reconnect_timeout}"
        )
    # This process's libpcsclite is bound, on this first call, to the real reader's pcscd.
    host_socket = os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    reader = resolve_reader(args.reader)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not _wait_for_card(reader, stop):
        print("stopped: no card came.", flush=True)
        return 0
    card = RelayedCard(reader).open()

    def log_apdu(record: TraceRecord) -> None:
        print(f"[{record.reader}] {record.text()}", flush=True)

    server = CardServer(
        [(reader, card)],
        endpoints=endpoints,
        trace=args.trace,
        private_socket=args.private_socket,
        on_exchange=log_apdu if args.verbose else None,
        reconnect_for=args.reconnect_timeout,
        own_pcsc_context=True,
    )
    with server:
        print(f"relaying {reader!r} (pcscd {host_socket}), ATR {card.atr.hex(' ').upper()}")
        server.announce_pcscd()
        for served in server.served:
            print(f"  {served.endpoint}  ← {reader}")
            if served.endpoint.reader:
                print(f"virtual reader: {served.endpoint.reader}")
            else:
                print(
                    f"virtual reader: the one vpcd serves at {served.endpoint} (its pcscd names it)"
                )
        server.announce_clients(args.trace)
        server.run_until(stop)
    if server.failure is not None:
        print(f"mynacard relay: {server.failure}; relay stopped", file=sys.stderr)
        return 1
    print("stopped: relay ended.", flush=True)
    return 0


def register(sub: Any, usage_error: type[Exception]) -> None:
    """Add ``relay`` to the ``mynacard`` subcommands (``usage_error``: the CLI's usage error)."""
    relay = sub.add_parser(
        "relay",
        help="expose the card in a (real) PC/SC reader through a virtual vpcd reader, "
        "recording every exchange",
    )
    relay.add_argument(
        "--reader",
        required=True,
        metavar="REAL",
        help="the PC/SC reader holding the card: its name or index (of the pcscd "
        f"${SOCKET_ENV} names, else the system's)",
    )
    relay.add_argument("--trace", type=Path, help="append masked APDUs to this JSON Lines file")
    where = relay.add_mutually_exclusive_group()
    where.add_argument(
        "--vpcd",
        metavar="HOST:PORT",
        help="connect to this vpcd endpoint instead of finding or starting a reader",
    )
    where.add_argument(
        "--private-socket",
        action="store_true",
        help="always run our own pcscd (with the virtual reader) on a private socket",
    )
    relay.add_argument(
        "--reconnect-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the virtual reader to come back when its pcscd goes away "
        "(default 30)",
    )
    relay.add_argument("-v", "--verbose", action="store_true", help="print every (masked) APDU")
    relay.set_defaults(func=run_relay, usage_error=usage_error)
