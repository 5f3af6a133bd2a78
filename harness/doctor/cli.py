"""``mynacard doctor``: is this machine ready for ``mynacard serve``, and if not, what fixes it.

::

    mynacard doctor [--json] [--reader-conf-dir DIR] [--socket PATH]
                    [--sbin-dir DIR ...] [--driver-dir DIR ...]

Prints one line per check (ok / warning / PROBLEM) with, for anything not ok, the one command
that fixes it on Debian/Ubuntu. Exit status 0 when serve would work (warnings allowed), 1 when
something it needs is missing. ``--json`` prints the same as one JSON object. The test PKI
directory checked is ``$MYNACARD_PKI`` (or ``~/.local/share/mynacard/pki``), as for serve.
Wire into ``mynacard`` with ``register(subparsers)``; ``python -m harness.doctor.cli`` runs it
stand-alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from harness.doctor.engine import Environment, Result, Status, exit_status, run_checks
from harness.standalone import run_alone
from readers.card_side.reader_conf import DRIVER_DIRS, PCSCD_DIRS, SYSTEM_CONFIG_DIR
from readers.scard import DEFAULT_SOCKET

__all__ = ["main", "register", "render_text"]

_LABELS = {Status.OK: "ok", Status.WARNING: "warning", Status.PROBLEM: "PROBLEM"}


def _count(results: list[Result], status: Status, word: str) -> str:
    count = sum(1 for r in results if r.status is status)
    return f"{count} {word}" + ("" if count == 1 else "s")


def verdict(results: list[Result]) -> str:
    """The closing line."""
    problems = _count(results, Status.PROBLEM, "problem")
    warnings = _count(results, Status.WARNING, "warning")
    if exit_status(results):
        return f"{problems}, {warnings}: `mynacard serve` would fail; run the fixes above."
    if any(r.status is Status.WARNING for r in results):
        return f"no problem, {warnings}: `mynacard serve` should work."
    return "all checks ok: `mynacard serve` should work."


def render_text(results: list[Result], out: TextIO) -> None:
    """The report as a terminal reads it."""
    width = max(len(r.title) for r in results) + 2
    out.write("mynacard doctor: what `mynacard serve` needs here\n")
    out.write("(fixes are for Debian/Ubuntu; apt-get, chattr and /etc need root)\n\n")
    for result in results:
        tag = "  [Linux-only]" if result.linux_only else ""
        label = _LABELS[result.status]
        out.write(f"  {label:<8} {result.title:<{width}}{result.finding}{tag}\n")
        indent = " " * (2 + 9 + width)
        if result.status is not Status.OK:
            out.write(f"{indent}fix: {result.fix or '(no command fixes this)'}\n")
        for detail in result.details:
            out.write(f"{indent}- {detail}\n")
    out.write(f"\n{verdict(results)}\n")


def as_json(results: list[Result], env: Environment) -> dict[str, Any]:
    return {
        "ok": exit_status(results) == 0,
        "exit_status": exit_status(results),
        "platform": env.platform,
        "problems": sum(1 for r in results if r.status is Status.PROBLEM),
        "warnings": sum(1 for r in results if r.status is Status.WARNING),
        "checks": [r.to_json() for r in results],
    }


def _cmd_doctor(args: argparse.Namespace) -> int:
    env = Environment.of_this_machine(
        reader_conf_dir=args.reader_conf_dir,
        socket_path=args.socket,
        sbin_dirs=tuple(args.sbin_dir or PCSCD_DIRS),
        driver_dirs=tuple(args.driver_dir or DRIVER_DIRS),
    )
    results = run_checks(env)
    if args.json:
        json.dump(as_json(results, env), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(results, sys.stdout)
    return exit_status(results)


def register(sub: Any) -> None:
    """Add the ``doctor`` subcommand to a ``mynacard`` subparsers object."""
    doctor = sub.add_parser(
        "doctor",
        help="check what `mynacard serve` needs (pcscd, vpcd, pyscard, OpenSC, fonts, PKI) "
        "and print the command that fixes each problem",
        description="Check what the PC/SC path of `mynacard serve` needs and print, for each "
        "problem, the one command that fixes it on Debian/Ubuntu. Exit status 0 when serve "
        "would work (warnings allowed), 1 when something it needs is missing. The PKI "
        "directory checked is $MYNACARD_PKI (default ~/.local/share/mynacard/pki).",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--reader-conf-dir",
        default=SYSTEM_CONFIG_DIR,
        metavar="DIR",
        help=f"the reader.conf.d directory pcscd reads (pcscd -c DIR; default {SYSTEM_CONFIG_DIR})",
    )
    doctor.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        metavar="PATH",
        help=f"the socket of the pcscd to look at (default {DEFAULT_SOCKET})",
    )
    doctor.add_argument(
        "--sbin-dir",
        action="append",
        metavar="DIR",
        help="where to look for pcscd after PATH (repeatable; default "
        + " ".join(PCSCD_DIRS)
        + ")",
    )
    doctor.add_argument(
        "--driver-dir",
        action="append",
        metavar="DIR",
        help="where to look for the vpcd driver libifdvpcd.so (repeatable; default "
        + " ".join(DRIVER_DIRS)
        + ")",
    )
    doctor.set_defaults(func=_cmd_doctor)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.doctor.cli doctor …``: the ``doctor`` command alone."""
    return run_alone(register, argv)


if __name__ == "__main__":
    sys.exit(main())
