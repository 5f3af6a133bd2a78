"""The console's web server: uvicorn in a thread of its own, on a socket bound beforehand.

This is the console in the process of the cards it drives (tests, an embedding program);
``mynacard serve`` runs the same app in a process of its own
(:mod:`~harness.console.web.process`), so requests never compete with the cards' threads.

:class:`ConsoleServer` binds ``127.0.0.1:<port>`` itself (``0``: any free port) before uvicorn
starts, so the port is known at once and a busy port fails in :meth:`~ConsoleServer.start`.
uvicorn runs its own event loop in a daemon thread, installs no signal handler and logs only
warnings (through the ``uvicorn`` loggers, no access log). A fresh token per server
(``secrets.token_urlsafe(32)``) guards every request (:mod:`~harness.console.web.guard`).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sys
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from apdu import MynacardError
from harness.console import CardController
from harness.console.web.app import create_app
from harness.console.web.sse import Streams

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may keep the GIL while another waits for it, once a console runs (Python's
default is 5 ms). The console's web thread and the cards' serving threads share one process: a
card thread woken by its next APDU would otherwise wait up to 5 ms behind a busy request."""
"""Seconds :meth:`ConsoleServer.start` waits for uvicorn to serve."""
STOP_TIMEOUT = 5.0


class ConsoleServerError(MynacardError, RuntimeError):
    """The console could not start (the port is taken, uvicorn failed)."""


class Uvicorn(uvicorn.Server):
    """uvicorn without signal handling: the process that runs the console owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def check_port(port: object) -> int:
    """``port`` if it is an integer 0-65535; ValueError naming it otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer 0-65535, not {port!r}")
    return port


def listen_socket(port: int) -> socket.socket:
    """A TCP socket listening on ``127.0.0.1:port`` (``0``: any free port); a busy or
    forbidden port raises :class:`ConsoleServerError` naming it."""
    check_port(port)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    # (accepted ones inherit it). Without it, a response's headers and body leave in two
    # writes and Nagle holds the body for the client's delayed ACK: 40 ms per keep-alive
    # request (the same pitfall as vpcd's TCP_QUICKACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConsoleServerError(
            f"console port {port}: cannot listen on {HOST} ({exc.strerror or exc})"
        ) from None
    return sock


def uvicorn_server(app: Any) -> Uvicorn:
    """uvicorn for ``app`` as the console runs it: asyncio and httptools, no lifespan, no
    access log, warnings only, no ``Server`` or ``Date`` header."""
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="httptools",  # a C parser: less CPU per request than h11
        ws="none",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=2,
    )
    return Uvicorn(config)


class ConsoleAddress:
    """Where a console serves: the port asked for (``0``: any free one), the port it got once
    started, and the token every request needs (fresh unless given)."""

    def __init__(self, port: int, token: str | None) -> None:
        self._requested_port = check_port(port)
        self._port: int | None = None
        self.token = token if token is not None else secrets.token_urlsafe(32)

    @property
    def port(self) -> int:
        """The port served on (known once started; kept after stopping)."""
        if self._port is None:
            raise RuntimeError("the console is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The page's address with the token: ``http://127.0.0.1:<port>/?token=<token>``."""
        return f"{self.base_url}/?token={self.token}"


class ConsoleServer(ConsoleAddress):
    """The console of ``controller`` served on ``http://127.0.0.1:<port>/`` (see the module
    docstring); ``with`` starts and stops it."""

    def __init__(
        self,
        controller: CardController,
        *,
        port: int = 0,
        personas: Sequence[str | Path] = (),
        token: str | None = None,
    ) -> None:
        super().__init__(port, token)
        self.controller = controller
        self.personas = list(personas)
        self._socket: socket.socket | None = None
        self._server: Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._streams: Streams | None = None
        self._failure: BaseException | None = None
        self._switch_interval: float | None = None

    def start(self) -> ConsoleServer:
        """Bind, then serve in a new thread; returns once uvicorn accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the console server is already started")
        sock = self._socket = listen_socket(self._requested_port)
        self._port = sock.getsockname()[1]
        try:
            app = create_app(self.controller, self.token, port=self.port, personas=self.personas)
        except BaseException:
            self._close_socket()
            raise
        self._streams = app.state.streams
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            self._switch_interval = sys.getswitchinterval()  # given back by stop()
            sys.setswitchinterval(SWITCH_INTERVAL)
        server = self._server = uvicorn_server(app)
        self._thread = threading.Thread(target=self._run, name="mynacard-console", daemon=True)
        self._thread.start()
        waited = 0.0
        while not server.started:
            if not self._thread.is_alive() or waited >= START_TIMEOUT:
                self.stop()
                why = self._failure or "did not start in time"
                raise ConsoleServerError(f"the console did not start: {why}")
            self._thread.join(0.02)
            waited += 0.02
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); the thread just ends
            self._failure = exc

    def stop(self) -> None:
        """End every event stream, stop uvicorn and wait for its thread (idempotent)."""
        if self._streams is not None:
            self._streams.close_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT)
        self._thread = None
        self._server = None
        self._close_socket()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
