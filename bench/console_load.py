"""Background load on a live console, in a process of its own (bench_console.py starts it).

    .venv/bin/python bench/console_load.py URL THREADS

``THREADS`` threads loop ``GET /api/cards`` through :class:`harness.control.ConsoleClient`
while one more reads ``/api/events``. Once every thread has had its first answer and the
subscriber its ``hello``, one line ``ready`` is printed; when standard input closes, the load
stops and one line of JSON says what it did (``requests``, ``events``, ``seconds``,
``errors``).

A separate process, as a browser or a kiosk's scripts are: in the card's process the load
would compete with the card for the interpreter lock in ways a real console never does.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from harness.control import ConsoleClient


def main(argv: list[str]) -> int:
    url, threads = argv[0], int(argv[1])
    stop = threading.Event()
    counts = [0] * threads
    events = [0]
    errors: list[str] = []
    ready = threading.Barrier(threads + 2)

    def poll(index: int) -> None:
        with ConsoleClient(url) as client:
            try:
                client.cards()
                ready.wait()
                while not stop.is_set():
                    client.cards()
                    counts[index] += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                ready.abort()

    def subscribe() -> None:
        with ConsoleClient(url) as client, client.events() as stream:
            try:
                for event in stream:
                    if event.get("kind") == "hello":
                        ready.wait()
                    events[0] += 1
                    if stop.is_set():
                        return
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                ready.abort()

    workers = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(threads)]
    subscriber = threading.Thread(target=subscribe, daemon=True)
    for worker in [*workers, subscriber]:
        worker.start()
    try:
        ready.wait(timeout=30)
    except threading.BrokenBarrierError:
        print(f"error: {errors[0] if errors else 'the load did not start'}", flush=True)
        return 1
    print("ready", flush=True)
    started = time.perf_counter()
    sys.stdin.read()  # until the benchmark closes our standard input
    stop.set()
    seconds = time.perf_counter() - started
    for worker in workers:
        worker.join(timeout=10)
    result = {
        "requests": sum(counts),
        "events": events[0],
        "seconds": seconds,
        "errors": errors[:3],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
