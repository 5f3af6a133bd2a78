"""Reaching a TCP port that lives in another process's network namespace (Linux only).

Debian's vpcd driver listens on ``0.0.0.0`` with no bind-address setting, so a private pcscd is
started in a network namespace of its own (``unshare --net``): its vpcd ports then exist only
there, out of reach of every other host and of this host's other processes. PC/SC clients are
not affected — they reach pcscd through its Unix socket, which a network namespace does not
hide. The card side joins the namespace just long enough to create its TCP socket: a helper
thread calls ``setns(2)`` (per thread on Linux), brings the namespace's loopback up and
connects; the socket keeps working after the thread has gone.

Needs ``CAP_SYS_ADMIN`` (root) and util-linux's ``unshare``; :func:`isolation_available` says
whether this process has both.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import socket
import struct
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
T = TypeVar("T")


class NamespaceError(OSError):
    """The network namespace cannot be entered (gone, or not permitted)."""


def isolation_available() -> bool:
    """True when this process can start a program in a new network namespace and join it."""
    return (
        sys.platform.startswith("linux")
        and os.geteuid() == 0
        and shutil.which("unshare") is not None
        and os.path.exists("/proc/self/ns/net")
    )


def unshare_prefix() -> list[str]:
    """argv prefix that runs a program in a new network namespace (same PID, via exec)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NamespaceError(errno.ENOENT, "util-linux's unshare is not installed")
    return [unshare, "--net"]


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise NamespaceError(code, f"setns({path}): {os.strerror(code)}")
    finally:
        os.close(fd)


def _loopback_up() -> None:
    """Bring ``lo`` up in the current thread's namespace (a new namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def run_in(netns: str, function: Callable[[], T]) -> T:
    """``function()`` run in a helper thread that has joined the network namespace at
    ``netns`` (with its loopback up); sockets it creates keep working after it returns."""
    outcome: list[T | BaseException] = []

    def call() -> None:
        try:
            _setns(netns)
            _loopback_up()
            outcome.append(function())
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=call, name="netns-helper", daemon=True)
    worker.start()
    worker.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def connect_in(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port`` made inside the network namespace at ``netns``."""
    return run_in(netns, lambda: socket.create_connection((host, port), timeout=timeout))
