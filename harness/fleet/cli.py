"""``mynacard fleet --config FLEET.toml [--check] [--status-interval SECONDS]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["register", "run_fleet"]


def run_fleet(args: argparse.Namespace) -> int:
    """Serve the fleet until SIGTERM / Ctrl-C (``--check``: one attempt per kiosk, then exit
    1 naming every kiosk that cannot be reached)."""
    from harness.card_server import LOOPBACK  # noqa: PLC0415
    from harness.fleet.config import load_fleet_config  # noqa: PLC0415 - cold start
    from harness.fleet.fleet import Fleet, KioskState  # noqa: PLC0415

    interval = args.status_interval
    if interval is not None and not 0 <= interval <= 86400:
        raise args.usage_error(f"--status-interval must be 0-86400 seconds, not {interval}")
    config = load_fleet_config(args.config)  # checked completely before anything starts
    if interval is not None:
        config = dataclasses.replace(config, status_interval=interval)
    if config.pki is not None:
        from jpki.pki_material import ENVIRONMENT_VARIABLE  # noqa: PLC0415

        os.environ[ENVIRONMENT_VARIABLE] = str(config.pki)
    stop = threading.Event()
    status_now = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: status_now.set())
    fleet = Fleet(config)
    print(f"fleet: serving {len(config.kiosks)} kiosks from {args.config}", flush=True)
    remote = [kiosk.name for kiosk in config.kiosks if kiosk.host not in LOOPBACK]
    if remote:
        print(
            f"WARNING: {len(remote)} kiosk(s) on other hosts ({', '.join(remote[:5])}"
            f"{', …' if len(remote) > 5 else ''}): their vpcd listens on their network, where "
            "anyone who reaches an empty reader's port can plug in a card and receive the PINs "
            "typed at that kiosk; keep the kiosks on a lab network or firewall the ports",
            file=sys.stderr,
            flush=True,
        )
    try:
        fleet.start()
        if args.check:
            while not fleet.first_round.wait(0.2):
                pass
            fleet.print_status()
            unreachable = [
                name
                for name, status in fleet.status.items()
                if status.state is not KioskState.CONNECTED
            ]
            if unreachable:
                print(
                    f"mynacard fleet: {len(unreachable)} kiosk(s) cannot be reached: "
                    f"{', '.join(unreachable)}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            return 0
        fleet.run_until(stop, status_now)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
    print("stopped: cards removed from every kiosk.", flush=True)
    return 0


def register(sub: Any, usage_error: type[Exception]) -> None:
    """Add ``fleet`` to the ``mynacard`` subcommands (``usage_error``: the CLI's usage error)."""
    fleet = sub.add_parser(
        "fleet",
        help="serve a card to every kiosk named in a fleet TOML file (their vpcd endpoints), "
        "reconnecting when a kiosk restarts",
    )
    fleet.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="FLEET.toml",
        help="the fleet file: [[kiosks]] tables with name, host, port, persona or image, "
        "scenario (docs/fleet.md)",
    )
    fleet.add_argument(
        "--check",
        action="store_true",
        help="try every kiosk once, print the status lines and exit (1 if one cannot be reached)",
    )
    fleet.add_argument(
        "--status-interval",
        type=int,
        metavar="SECONDS",
        help="print every kiosk's status line this often (0: only state changes; default: the "
        "file's status_interval, else 60)",
    )
    fleet.set_defaults(func=run_fleet, usage_error=usage_error)
