"""pcscd's process: started socket-activated, ended by PID, its pid file and log tidied.

pcscd is started under ``setpriv --pdeathsig TERM`` when util-linux has it, so a killed test run
does not leave it behind; :func:`terminate` sends SIGTERM to the PID we started and SIGKILL after
a timeout. pcscd writes its pid to ``/run/pcscd/pcscd.pid`` (overwriting a system pcscd's) and
deletes that file when it exits: :func:`restore_pid_file` puts a live previous owner's back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from readers.card_side import netns as netns_module
from readers.scard import PcscError

__all__ = [
    "PID_FILE",
    "PcscdStartError",
    "Spawn",
    "log_tail",
    "read_pid_file",
    "restore_pid_file",
    "spawn",
    "terminate",
]

PID_FILE = "/run/pcscd/pcscd.pid"


class PcscdStartError(PcscError):
    """The private pcscd did not come up; the message includes the end of its log."""


@dataclass(frozen=True, slots=True)
class Spawn:
    """How to start one pcscd."""

    pcscd: str
    config_dir: str
    log_path: str
    append_log: bool = False
    debug: bool = False
    kill_with_parent: bool = True
    isolated: bool = False


def spawn(how: Spawn, listener: socket.socket, cwd: str) -> subprocess.Popen[bytes]:
    """Start pcscd serving ``listener`` (systemd socket activation); closes our copy of it."""
    args = [how.pcscd, "--foreground", "-c", how.config_dir]
    if how.debug:
        args += ["--debug", "--apdu"]
    prefix = setpriv_pdeathsig() if how.kill_with_parent else []
    if how.isolated:
        prefix += netns_module.unshare_prefix()  # exec: pcscd keeps the PID we get
    # The shell passes the listener (our stdin) on as fd 3 and sets LISTEN_PID to its own
    # pid, which ``exec`` hands to pcscd: systemd's socket-activation protocol.
    argv = [
        *prefix,
        "/bin/sh",
        "-c",
        'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&0 0</dev/null',
        "sh",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env.pop("NOTIFY_SOCKET", None)
    try:
        with open(how.log_path, "ab" if how.append_log else "wb") as log_file:
            return subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdin=listener.fileno(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
    finally:
        listener.close()  # only pcscd holds it now: if pcscd dies, clients get an error


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM ``proc``, SIGKILL after ``timeout``; returns once it has ended."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def log_tail(text: str, lines: int = 15) -> str:
    """The last non-empty lines of a pcscd log, indented, for an error message."""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return ("\npcscd log (end):\n  " + "\n  ".join(tail)) if tail else ""


def setpriv_pdeathsig() -> list[str]:
    """``setpriv --pdeathsig TERM`` (util-linux) when available: pcscd then dies with the
    thread that started it instead of outliving a killed test run."""
    setpriv = shutil.which("setpriv") or (
        "/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None
    )
    if setpriv is None:
        return []
    try:
        usage = subprocess.run(  # noqa: S603
            [setpriv, "--help"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [setpriv, "--pdeathsig", "TERM"] if "--pdeathsig" in usage else []


def read_pid_file() -> str | None:
    """The content of ``/run/pcscd/pcscd.pid`` (None when absent)."""
    try:
        return Path(PID_FILE).read_text()
    except OSError:
        return None


def _pid_alive(text: str | None) -> int | None:
    if not text:
        return None
    try:
        pid = int(text.strip("\x00 \n"))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    return pid


def restore_pid_file(our_pid: int, previous: str | None) -> None:
    """After our pcscd ended: drop the pid file it left (SIGKILL) and put a live previous
    owner's content back."""
    current = read_pid_file()
    with contextlib.suppress(OSError):
        if current is not None and current.strip("\x00 \n") == str(our_pid):
            os.unlink(PID_FILE)  # left behind by a SIGKILLed pcscd
            current = None
        if current is None and previous is not None:
            owner = _pid_alive(previous)
            if owner is not None and owner != our_pid:
                Path(PID_FILE).write_text(previous)
