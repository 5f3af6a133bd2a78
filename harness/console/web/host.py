"""The console process: ``python -m harness.console.web.host LISTEN_FD LINK_FD``.

Started by :class:`~harness.console.web.process.ConsoleProcess`, never by hand. It reads its
settings (token, port, persona files, reader names, whether a PKI is attached, its
priority) as the first frame on the link, lowers its priority, builds the app over a
:class:`~harness.console.remote.RemoteController` and serves it with uvicorn on the inherited
listening socket. It answers ``{"ready": true}`` once uvicorn serves, or ``{"failed": why}``.
When the link ends (the card process stopped the console, or died) it ends every event
stream and exits. Ctrl-C in a terminal is for the card process, which stops it in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

from harness.console.link import recv_json, send_json
from harness.console.remote import RemoteController
from harness.console.web.app import create_app
from harness.console.web.server import START_TIMEOUT, uvicorn_server
from harness.console.web.sse import Streams


def lower_priority(priority: object) -> None:
    """``"idle"``: the ``SCHED_IDLE`` policy (the CPU only when nothing else of normal priority
    wants it; ``nice 19`` where that is refused); an integer: that ``nice`` increment."""
    if priority == "idle":
        if hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
                return
            except OSError:
                pass
        priority = 19
    if isinstance(priority, int) and not isinstance(priority, bool) and priority > 0:
        with contextlib.suppress(OSError):
            os.nice(priority)


def main(argv: list[str]) -> int:
    """Serve until the link ends; 0 then, 1 if the console could not start, 2 on bad use."""
    if len(argv) != 2 or not all(each.isdigit() for each in argv):
        print("usage: python -m harness.console.web.host LISTEN_FD LINK_FD", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = socket.socket(fileno=int(argv[0]))
    link = socket.socket(fileno=int(argv[1]))
    settings = recv_json(link)
    if settings is None:
        return 1
    lower_priority(settings.get("priority"))
    remote = RemoteController(
        link, readers=list(settings["readers"]), has_pki=bool(settings["has_pki"])
    )
    try:
        app = create_app(
            remote, settings["token"], port=int(settings["port"]), personas=settings["personas"]
        )
    except Exception as exc:  # a persona file that does not load, above all
        send_json(link, {"failed": f"{type(exc).__name__}: {exc}"})
        return 1
    server = uvicorn_server(app)
    streams: Streams = app.state.streams

    def link_ended() -> None:
        streams.close_all()
        server.should_exit = True

    def announce() -> None:
        waited = 0.0
        while not server.started and waited < START_TIMEOUT and not server.should_exit:
            time.sleep(0.01)
            waited += 0.01
        if server.started:
            remote.send({"ready": True})
            remote.open()
        else:
            remote.send({"failed": "uvicorn did not start in time"})
            server.should_exit = True

    remote.on_end = link_ended
    remote.start()
    threading.Thread(target=announce, name="mynacard-console-ready", daemon=True).start()
    server.run(sockets=[listener])
    remote.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
