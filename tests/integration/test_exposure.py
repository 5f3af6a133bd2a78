"""What `mynacard serve` exposes to the network, and what it does when it loses a reader.

* The vpcd readers of its own pcscd live in a network namespace of their own: from this host's
  namespace — over loopback or over any of its other addresses — nothing listens on their ports.
* pcscd killed under serve is restarted and the card is back in its reader.
* A reader that does not come back ends serve with a non-zero exit naming it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from readers.card_side.netns import isolation_available
from tests.conftest import ROOT, listening_ports
from tests.integration.test_serve import opensc_list, start_serve

pytestmark = pytest.mark.skipif(
    not isolation_available(), reason="network isolation needs root and util-linux's unshare"
)

PORT = re.compile(r"\(127\.0\.0\.1:(\d+)\)")


def host_addresses() -> list[str]:
    """Every IPv4 address of this host's namespace (loopback and the others)."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False
    ).stdout
    found = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return sorted(set(found) | {"127.0.0.1"})


def pcsc_lists_a_card(socket_path: str, env: dict[str, str]) -> bool:
    return "Yes" in opensc_list(socket_path, env, check=False)


@pytest.mark.pcsc
def test_serve_readers_are_out_of_reach_and_survive_a_pcscd_restart() -> None:
    serve, text, socket_path, env = start_serve("--readers", "3", cwd=ROOT)
    try:
        assert "network namespace of their own" in text, text
        ports = [int(port) for port in PORT.findall(text)]
        assert len(ports) == 3, text  # the card's reader and the two empty ones
        assert not set(ports) & listening_ports()
        for address in host_addresses():
            for port in ports:
                with pytest.raises(OSError):  # refused (or unreachable), never accepted
                    socket.create_connection((address, port), timeout=2).close()
        assert pcsc_lists_a_card(socket_path, env)

        pcscd_pid = int(re.search(r"pcscd \(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]
        os.kill(pcscd_pid, signal.SIGKILL)  # started by the serve process this test started
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not pcsc_lists_a_card(socket_path, env):
            time.sleep(0.3)
        assert pcsc_lists_a_card(socket_path, env), "the card did not come back"
        assert serve.poll() is None
        assert not set(ports) & listening_ports()  # the new pcscd is isolated too
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, rest
    assert "exited; starting it again" in rest
    assert "the card is back in its reader" in rest


def test_a_reader_that_does_not_come_back_ends_serve(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def vpcd_goes_away() -> None:
        connection, _ = listener.accept()
        time.sleep(0.5)
        listener.close()  # nothing listens on the port any more
        connection.close()

    thread = threading.Thread(target=vpcd_goes_away, daemon=True)
    thread.start()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            "--vpcd",
            f"127.0.0.1:{port}",
            "--reconnect-timeout",
            "2",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    thread.join(timeout=5)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"reader 127.0.0.1:{port} lost" in done.stderr
    assert "Traceback" not in done.stderr
