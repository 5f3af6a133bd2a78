"""The checks of ``mynacard doctor``: what the PC/SC path of ``mynacard serve`` needs.

:func:`run_checks` takes an :class:`Environment` — the PATH, the directories pcscd and the
vpcd driver are looked for in, the reader.conf.d directory, the pcscd socket, the PKI
directory, the Python whose pyscard is checked, the font finder — so tests simulate a broken
machine without changing the real one; :meth:`Environment.of_this_machine` is the real one.

Every check yields one :class:`Result`: ``ok``, ``warning`` (optional, or serve still works)
or ``problem`` (serve would fail), a one-line finding, and for anything not ok the one command
that fixes it on Debian/Ubuntu. Checks only look: pcscd is asked for its readers from a child
process, ports are bound and released at once, the PKI directory gets a file that is removed
again; nothing that runs is stopped or signalled.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.doctor.facts import Facts
from harness.doctor.host_checks import check_font, check_opensc, check_pki, check_pyscard
from harness.doctor.model import Environment, Result, Status, exit_status
from harness.doctor.pcsc_checks import (
    check_config,
    check_driver,
    check_pcscd,
    check_ports,
    check_running,
)

__all__ = ["CHECKS", "Environment", "Result", "Status", "exit_status", "run_checks"]

CHECKS: tuple[tuple[str, str, Callable[[Facts], Result], bool], ...] = (
    # (id, title, check, whether serve needs it: a check that fails by itself is then a problem)
    ("pcscd", "pcscd", check_pcscd, True),
    ("vpcd-driver", "vpcd driver", check_driver, True),
    ("vpcd-config", "vpcd config", check_config, True),
    ("running-pcscd", "running pcscd", check_running, False),
    ("vpcd-ports", "vpcd ports", check_ports, False),
    ("pyscard", "pyscard", check_pyscard, True),
    ("opensc", "OpenSC", check_opensc, False),
    ("font", "card-face font", check_font, True),
    ("pki-dir", "PKI directory", check_pki, True),
)


def run_checks(env: Environment) -> list[Result]:
    """Every check over ``env``, in order. A check that breaks by itself is reported (as a
    problem, or a warning for the optional ones) rather than hiding the others."""
    facts = Facts(env)
    results: list[Result] = []
    for check, title, run, needed in CHECKS:
        try:
            results.append(run(facts))
        except Exception as exc:
            results.append(
                Result(
                    check,
                    title,
                    Status.PROBLEM if needed else Status.WARNING,
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                )
            )
    return results
