"""Readers for cards: free vpcd readers of the running pcscd, or a private pcscd's.

A running (system) pcscd is asked from a short-lived subprocess, so this process's libpcsclite
does not get bound to its socket (libpcsclite reads the socket path only once per process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from collections.abc import Iterator
from typing import Any, Protocol

from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import SYSTEM_CONFIG_DIR, VpcdReader, declared_readers
from readers.scard import (
    DEFAULT_SOCKET,
    SOCKET_ENV,
    ask_in_subprocess,
    process_socket,
    wait_for_card,
)

__all__ = ["ReaderSet", "RunningPcscd", "find_running_vpcd", "virtual_readers"]


class ReaderSet(Protocol):
    """What both a private and a running pcscd offer to callers."""

    @property
    def readers(self) -> tuple[VpcdReader, ...]: ...

    @property
    def socket_path(self) -> str: ...

    @property
    def env(self) -> dict[str, str]: ...


@dataclasses.dataclass(frozen=True)
class RunningPcscd:
    """A pcscd we did not start, with vpcd readers. ``occupied`` names the readers that had a
    card when we looked (a second card on such a slot waits in vpcd's listen backlog)."""

    socket_path: str
    readers: tuple[VpcdReader, ...]
    occupied: frozenset[str] = frozenset()

    @property
    def free_readers(self) -> tuple[VpcdReader, ...]:
        return tuple(r for r in self.readers if r.name not in self.occupied)

    @property
    def env(self) -> dict[str, str]:
        return {SOCKET_ENV: self.socket_path}

    def wait_for_card(self, reader: str, *, present: bool = True, timeout: float = 5.0) -> bytes:
        return wait_for_card(reader, present=present, timeout=timeout, socket_path=self.socket_path)


def find_running_vpcd(
    *,
    socket_path: str = DEFAULT_SOCKET,
    config_dir: str = SYSTEM_CONFIG_DIR,
    timeout: float = 10.0,
) -> RunningPcscd | None:
    """The pcscd listening on ``socket_path`` if it serves vpcd readers declared in
    ``config_dir`` (ports from their DEVICENAME), else None."""
    try:
        if not stat.S_ISSOCK(os.stat(socket_path).st_mode):
            return None
    except OSError:
        return None
    declared = declared_readers(config_dir)
    if not declared:
        return None
    answer = ask_in_subprocess(socket_path, timeout)
    if answer is None:
        return None
    listed = set(answer.readers)
    readers = tuple(r for r in declared if r.name in listed)
    if not readers:
        return None
    return RunningPcscd(socket_path, readers, answer.present & listed)


@contextlib.contextmanager
def virtual_readers(
    count: int = 1, *, use_running: bool = True, **private: Any
) -> Iterator[ReaderSet]:
    """``count`` vpcd readers: free ones of the running pcscd when it has enough (and this
    process's libpcsclite talks to it), else a :class:`PrivatePcscd` started for the block."""
    if use_running and os.path.abspath(process_socket()) == DEFAULT_SOCKET:
        running = find_running_vpcd()
        if running is not None and len(running.free_readers) >= count:
            yield dataclasses.replace(
                running, readers=running.free_readers[:count], occupied=frozenset()
            )
            return
    with PrivatePcscd(count, **private) as pcsc:
        yield pcsc
