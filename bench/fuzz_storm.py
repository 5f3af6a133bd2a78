"""A million mutated APDUs against a strict emulated card; prints APDUs/s.

    .venv/bin/python bench/fuzz_storm.py [--count 1000000] [--seed 1]

Exits non-zero (with the offending APDU) if the card raises, answers without a valid status
word, or answers 6F00 (an internal error in non-strict mode).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

from apdu.status import is_valid
from card_emulator import Card
from harness.faults.apdu_storm import storm

ROOT = Path(__file__).resolve().parent.parent

DEMO_PERSONA = ROOT / "vectors" / "personas" / "demo.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh-every", type=int, default=5_000, help="new card every N APDUs")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    card = Card.from_persona(DEMO_PERSONA, strict=True)
    sws: Counter[int] = Counter()
    start = time.perf_counter()
    for n, command in enumerate(storm(args.seed)):
        if n == args.count:
            break
        if n % args.fresh_every == 0:
            card = Card.from_persona(DEMO_PERSONA, strict=True)
        if rng.random() < 0.01:
            card.reset()
        try:
            response = card.transmit(command)
        except Exception as exc:
            print(f"APDU #{n} {command.hex().upper()} raised {exc!r}", file=sys.stderr)
            return 1
        sw = int.from_bytes(response[-2:], "big") if len(response) >= 2 else -1
        if not is_valid(sw) or sw == 0x6F00:
            print(f"APDU #{n} {command.hex().upper()} answered {response.hex()}", file=sys.stderr)
            return 1
        sws[sw] += 1
    elapsed = time.perf_counter() - start
    total = sum(sws.values())
    print(f"{total} APDUs in {elapsed:.1f} s: {total / elapsed:,.0f} APDUs/s, no exception")
    print("status words:", ", ".join(f"{sw:04X}x{n}" for sw, n in sws.most_common(12)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
