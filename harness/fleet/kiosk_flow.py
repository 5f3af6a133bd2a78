"""Many kiosks' login flow at once, each through its own pcscd: the fleet's load.

``python -m harness.fleet.kiosk_flow [--pin PIN] [--timeout S] SOCKET READER [SOCKET READER…]``

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, so every kiosk is a process of its
own: this one imports the PC/SC client once, then forks one child per kiosk, all at the same
moment. A child sets its kiosk's socket, waits for the card in the reader and runs the kiosk
flow of the benchmark (select JPKI, read the authentication certificate, verify the PIN, sign
a challenge). One JSON line per kiosk on stdout (``kiosk``, ``ok``, ``seconds``, ``error``),
then ``{"total": S, "slowest": S, "slowest_flow": S, "flows": N, "ok": N, "failed": N}``.
With ``--repeat-for S`` each kiosk runs the flow again and again for S seconds (``flows``,
``slowest_flow``): kiosks restarted meanwhile lose their card mid-flow, and their flow starts
again once the card is back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import PcscTransport
from readers.host_side.protocol import CardError, PinBlockedError, WrongPinError
from readers.scard import SOCKET_ENV, PcscError

__all__ = ["kiosk_flow", "main"]

CHALLENGE = b"kiosk login challenge"


def _connect(reader: str, deadline: float) -> PcscTransport:
    """Connected to the card in ``reader`` (waiting for it until ``deadline``)."""
    while True:
        transport = PcscTransport(reader)
        try:
            return transport.connect()
        except PcscError:  # no card (yet, or again), or pcscd restarting
            transport.disconnect()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def kiosk_flow(reader: str, pin: str, timeout: float) -> None:
    """One customer: select JPKI, read certificate 000A, verify the PIN, sign; retried from
    the start while the card is not (yet, or again) in the reader, up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        transport = _connect(reader, deadline)
        try:
            client = MynaClient(transport)
            client.select_jpki()
            client.certificate(0x000A)
            client.verify(JpkiCredential.AUTH_PIN, pin)
            client.sign(JpkiCredential.AUTH_PIN, CHALLENGE)
            return
        except (WrongPinError, PinBlockedError):
            raise  # an answer about the PIN, not a lost card
        except (PcscError, CardError):  # the card went away (kiosk restarted), or was reset
            if time.monotonic() > deadline:
                raise
        finally:
            transport.disconnect()


def _child(
    socket_path: str, reader: str, pin: str, *, timeout: float, repeat_for: float, out: int
) -> None:
    os.environ[SOCKET_ENV] = socket_path  # before this process's first PC/SC call
    start = time.monotonic()
    result: dict[str, object] = {"kiosk": reader, "ok": True, "error": "", "started": start}
    flows, slowest = 0, 0.0
    try:
        while True:
            began = time.monotonic()
            kiosk_flow(reader, pin, timeout)
            flows += 1
            slowest = max(slowest, time.monotonic() - began)
            if time.monotonic() - start >= repeat_for:
                break
    except Exception as exc:  # reported to the parent, which counts it
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    result.update(seconds=time.monotonic() - start, flows=flows, slowest_flow=slowest)
    result["ended"] = time.monotonic()
    os.write(out, (json.dumps(result) + "\n").encode())


def run(
    pairs: Sequence[tuple[str, str]], pin: str, timeout: float, repeat_for: float = 0.0
) -> list[dict[str, object]]:
    """Fork one child per (socket, reader), all at once, each running the flow once (or again
    and again for ``repeat_for`` seconds); their results, in order, and a summary (total and
    slowest seconds) printed last."""
    start = time.monotonic()
    children: list[tuple[int, int]] = []
    for socket_path, reader in pairs:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one kiosk, then exit without the parent's cleanup
            code = 0
            try:
                os.close(read_end)
                _child(
                    socket_path, reader, pin, timeout=timeout, repeat_for=repeat_for, out=write_end
                )
            except BaseException:
                code = 1
            os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    results: list[dict[str, object]] = []
    for (pid, read_end), (_, reader) in zip(children, pairs, strict=True):
        with os.fdopen(read_end, "rb") as pipe:
            text = pipe.read().decode()
        os.waitpid(pid, 0)
        try:
            results.append(json.loads(text))
        except ValueError:
            results.append({"kiosk": reader, "ok": False, "error": "no result", "seconds": 0.0})
            results[-1].update(flows=0, slowest_flow=0.0)
    total = time.monotonic() - start
    for result in results:
        print(json.dumps(result))
    failed = sum(1 for result in results if not result["ok"])
    summary = {
        "total": total,
        "slowest": max(float(str(result["seconds"])) for result in results),
        "slowest_flow": max(float(str(result["slowest_flow"])) for result in results),
        "flows": sum(int(str(result["flows"])) for result in results),
        "ok": len(results) - failed,
        "failed": failed,
    }
    print(json.dumps(summary), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring. Exit status 1 if a kiosk failed."""
    parser = argparse.ArgumentParser(prog="python -m harness.fleet.kiosk_flow")
    parser.add_argument("--pin", default="1234", help="the authentication PIN (default 1234)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per kiosk")
    parser.add_argument(
        "--repeat-for",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the flow again and again until this many seconds have passed (default: once)",
    )
    parser.add_argument("pairs", nargs="+", metavar="SOCKET READER")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give SOCKET READER pairs")
    pairs = list(zip(args.pairs[::2], args.pairs[1::2], strict=True))
    results = run(pairs, args.pin, args.timeout, args.repeat_for)
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
