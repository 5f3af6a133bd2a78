"""Clients of section 4's throughput rows, in a process of their own.

    .venv/bin/python bench/pcsc_clients.py COUNT

``PCSCLITE_CSOCK_NAME`` names the pcscd. Connects to the first ``COUNT`` readers that hold a
card (waiting up to 30 s for them), prints ``ready``, and on a line ``go`` from standard input
loops SELECT EF 000A + READ BINARY 256 on every reader, one pyscard thread per reader, until
the next line (``stop``); then prints the number of APDUs answered and exits. Several of these
processes serve the rows whose readers sit on several pcscd (libpcsclite talks to one socket
per process).
"""

from __future__ import annotations

import sys
import threading
import time

from bench_core import READ_256, SELECT_EF_000A, SELECT_JPKI

from readers.host_side.pcsc import PcscTransport, PcscTransportError
from readers.scard import list_readers


def _connect(reader: str, deadline: float) -> PcscTransport:
    while True:
        transport = PcscTransport(reader)
        try:
            transport.connect()
            transport.transmit(SELECT_JPKI)
            return transport
        except PcscTransportError:
            transport.disconnect()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    count = int(argv[0])
    deadline = time.monotonic() + 30.0
    names: list[str] = []
    while len(names) < count:
        try:
            names = list_readers()
        except Exception:  # pcscd still starting: asked again
            names = []
        if len(names) < count and time.monotonic() > deadline:
            print(f"error: {len(names)} readers, not {count}", flush=True)
            return 1
        if len(names) < count:
            time.sleep(0.05)
    transports = [_connect(name, deadline) for name in names[:count]]
    counts = [0] * count
    errors: list[BaseException] = []
    go = threading.Event()
    stop = threading.Event()

    def worker(i: int) -> None:
        transport = transports[i]
        done = 0
        try:
            go.wait()
            while not stop.is_set():
                transport.transmit(SELECT_EF_000A)
                if len(transport.transmit(READ_256)) != 258:
                    raise RuntimeError("READ BINARY via PC/SC failed")
                done += 2
        except BaseException as exc:
            errors.append(exc)
        counts[i] = done

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    sys.stdin.readline()
    stop.set()
    for thread in threads:
        thread.join()
    for transport in transports:
        transport.disconnect()
    if errors:
        print(f"error: {errors[0]!r}", flush=True)
        return 1
    print(sum(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
