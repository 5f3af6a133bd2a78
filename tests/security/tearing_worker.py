"""Helper process of the tearing test: fork children that hold a durable card image, storm it
with wrong and right VERIFYs and SIGKILL them at random moments; check the image after each kill.

    python -m tests.security.tearing_worker IMAGE KILLS SEED   -> one JSON line on stdout

Everything is imported once here; each child is an ``os.fork()`` of this process, opens the image
itself with ``Card.open`` (so it holds the SQLite lock, like ``mynacard serve --image``), and
writes each response's status word to a pipe right after the card returned it: a line in the
pipe is a response that "could have been seen". After a kill the image must hold exactly the
counters after the last seen exchange, or after the one in flight (committed but not seen), or
— for a right VERIFY in flight — one try fewer (spent before the comparison, not yet restored).
RSA keys are parsed once (memoised) so that a child's open costs about a millisecond.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from apdu import builders
from card_emulator import Card
from card_emulator.image import SqliteImage

_parse = serialization.load_der_private_key
_parsed: dict[bytes, object] = {}


def _memo_load(data: bytes, password: bytes | None = None, **kw: object) -> object:
    key = bytes(data)
    if key not in _parsed:
        _parsed[key] = _parse(data, password, **kw)  # type: ignore[arg-type]
    return _parsed[key]


serialization.load_der_private_key = _memo_load  # type: ignore[assignment]

AIDS = {
    "jpki": bytes.fromhex("D392F000260100000001"),
    "text": bytes.fromhex("D3921000310001010408"),
    "common": bytes.fromhex("D3921000310001010100"),
}
# (app, fid): (right value, max tries, may block). common 001C is only ever given wrong values:
# it blocks and must stay blocked across every kill.
CREDS: dict[tuple[str, int], tuple[bytes, int, bool]] = {
    ("jpki", 0x18): (b"1234", 3, False),
    ("jpki", 0x1B): (b"ABC123", 5, False),
    ("text", 0x14): (b"314159265352", 10, False),
    ("common", 0x1C): (b"1234", 3, True),
}
PLAN_LENGTH = 1500

Counters = dict[tuple[str, int], int]


@dataclass
class Plan:
    commands: list[bytes]
    expected_sw: list[int]
    states: list[Counters]  # states[k] = counters after k exchanges
    # between[k] = what the image may hold while exchange k is in flight: a right VERIFY lowers
    # the counter durably before comparing and restores it after, so a kill in between leaves
    # one try spent (never one regained)
    between: list[Counters]


def make_plan(rng: random.Random, start: Counters) -> Plan:
    state = dict(start)
    plan = Plan([], [], [dict(state)], [])
    app: str | None = None
    while len(plan.commands) < PLAN_LENGTH:
        key = rng.choice(list(CREDS))
        value, tries, may_block = CREDS[key]
        if app != key[0]:
            app = key[0]
            plan.commands.append(builders.select_aid(AIDS[app]).to_bytes())
            plan.expected_sw.append(0x9000)
            plan.between.append(dict(state))
            plan.states.append(dict(state))
        left = state[key]
        wrong = may_block or (left >= 2 and rng.random() < 0.7)
        pin = (b"0" * len(value)) if wrong else value
        if wrong and rng.random() < 0.2:
            pin = pin[:-1]  # a wrong length is a wrong value too
            wrong = True
        if left == 0:
            sw = 0x6984
            plan.between.append(dict(state))
        elif wrong:
            state[key] = left - 1
            sw = 0x63C0 | (left - 1)
            plan.between.append(dict(state))
        else:
            plan.between.append({**state, key: left - 1})
            state[key] = tries
            sw = 0x9000
        plan.commands.append(builders.verify(pin, sfi=key[1]).to_bytes())
        plan.expected_sw.append(sw)
        plan.states.append(dict(state))
    return plan


def read_image(image: Path) -> tuple[Counters, str]:
    store, content = SqliteImage.open(image)
    try:
        counters = {key: content.application(key[0]).credentials[key[1]].remaining for key in CREDS}
        return counters, store.integrity_check()
    finally:
        store.close()


def child(image: Path, plan: Plan, out: int) -> None:
    card = Card.open(image)
    os.write(out, b"R\n")
    for command in plan.commands:
        response = card.transmit(command)
        os.write(out, response[-2:].hex().encode() + b"\n")
    card.close()


def run(image: Path, kills: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    state, integrity = read_image(image)
    result: dict[str, object] = {}
    violations: list[str] = []
    done = early = sent = mid_storm = 0
    delays = [0.0002, 0.001, 0.003, 0.006]
    attempts = 0
    while done < kills and attempts < kills * 3:
        attempts += 1
        plan = make_plan(rng, state)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            try:
                child(image, plan, w)
            finally:
                os._exit(0)
        os.close(w)
        chunks = []
        if rng.random() < 0.25:  # any moment, the image open included
            time.sleep(rng.uniform(0, 0.002))
        else:  # among the VERIFYs: wait for "image open", then a random delay
            chunks.append(os.read(r, 2))
            time.sleep(rng.uniform(0, rng.choice(delays)))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        lines = b"".join(chunks).decode().split()
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            early += 1  # finished its plan before the kill: not counted as a kill
        else:
            done += 1
        seen = [int(x, 16) for x in lines[1:]]  # after the "R" (image opened) line
        sent += len(seen)
        mid_storm += bool(seen)
        for i, sw in enumerate(seen):
            if sw != plan.expected_sw[i]:
                violations.append(
                    f"kill {done}: exchange {i} answered {sw:04X}, "
                    f"expected {plan.expected_sw[i]:04X}"
                )
                break
        after, integrity = read_image(image)
        if integrity != "ok":
            violations.append(f"kill {done}: integrity_check says {integrity!r}")
        k = len(seen)
        allowed = [plan.states[k]]
        if k < len(plan.between):
            allowed += [plan.between[k], plan.states[k + 1]]
        if after not in allowed:
            violations.append(
                f"kill {done}: after {k} seen exchanges the image holds {after}, allowed {allowed}"
            )
        for key, left in after.items():
            if state[key] == 0 and left != 0:
                violations.append(f"kill {done}: blocked {key} came back with {left}")
        state = after
    result.update(
        kills=done,
        finished_before_kill=early,
        kills_mid_storm=mid_storm,
        exchanges_seen=sent,
        violations=violations[:20],
        final={f"{a} {f:04X}": v for (a, f), v in state.items()},
    )
    return result


def main() -> int:
    image, kills, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(image, kills, seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
