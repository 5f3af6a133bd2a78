"""Performance benchmark of the emulated card, as ratios against baselines of the same run.

    .venv/bin/python bench/run.py [--quick] [--out DIR] [--no-pcsc] [--issue-count N]
                                  [--coldstart-runs N] [--fleet-kiosks N]

Writes ``bench-results.md`` and ``bench-results.json`` into ``--out`` (default bench/out/).
Sections: (1) in-process cost per APDU; (2) PC/SC round trip vs an echo card and vsmartcard's
own vicc card on the same private pcscd, (2b) with the live console attached (idle, and busy) vs
without it, and (2c) through ``mynacard relay`` vs the direct path; (3) the kiosk flow through
PC/SC; (4) aggregate throughput of ``mynacard serve`` with 1, 2, 4 and 16 readers and 64 readers
on 4 pcscd, one pyscard client thread per reader in client processes of their own, with CPU per
APDU and ``serve``'s resident memory with 1, 16 and 64 cards; (5) bulk issuance (``mynacard
issue``) in cards per second, and with ``--key-pool`` (a key pool generated beforehand, keys per
second); (6) ``mynacard serve``'s cold start: from starting the command to a card a pyscard
client sees (median of several runs); (7) a fleet of
simulated kiosks (a pcscd each, in a network namespace of its own when root) served by one
``mynacard fleet`` process: every kiosk's flow at once, total and slowest time, then again with
kiosks restarted mid-run.

For sections 2-3 the cards are served by a separate process (bench/card_host.py), as
``mynacard serve`` serves them to kiosk programs; section 4 runs ``serve`` itself
(bench_serve.py), and also measures 16 readers with the cards served from the clients' own
process and with the bench/mux_host.py selector experiment.

The sections are in bench_inproc.py (1), bench_pcsc.py (2-4; 2b in bench_console.py, 4 in
bench_serve.py), bench_issuance.py (5), bench_coldstart.py (6) and bench_fleet.py (7), the
targets and the report in bench_report.py, what they share in bench_core.py: modules beside this
script, imported by their plain names (this directory is first on ``sys.path`` when the script
runs, from any working directory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from bench_coldstart import bench_coldstart
from bench_core import ROOT, Results
from bench_fleet import bench_fleet
from bench_inproc import bench_inproc
from bench_issuance import bench_issuance
from bench_pcsc import bench_pcsc
from bench_report import evaluate, markdown, to_json


def main() -> int:
    """Run the sections asked for; write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter loops")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--no-pcsc", action="store_true", help="skip the PC/SC sections (2-4)")
    parser.add_argument(
        "--issue-count",
        type=int,
        help="cards for the issuance section (default: 1000, --quick 40; 0 skips it)",
    )
    parser.add_argument(
        "--coldstart-runs",
        type=int,
        help="timed serve cold starts for section 6 (default: 7, --quick 3; 0 skips it; "
        "needs PC/SC, so --no-pcsc skips it too)",
    )
    parser.add_argument(
        "--fleet-kiosks",
        type=int,
        help="simulated kiosks for section 7 (default: 100, --quick 20; 0 skips it; needs "
        "PC/SC, so --no-pcsc skips it too)",
    )
    args = parser.parse_args()
    quick: bool = args.quick

    res = Results(
        quick=quick,
        env={
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": str(os.cpu_count()),
        },
    )
    n = 3000 if quick else 30_000
    res.inproc = bench_inproc(n, 100 if quick else 1000, 100 if quick else 1000)
    issue_count = args.issue_count if args.issue_count is not None else (40 if quick else 1000)
    if issue_count > 0:  # before the PC/SC part: its workers fork from a single-threaded process
        res.issuance = bench_issuance(issue_count, max(4, issue_count // 10))
    if not args.no_pcsc:
        bench_pcsc(res, quick)
        runs = args.coldstart_runs if args.coldstart_runs is not None else (3 if quick else 7)
        if runs > 0:  # each run a subprocess: no PC/SC state of this process is involved
            res.coldstart = bench_coldstart(runs)
        kiosks = args.fleet_kiosks if args.fleet_kiosks is not None else (20 if quick else 100)
        if kiosks > 0:  # kiosks, fleet and clients are processes of their own
            res.fleet = bench_fleet(kiosks, max(1, kiosks // 10))
    evaluate(res)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(res)
    (out / "bench-results.md").write_text(text, encoding="utf-8")
    (out / "bench-results.json").write_text(
        json.dumps(to_json(res), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
