"""Sockets of a private pcscd: its Unix socket (private path, liveness, the socket-activation
listener) and free TCP port pairs for its vpcd readers."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import socket
import tempfile

from readers.card_side.pcscd_process import PcscdStartError

__all__ = ["bind_listener", "pick_ports", "port_is_free", "private_socket_path", "socket_is_live"]

PORT_RANGE = (20000, 32700)  # below Linux's default ephemeral range (32768-60999)

_process_socket_dir: str | None = None


def private_socket_path() -> str:
    """One socket path per process (see :mod:`readers.card_side.pcscd`), in a 0755 mkdtemp
    directory removed at exit."""
    global _process_socket_dir  # noqa: PLW0603 - process-wide by design
    if _process_socket_dir is None or not os.path.isdir(_process_socket_dir):
        directory = tempfile.mkdtemp(prefix="mynacard-pcsc-")
        os.chmod(directory, 0o755)  # noqa: S103 - like /run/pcscd: others may connect
        atexit.register(shutil.rmtree, directory, True)
        _process_socket_dir = directory
    return os.path.join(_process_socket_dir, "pcscd.comm")


def socket_is_live(path: str) -> bool:
    """True when something accepts connections on the Unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_listener(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale file of a killed run is replaced), world
    connectable like pcscd's own, for pcscd to take over by socket activation."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)  # /run/pcscd may not exist yet
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError as exc:
        listener.close()
        raise PcscdStartError(f"cannot bind {path}: {exc}") from exc
    os.chmod(path, 0o666)  # noqa: S103 - like pcscd's own socket
    listener.listen(64)
    return listener


def port_is_free(port: int) -> bool:
    """True when vpcd could listen on TCP ``port`` now (bound and released at once: nothing
    listens, no connection is accepted)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as vpcd does
        probe.bind(("0.0.0.0", port))  # noqa: S104 - vpcd itself binds 0.0.0.0
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _port_pair_free(port: int) -> bool:
    return port_is_free(port) and port_is_free(port + 1)


def pick_ports(pairs: int, rng: random.Random) -> list[int]:
    """``pairs`` even base ports whose pair (base, base+1) is free now."""
    chosen: list[int] = []
    low, high = PORT_RANGE
    for _ in range(2000):
        base = rng.randrange(low, high, 2)
        if any(abs(base - other) < 2 for other in chosen):
            continue
        if _port_pair_free(base):
            chosen.append(base)
            if len(chosen) == pairs:
                return chosen
    raise PcscdStartError(f"no {pairs} free TCP port pairs in {low}-{high}")
