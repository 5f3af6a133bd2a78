"""What several doctor checks need to know, found once per run: where pcscd and the vpcd
driver are, the vpcd entries of reader.conf.d, what is on the pcscd socket, pyscard."""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from pathlib import Path

from harness.doctor import probes
from harness.doctor.model import Environment
from harness.doctor.model import quote as _q
from readers.card_side.reader_conf import (
    PcscdNotInstalledError,
    VpcdEntry,
    VpcdReader,
    find_pcscd,
    find_vpcd_driver,
    vpcd_entries,
)
from readers.card_side.sockets import socket_is_live
from readers.scard import DEFAULT_SOCKET, ReaderListing, ask_in_subprocess

__all__ = ["Facts", "SocketState"]

PID_FILE = "/run/pcscd/pcscd.pid"
WINSCARD_HEADER = "/usr/include/PCSC/winscard.h"


@dataclasses.dataclass
class SocketState:
    """What is on the pcscd socket: nothing, a left-over file, or a pcscd and its readers
    (``listing`` None when it answered but pyscard could not list them)."""

    exists: bool
    live: bool = False
    listing: ReaderListing | None = None


class Facts:
    """The facts of one environment; each is found the first time a check asks."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    @functools.cached_property
    def pcscd(self) -> str | None:
        candidates = [os.path.join(d, "pcscd") for d in self.env.sbin_dirs]
        try:
            return find_pcscd(path=self.env.path, candidates=candidates)
        except PcscdNotInstalledError:
            return None

    @functools.cached_property
    def driver(self) -> str | None:
        try:
            return find_vpcd_driver(self.env.driver_dirs)
        except PcscdNotInstalledError:
            return None

    @functools.cached_property
    def config(self) -> list[tuple[Path, VpcdEntry]]:
        """Every vpcd entry of the reader.conf.d directory, with its file (pcscd's order)."""
        found: list[tuple[Path, VpcdEntry]] = []
        directory = Path(self.env.reader_conf_dir)
        if not directory.is_dir():
            return found
        for path in sorted(directory.iterdir()):
            if path.name.startswith(".") or path.name.endswith("~") or not path.is_file():
                continue
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            found.extend((path, entry) for entry in vpcd_entries(text))
        return found

    @functools.cached_property
    def declared(self) -> dict[str, VpcdReader]:
        return {r.name: r for _, entry in self.config for r in entry.readers}

    @functools.cached_property
    def socket(self) -> SocketState:
        path = self.env.socket_path
        if not os.path.exists(path):
            return SocketState(exists=False)
        if not socket_is_live(path):
            return SocketState(exists=True)
        return SocketState(True, True, ask_in_subprocess(path, self.env.timeout))

    @functools.cached_property
    def pyscard(self) -> probes.PyscardProbe:
        return probes.probe_pyscard(self.env.python, self.env.timeout)

    @property
    def serves_socket(self) -> bool:
        """Whether the socket looked at is the one serve uses (the standard one)."""
        return os.path.abspath(self.env.socket_path) == DEFAULT_SOCKET

    def pcscd_pid(self) -> int | None:
        """The pid in pcscd's pid file, if that process exists (only for the standard
        socket: the pid file belongs to it)."""
        if not self.serves_socket:
            return None
        try:
            pid = int(Path(PID_FILE).read_text().strip("\x00 \n"))
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def restart_pcscd(self) -> str | None:
        if self.env.systemd:
            return "systemctl restart pcscd.service"
        pid = self.pcscd_pid()
        if pid is None:
            return None
        start = _q(self.pcscd or "pcscd")
        return f"kill {pid} && while kill -0 {pid} 2>/dev/null; do sleep 0.1; done && {start}"

    def pyscard_fix(self) -> str:
        pip = f"{_q(self.env.python)} -m pip install pyscard"
        if os.path.isfile(WINSCARD_HEADER):
            return pip
        return f"apt-get install -y libpcsclite-dev && {pip}"

    def other_pki_dir(self, failing: Path, target: Path) -> Path:
        """A PKI directory to use instead: the default one, else one under the temp dir."""
        candidates = [
            self.env.home / ".local" / "share" / "mynacard" / "pki",
            Path(tempfile.gettempdir()) / f"mynacard-pki-{os.getuid()}",
        ]
        usable = [
            c
            for c in candidates
            if c != failing and target not in (c, *c.parents) and failing not in c.parents
        ]
        for candidate in usable:
            if probes.probe_writable(candidate).ok:
                return candidate
        return (usable or candidates)[-1]
