"""``mynacard issue``: bulk personalization — N distinct personas, one durable card image each.

    mynacard issue --count 1000 --out cards/ [--base PERSONA.toml] [--seed 1] [--jobs J]
                   [--prefix LABEL] [--unique-keys] [--key-pool DIR] [--force] [--quiet]
    mynacard key-pool --out DIR --count N [--jobs J] [--quiet]

The command line of :mod:`harness.issuance.engine` (the engine: workers, key pool, files
written), :mod:`harness.issuance.keypool` (keys generated ahead by ``mynacard key-pool``, taken
by ``issue --key-pool``) and :mod:`harness.issuance.personas` (how each card's persona is
derived from ``--base``, default the packaged demo persona, reproducibly from ``--seed``).
``DIR`` receives ``<label>.toml``, ``<label>.sqlite`` and ``index.json``; a progress bar (count,
rate, ETA) is drawn on a terminal's stderr unless ``--quiet``, a summary line is printed on
stdout.

Exit status: 0 done, 2 bad arguments or a card that could not be made (the message says why),
130 interrupted. Wire into ``mynacard`` with ``issue_cli.register(sub)`` (both commands);
``python -m harness.issuance.cli issue …`` (or ``key-pool …``) runs them stand-alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from harness.demo_persona import generation_persona_path
from harness.issuance import keypool
from harness.issuance.engine import (
    IssueOptions,
    issue,
)
from harness.issuance.personas import (
    IssueError,
)
from harness.standalone import run_alone

__all__ = ["Progress", "main", "register", "run", "run_key_pool"]


class Progress:
    """A one-line progress bar on a terminal (count, rate, ETA); silent on anything else."""

    def __init__(
        self,
        total: int,
        stream: IO[str],
        *,
        width: int = 30,
        verb: str = "issuing",
        unit: str = "cards",
        quiet: bool = False,
    ) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.verb = verb
        self.unit = unit
        self.enabled = stream.isatty() and not quiet
        self.start = time.perf_counter()
        self._drawn = 0.0

    def update(self, done: int) -> None:
        """Redraw (at most ten times a second, and always at the end)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self._drawn < 0.1:
            return
        self._drawn = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        filled = self.width * done // self.total
        bar = "█" * filled + "░" * (self.width - filled)
        eta = f"ETA {(self.total - done) / rate:4.0f} s" if rate > 0 and done else "ETA    ? s"
        self.stream.write(
            f"\r  {self.verb} [{bar}] {done}/{self.total}  {rate:6.1f} {self.unit}/s  {eta} "
        )
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def register(subparsers: Any) -> None:
    """Add the ``issue`` sub-command to ``mynacard``'s sub-parsers."""
    parser = subparsers.add_parser(
        "issue",
        help="bulk personalization: N distinct personas, one durable card image each",
        description=(
            "Derive N distinct personas from a base persona (distinct valid 個人番号, names, "
            "serials, 住民票コード, birth dates; reproducible with --seed) and personalize each "
            "into a durable card image in DIR: <label>.toml, <label>.sqlite and index.json. "
            "Cards are made by --jobs worker processes. The two JPKI keys are generated for "
            "every card; the four other card keys (券面事項入力補助AP, its secure-messaging "
            "key, 券面AP, common AP) come from a pool made once per run and shared by its cards, "
            "unless --unique-keys."
        ),
    )
    parser.add_argument("--count", type=int, required=True, metavar="N", help="cards to issue")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output directory (new or empty)"
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        metavar="PERSONA.toml",
        help="persona the cards are derived from (default: the demo persona of --profile's "
        "generation)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME|FILE",
        help="card generation of every card: current, next-generation or a profile file "
        "(default: the base persona's own)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the derived data (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=0, metavar="J", help="worker processes (default: one per CPU)"
    )
    parser.add_argument(
        "--prefix", help="label prefix: labels are PREFIX-0001, … (default: the base's label)"
    )
    parser.add_argument(
        "--unique-keys",
        action="store_true",
        help="generate all six card keys per card (default: only the two JPKI keys; the other "
        "four are shared by the cards of this run)",
    )
    parser.add_argument(
        "--key-pool",
        type=Path,
        metavar="POOL",
        help="take the per-card keys (the two JPKI keys; all six with --unique-keys) from a key "
        "pool made by mynacard key-pool instead of generating them: each key is used by one "
        "card and deleted from POOL; a pool too small fails before anything is issued",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow a non-empty DIR: replace the files this run writes, leave others alone",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)

    pool = subparsers.add_parser(
        "key-pool",
        help="generate RSA-2048 card keys ahead, for mynacard issue --key-pool",
        description=(
            "Generate N RSA-2048 keys into a key pool directory (created 0700; keys added to "
            "an existing pool), in --jobs worker processes: one PKCS#8 DER file per key, mode "
            "0600, written atomically. mynacard issue --key-pool DIR then takes the per-card "
            "keys from the pool instead of generating them (each key used once, then deleted)."
        ),
    )
    pool.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the key pool directory"
    )
    pool.add_argument("--count", type=int, required=True, metavar="N", help="keys to generate")
    pool.add_argument(
        "--jobs", type=int, default=0, metavar="J", help="worker processes (default: one per CPU)"
    )
    pool.add_argument("--quiet", action="store_true", help="no progress bar")
    pool.set_defaults(func=run_key_pool)


def run(args: argparse.Namespace) -> int:
    """Run ``mynacard issue``; print a summary line; return the exit status."""
    options = IssueOptions(
        count=args.count,
        out=args.out,
        base=args.base if args.base is not None else generation_persona_path(args.profile),
        profile=args.profile,
        seed=args.seed,
        jobs=args.jobs,
        prefix=args.prefix,
        unique_keys=args.unique_keys,
        force=args.force,
        key_pool=args.key_pool,
    )
    bar = Progress(max(1, options.count), sys.stderr, quiet=args.quiet)
    try:
        result = issue(options, progress=bar.update)
    except IssueError as exc:
        bar.close()
        print(f"mynacard issue: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("mynacard issue: interrupted; the directory holds a partial run", file=sys.stderr)
        return 130
    bar.close()
    keys = "non-JPKI keys shared by the run" if result.shared_keys else "all keys unique"
    if options.key_pool is not None:
        keys += f", {result.pool_keys_used} key(s) taken from {options.key_pool}"
    print(
        f"issued {result.count} card(s) into {options.out} in {result.seconds:.1f} s "
        f"({result.cards_per_second:.1f} cards/s, {result.jobs} job(s), {keys}); "
        f"index: {result.index}"
    )
    return 0


def run_key_pool(args: argparse.Namespace) -> int:
    """Run ``mynacard key-pool``; print a summary line; return the exit status."""
    bar = Progress(max(1, args.count), sys.stderr, verb="generating", unit="keys", quiet=args.quiet)
    try:
        result = keypool.generate(args.out, args.count, jobs=args.jobs, progress=bar.update)
    except IssueError as exc:
        bar.close()
        print(f"mynacard key-pool: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print(
            "mynacard key-pool: interrupted; the keys written so far are complete and usable",
            file=sys.stderr,
        )
        return 130
    bar.close()
    print(
        f"generated {result.count} key(s) into {result.pool} in {result.seconds:.1f} s "
        f"({result.keys_per_second:.1f} keys/s, {result.jobs} job(s)); "
        f"the pool holds {result.total} key(s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.issuance.cli issue …``: the ``issue`` command without the rest."""
    return run_alone(register, argv, "Bulk card issuance.")


if __name__ == "__main__":
    sys.exit(main())
