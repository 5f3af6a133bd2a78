"""Background load on a live console, in a process of its own (bench_console.py starts it).

    .venv/bin/python bench/console_load.py URL CONCURRENCY

``CONCURRENCY`` asyncio tasks, each on a keep-alive connection of its own, loop
``GET /api/cards`` — that many API calls in flight at every moment — while one more reads
``/api/events``. Once every task has had its first answer and the subscriber its ``hello``,
one line ``ready`` is printed; when standard input closes, the load stops and one line of JSON
says what it did (``requests``, ``events``, ``seconds``, ``errors``).

A separate process, as a browser or a kiosk's scripts are. Plain HTTP/1.1 over asyncio
streams rather than an HTTP client library: httpx's connection pool spends a core on its own
bookkeeping at 200 connections, and the load would measure the load generator.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection to the console (GET only)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def send(self, path: str, extra: str = "") -> None:
        assert self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode("ascii"))
        await self.writer.drain()

    async def status(self) -> tuple[int, dict[str, str]]:
        """The status code and headers of the next answer."""
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("the console closed the connection")
        code = int(line.split()[1])
        headers = {}
        while (header := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return code, headers

    async def get(self, path: str) -> int:
        """``GET path``; its status code (the body is read and dropped)."""
        assert self.reader is not None
        await self.send(path)
        code, headers = await self.status()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        return code

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run(url: str, concurrency: int) -> int:
    parts = urlsplit(url)
    token = parse_qs(parts.query)["token"][0]
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counts = [0] * concurrency
    events = [0]
    errors: list[str] = []
    stop = asyncio.Event()
    started = [0]
    all_started = asyncio.Event()

    def one_ready() -> None:
        started[0] += 1
        if started[0] == concurrency + 1:
            all_started.set()

    async def poll(index: int) -> None:
        connection = Connection(host, port, token)
        await connection.open()
        try:
            first = True
            while not stop.is_set():
                code = await connection.get("/api/cards")
                if code != 200:
                    raise RuntimeError(f"GET /api/cards answered {code}")
                if first:
                    one_ready()
                    first = False
                else:
                    counts[index] += 1
        finally:
            connection.close()

    async def subscribe() -> None:
        connection = Connection(host, port, token)
        await connection.open()
        try:
            await connection.send("/api/events", "Accept: text/event-stream\r\n")
            code, _ = await connection.status()
            if code != 200:
                raise RuntimeError(f"GET /api/events answered {code}")
            assert connection.reader is not None
            while not stop.is_set():
                line = await connection.reader.readline()
                if not line:
                    return
                if line.startswith(b"event:"):  # chunked framing lines never start so
                    if events[0] == 0:
                        one_ready()
                    events[0] += 1
        finally:
            connection.close()

    async def guarded(job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            all_started.set()
            stop.set()

    tasks = [asyncio.create_task(guarded(poll(i))) for i in range(concurrency)]
    tasks.append(asyncio.create_task(guarded(subscribe())))
    try:
        await asyncio.wait_for(all_started.wait(), 60)
    except TimeoutError:
        errors.append("the load did not start in 60 s")
    if errors:
        print(f"error: {errors[0]}", flush=True)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return 1
    print("ready", flush=True)
    began = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    seconds = time.perf_counter() - began
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = {
        "requests": sum(counts),
        "events": events[0],
        "seconds": seconds,
        "errors": errors[:3],
    }
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str]) -> int:
    return asyncio.run(run(argv[0], int(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
