"""Benchmark section 7: a fleet of simulated kiosks served by one ``mynacard fleet`` process.

Each kiosk is a pcscd of its own with one vpcd reader (harness/fleet/simulated.py): in a named
network namespace of its own when this process is root, else on a loopback port. One
``mynacard fleet`` process (a fresh interpreter) serves a card to every kiosk from a fleet
file naming them all. Then:

1. every kiosk runs the kiosk flow at the same moment (``python -m harness.fleet.kiosk_flow``:
   one forked PC/SC client per kiosk, each through its kiosk's pcscd): total and slowest time;
2. the same again, and while it runs some kiosks are restarted (their pcscd stopped and
   started again, same namespace and port): their clients retry from the start, the fleet
   puts the cards back (its status line says ``back in the reader``); every kiosk must finish,
   and the time from each restart to the fleet's reconnection is measured.

    .venv/bin/python bench/bench_fleet.py [--kiosks N] [--restarts N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the project's packages beside bench/
    sys.path.insert(0, str(ROOT))

from harness.fleet.simulated import FleetProcess, KioskFarm  # noqa: E402

READY_TIMEOUT = 600.0
REPEAT_FOR = 6.0
"""Seconds every kiosk runs the flow again and again in the round with restarts."""


def run_flows(farm: KioskFarm, repeat_for: float = 0.0, timeout: float = 300.0) -> dict[str, Any]:
    """Every kiosk's flow at once (again and again for ``repeat_for`` seconds): total, slowest
    kiosk, slowest single flow, median seconds and failures; ``rows``: each kiosk's result."""
    args = ["--repeat-for", str(repeat_for)]
    for kiosk in farm.kiosks:
        args += [kiosk.socket_path, kiosk.reader]
    done = subprocess.run(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-m", "harness.fleet.kiosk_flow", "--timeout", str(timeout), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
        check=False,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not rows:
        raise RuntimeError(f"kiosk flows: no result ({done.stderr.strip()[-500:]})")
    summary, kiosks = rows[-1], rows[:-1]
    return {
        "total_s": summary["total"],
        "slowest_s": summary["slowest"],
        "slowest_flow_s": summary["slowest_flow"],
        "flows": summary["flows"],
        "median_s": statistics.median(row["seconds"] for row in kiosks),
        "median_flow_s": statistics.median(row["slowest_flow"] for row in kiosks),
        "ok": summary["ok"],
        "failed": summary["failed"],
        "errors": [f"{row['kiosk']}: {row['error']}" for row in kiosks if not row["ok"]][:5],
        "rows": {row["kiosk"]: row for row in kiosks},
    }


def _back(name: str) -> Callable[[str], bool]:
    """Matches the fleet's status line saying kiosk ``name``'s card is back in its reader."""
    return lambda line: line.startswith(f"kiosk {name} (") and "back in the reader" in line


def _restarted(n: int, count: int) -> list[int]:
    """``n`` kiosk indexes spread over ``count``."""
    n = min(n, count)
    return sorted({round(i * count / n) % count for i in range(n)}) if n else []


def bench_fleet(kiosks: int, restarts: int) -> dict[str, Any]:
    """Section 7 (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="mynacard-fleet-") as folder:
        directory = Path(folder)
        t0 = time.monotonic()
        with KioskFarm(kiosks, directory / "kiosks", workers=8) as farm:
            farm_s = time.monotonic() - t0
            config = directory / "fleet.toml"
            config.write_text(farm.fleet_toml("status_interval = 0\nreconnect_timeout = 120"))
            t1 = time.monotonic()
            fleet = FleetProcess(config, {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT)
            try:
                _, ready = fleet.wait_for(
                    lambda line: line.startswith("fleet ready"), READY_TIMEOUT, "ready line"
                )
                ready_s = time.monotonic() - t1
                cpu_ready = fleet.cpu_seconds()
                first = run_flows(farm)
                chosen = _restarted(restarts, kiosks)
                # Every kiosk busy for REPEAT_FOR s; the restarts once every client is forked.
                after = max(1.5, 2 * first["total_s"])
                second, restarted_at = _restart_during_flows(farm, chosen, after)
                mid_flow = sum(
                    1
                    for i in chosen
                    if second["rows"][farm.kiosks[i].reader]["started"]
                    <= restarted_at[i]
                    <= second["rows"][farm.kiosks[i].reader]["ended"]
                )
                first.pop("rows")
                second.pop("rows")
                reconnect = [
                    fleet.wait_for(_back(farm.kiosks[i].name), 120, f"reconnection of kiosk {i}")[0]
                    - restarted_at[i]
                    for i in chosen
                ]
                result = {
                    "kiosks": kiosks,
                    "namespaces": farm.namespaces,
                    "farm_start_s": farm_s,
                    "fleet_ready_s": ready_s,
                    "fleet_ready_line": ready,
                    "fleet_cpu_at_ready_s": cpu_ready,
                    "fleet_rss_mib": fleet.rss_mib(),
                    "first": first,
                    "with_restarts": second,
                    "repeat_for_s": REPEAT_FOR,
                    "restarted": len(chosen),
                    "restarted_mid_flow": mid_flow,
                    "reconnect_max_s": max(reconnect, default=0.0),
                    "reconnect_median_s": statistics.median(reconnect) if reconnect else 0.0,
                    "unreachable_errors": sum("cannot be reached" in e for e in fleet.errors),
                }
            finally:
                fleet.stop()
        return result


def _restart_during_flows(
    farm: KioskFarm, chosen: list[int], after: float
) -> tuple[dict[str, Any], dict[int, float]]:
    """Every kiosk's flow again, the ``chosen`` kiosks restarted ``after`` seconds into it."""
    restarted_at: dict[int, float] = {}
    with ThreadPoolExecutor(1) as pool:
        flows = pool.submit(run_flows, farm, REPEAT_FOR)
        time.sleep(after)  # the clients are forked, connecting, running the flow
        for index in chosen:
            restarted_at[index] = time.monotonic()
            farm.restart(index)
        return flows.result(), restarted_at


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=10)
    return parser.parse_args()


def main() -> int:
    """Run section 7 alone and print its figures as JSON."""
    args = _args()
    _print(bench_fleet(args.kiosks, args.restarts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
