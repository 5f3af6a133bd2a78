"""The console in a process of its own, as ``mynacard serve --console`` runs it.

A card answers APDUs on its serving thread; a web server in the same Python process would
compete with it for the interpreter lock on every request (measured: the median APDU 2× slower
while a client polled the API). :class:`ConsoleProcess` therefore binds the console's port
here (so a busy port is refused at once), starts ``python -m harness.console.web.host`` with
that socket and one end of a socket pair, and links the other end to the controller
(:class:`~harness.console.link.CardLink`). The console process runs at the lowest priority
(:data:`PRIORITY`): when the CPU is short, an APDU goes first and the page waits.

If the console process dies, the cards go on serving (a warning is logged); when this
process stops the console, or dies, the console process sees the link end and exits.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.console import CardController
from harness.console.link import CardLink, LinkError, recv_json, send_json
from harness.console.web.server import ConsoleAddress, ConsoleServerError, listen_socket

PRIORITY: str | int = "idle"
"""The console process's priority: ``"idle"`` (Linux ``SCHED_IDLE``: it runs only when no
process of normal priority wants the CPU, so it never takes a core from the cards, pcscd or
their clients; ``nice 19`` where refused), or a ``nice`` increment."""
START_TIMEOUT = 30.0
"""Seconds to wait for the console process to serve."""
STOP_TIMEOUT = 5.0


class ConsoleProcess(ConsoleAddress):
    """The console of ``controller`` served by a child process on
    ``http://127.0.0.1:<port>/`` (see the module docstring); ``with`` starts and stops it.
    The same surface as :class:`~harness.console.web.server.ConsoleServer`."""

    def __init__(
        self,
        controller: CardController,
        *,
        port: int = 0,
        personas: Sequence[str | Path] = (),
        token: str | None = None,
        priority: str | int = PRIORITY,
        listener: socket.socket | None = None,
    ) -> None:
        """``listener``: a socket already listening (:func:`~.server.listen_socket`), for a
        caller that reserves the port before anything else starts; ``port`` is then ignored."""
        super().__init__(0 if listener is not None else port, token)
        self._listener = listener
        self.controller = controller
        self.personas = [str(path) for path in personas]
        self.priority = priority
        self._process: subprocess.Popen[bytes] | None = None
        self._link: CardLink | None = None

    @property
    def pid(self) -> int | None:
        """The console process's PID while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        """Whether the console process runs and its link is up."""
        return (
            self._process is not None
            and self._process.poll() is None
            and self._link is not None
            and not self._link.ended.is_set()
        )

    def start(self) -> ConsoleProcess:
        """Bind, start the console process, wait until it serves; then link the controller."""
        if self._process is not None:
            raise RuntimeError("the console is already started")
        listener, self._listener = self._listener, None
        if listener is None:
            listener = listen_socket(self._requested_port)
        self._port = listener.getsockname()[1]
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                [
                    sys.executable,
                    "-m",
                    "harness.console.web.host",
                    str(listener.fileno()),
                    str(theirs.fileno()),
                ],
                pass_fds=(listener.fileno(), theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=False,
            )
        except OSError as exc:
            ours.close()
            raise ConsoleServerError(f"the console process did not start: {exc}") from None
        finally:
            listener.close()  # the console process has its copy
            theirs.close()
        try:
            self._handshake(ours)
        except BaseException:
            ours.close()
            self._end_process()
            raise
        self._link = CardLink(self.controller, ours).start()
        return self

    def _handshake(self, sock: socket.socket) -> None:
        send_json(
            sock,
            {
                "token": self.token,
                "port": self.port,
                "personas": self.personas,
                "readers": self.controller.readers,
                "has_pki": self.controller.has_pki,
                "priority": self.priority,
            },
        )
        sock.settimeout(START_TIMEOUT)
        try:
            answer = recv_json(sock)
        except (TimeoutError, OSError, LinkError) as exc:
            raise ConsoleServerError(f"the console process did not start: {exc}") from None
        sock.settimeout(None)
        if answer is None:
            code = self._process.wait(STOP_TIMEOUT) if self._process is not None else None
            raise ConsoleServerError(f"the console process exited at start (status {code})")
        if not answer.get("ready"):
            raise ConsoleServerError(f"the console did not start: {answer.get('failed')}")

    def stop(self) -> None:
        """End the link (the console process then ends its event streams and exits) and wait
        for the process (idempotent)."""
        if self._link is not None:
            self._link.close()
            self._link = None
        self._end_process()

    def _end_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.terminate()  # our own child, by its handle
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> ConsoleProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = ["PRIORITY", "ConsoleProcess"]
