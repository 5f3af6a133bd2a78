"""What a doctor check looks at (:class:`Environment`) and what it says (:class:`Result`)."""

from __future__ import annotations

import dataclasses
import enum
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from card_emulator.render import FontFace, find_cjk_font
from jpki.pki_store import default_directory
from readers.card_side.reader_conf import DRIVER_DIRS, PCSCD_DIRS, SYSTEM_CONFIG_DIR
from readers.scard import DEFAULT_SOCKET, SOCKET_ENV

__all__ = ["Environment", "Result", "Status", "exit_status", "plural", "quote"]


class Status(enum.Enum):
    """How a check came out."""

    OK = "ok"
    WARNING = "warning"  # optional, or serve works anyway: printed with its fix, exit 0
    PROBLEM = "problem"  # mynacard serve would fail: exit 1


@dataclasses.dataclass(frozen=True)
class Result:
    """One check: its ``status``, a one-line ``finding`` and, unless ok, the ``fix``
    command (None only where no command can fix it). ``linux_only`` marks checks that
    apply to Linux only (vpcd, ``/proc``); ``details`` are extra lines (readers, ports)."""

    check: str
    title: str
    status: Status
    finding: str
    fix: str | None = None
    linux_only: bool = False
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "title": self.title,
            "status": self.status.value,
            "finding": self.finding,
            "fix": self.fix,
            "linux_only": self.linux_only,
            "details": list(self.details),
        }


@dataclasses.dataclass(frozen=True)
class Environment:
    """Everything the checks look at that a test may want to change."""

    path: str
    """The PATH programs are looked up in."""
    pki_dir: Path
    """The test PKI directory (``$MYNACARD_PKI`` or ``~/.local/share/mynacard/pki``)."""
    home: Path
    """Home directory (where an alternative PKI directory is suggested)."""
    sbin_dirs: tuple[str, ...] = PCSCD_DIRS
    """Where pcscd is looked for after PATH."""
    driver_dirs: tuple[str, ...] = DRIVER_DIRS
    """Where the vpcd driver (``libifdvpcd.so*``) is looked for."""
    reader_conf_dir: str = SYSTEM_CONFIG_DIR
    """The reader.conf.d directory pcscd reads (``pcscd -c DIR``)."""
    socket_path: str = DEFAULT_SOCKET
    """The socket of the pcscd to look at."""
    python: str = sys.executable
    """The Python whose pyscard is checked (the one running mynacard)."""
    platform: str = sys.platform
    systemd: bool = False
    """Whether systemd runs (a pcscd restart is then ``systemctl restart``)."""
    client_socket: str | None = None
    """``$PCSCLITE_CSOCK_NAME`` of the caller, if set."""
    ld_library_path: str = ""
    find_font: Callable[[], FontFace] = find_cjk_font
    timeout: float = 10.0

    @classmethod
    def of_this_machine(cls, **changes: Any) -> Environment:
        """This process's environment, with ``changes`` applied."""
        environ = os.environ
        real = cls(
            path=environ.get("PATH", os.defpath),
            pki_dir=default_directory(),
            home=Path.home(),
            systemd=os.path.isdir("/run/systemd/system"),
            client_socket=environ.get(SOCKET_ENV),
            ld_library_path=environ.get("LD_LIBRARY_PATH", ""),
        )
        return dataclasses.replace(real, **changes)

    @property
    def linux(self) -> bool:
        return self.platform.startswith("linux")


def exit_status(results: list[Result]) -> int:
    """0 when nothing serve needs is missing (warnings allowed), else 1."""
    return 1 if any(r.status is Status.PROBLEM for r in results) else 0


def quote(path: str | Path) -> str:
    """``path`` as one shell word."""
    return shlex.quote(str(path))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
