"""What pcscd needs to serve vpcd readers: its binary, the vpcd driver, and reader.conf entries.

vpcd: each reader.conf entry is one driver instance with 2 slots, listening on ``0.0.0.0:<port>``
and ``<port>+1`` (``DEVICENAME /dev/null:<port>``); reader names are ``FRIENDLYNAME + " 00 00"``
/ ``" 00 01"``. Each entry needs its own copy of the driver .so (the driver keeps slot state in
globals). Reversed mode (``DEVICENAME host:port``: vpcd connects out) is never used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from readers.scard import PcscError

__all__ = [
    "DRIVER_DIRS",
    "MAX_READERS",
    "PCSCD_DIRS",
    "SLOTS_PER_DRIVER",
    "SYSTEM_CONFIG_DIR",
    "PcscdNotInstalledError",
    "VpcdEntry",
    "VpcdReader",
    "declared_readers",
    "find_pcscd",
    "find_vpcd_driver",
    "parse_vpcd_config",
    "vpcd_entries",
    "write_vpcd_config",
]

SYSTEM_CONFIG_DIR = "/etc/reader.conf.d"
MAX_READERS = 16  # pcsc-lite's PCSCLITE_MAX_READERS_CONTEXTS
SLOTS_PER_DRIVER = 2  # compiled into libifdvpcd

PCSCD_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
"""Where pcscd is looked for after PATH (non-root PATHs often lack the sbin directories)."""
DRIVER_DIRS = (
    "/usr/lib/pcsc/drivers/serial",
    "/usr/local/lib/pcsc/drivers/serial",
    "/usr/lib64/pcsc/drivers/serial",
)
"""Where the vpcd driver (``libifdvpcd.so*``) is looked for."""
_PCSCD_CANDIDATES = tuple(os.path.join(directory, "pcscd") for directory in PCSCD_DIRS)
_DRIVER_DIRS = DRIVER_DIRS


class PcscdNotInstalledError(PcscError):
    """pcscd or the vpcd driver is missing; the message names the Debian package."""


@dataclasses.dataclass(frozen=True)
class VpcdReader:
    """A vpcd reader slot: the PC/SC reader name and where its card connects.

    ``netns`` gives the network namespace the port lives in (the path of the current pcscd's
    ``/proc/<pid>/ns/net``, looked up at each connection so it follows a restarted pcscd), or
    ``None`` when the port is in this process's own namespace.
    """

    name: str
    port: int
    host: str = "127.0.0.1"
    netns: Callable[[], str | None] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )


def find_pcscd(*, path: str | None = None, candidates: Sequence[str] | None = None) -> str:
    """Path of the pcscd binary (PATH, then the sbin directories non-root PATHs lack).

    ``path`` replaces the ``PATH`` searched, ``candidates`` the fallback files (default
    ``pcscd`` in each of :data:`PCSCD_DIRS`)."""
    found = shutil.which("pcscd") if path is None else shutil.which("pcscd", path=path)
    if found:
        return found
    fallbacks = _PCSCD_CANDIDATES if candidates is None else tuple(candidates)
    for candidate in fallbacks:
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    where = ", ".join(sorted({os.path.dirname(c) for c in fallbacks})) or "nowhere else"
    raise PcscdNotInstalledError(
        f"pcscd not found (looked in PATH and {where}); install the Debian package "
        "'pcscd' (apt-get install pcscd)"
    )


def find_vpcd_driver(directories: Sequence[str] | None = None) -> str:
    """Path of vsmartcard's vpcd driver (libifdvpcd.so*), looked for in ``directories``
    (default :data:`DRIVER_DIRS`)."""
    searched = _DRIVER_DIRS if directories is None else tuple(directories)
    for directory in searched:
        base = Path(directory)
        if not base.is_dir():
            continue
        for candidate in sorted(base.glob("libifdvpcd.so*")):
            if candidate.is_file():
                return str(candidate.resolve())
    raise PcscdNotInstalledError(
        "vpcd driver libifdvpcd.so not found under "
        + ", ".join(searched)
        + "; install the Debian package 'vsmartcard-vpcd' (apt-get install vsmartcard-vpcd)"
    )


def _entries(text: str) -> list[dict[str, str]]:
    """reader.conf text → one dict per entry (``FRIENDLYNAME`` starts a new one)."""
    entries: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        key = key.upper()
        value = value.strip().strip('"')
        if key == "FRIENDLYNAME" or not entries:
            entries.append({})
        entries[-1][key] = value
    return entries


@dataclasses.dataclass(frozen=True)
class VpcdEntry:
    """One vpcd entry of a reader.conf file, as written.

    ``port`` is the first slot's port (from ``DEVICENAME /dev/null:<port>``, else
    ``CHANNELID``), ``None`` when neither names one; ``reversed`` marks ``DEVICENAME
    host:port`` (vpcd connects out to a card: no card can connect in, and pcscd aborts when
    that card is unreachable)."""

    name: str
    device: str
    libpath: str
    port: int | None
    reversed: bool

    @property
    def readers(self) -> list[VpcdReader]:
        """The entry's reader slots (none for reversed mode or without a port)."""
        if self.reversed or self.port is None:
            return []
        port = self.port
        return [
            VpcdReader(f"{self.name} 00 {slot:02X}", port + slot)
            for slot in range(SLOTS_PER_DRIVER)
        ]


def vpcd_entries(text: str) -> list[VpcdEntry]:
    """The vpcd entries (``LIBPATH`` naming libifdvpcd) of a reader.conf text."""
    found: list[VpcdEntry] = []
    for entry in _entries(text):
        name = entry.get("FRIENDLYNAME")
        libpath = entry.get("LIBPATH", "")
        if not name or "ifdvpcd" not in libpath:
            continue
        device = entry.get("DEVICENAME", "")
        host, sep, port_text = device.rpartition(":")
        if not sep:
            port_text = entry.get("CHANNELID", "")
        try:
            port: int | None = int(port_text, 0)
        except ValueError:
            port = None
        found.append(VpcdEntry(name, device, libpath, port, bool(sep) and host != "/dev/null"))
    return found


def parse_vpcd_config(text: str) -> list[VpcdReader]:
    """The vpcd reader slots a reader.conf text declares (reversed-mode entries skipped)."""
    return [reader for entry in vpcd_entries(text) for reader in entry.readers]


def declared_readers(config_dir: str = SYSTEM_CONFIG_DIR) -> list[VpcdReader]:
    """The vpcd reader slots every file in a reader.conf.d directory declares."""
    declared: list[VpcdReader] = []
    config = Path(config_dir)
    if not config.is_dir():
        return declared
    for path in sorted(config.iterdir()):
        if path.name.startswith(".") or path.name.endswith("~") or not path.is_file():
            continue
        with contextlib.suppress(OSError, UnicodeDecodeError):
            declared.extend(parse_vpcd_config(path.read_text()))
    return declared


def write_vpcd_config(
    directory: str,
    driver: str,
    name: str,
    ports: Sequence[int],
    netns: Callable[[], str | None] | None = None,
) -> list[VpcdReader]:
    """A fresh ``reader.conf.d`` under ``directory``: one vpcd entry per port, named
    ``f"{name} {letter}"``, each with its own copy of the driver. Returns every slot."""
    conf = Path(directory, "reader.conf.d")
    drivers = Path(directory, "drivers")
    if conf.exists():
        shutil.rmtree(conf)
    conf.mkdir()
    drivers.mkdir(exist_ok=True)
    slots: list[VpcdReader] = []
    for index, port in enumerate(ports):
        letter = chr(ord("A") + index)
        friendly = f"{name} {letter}"
        lib = drivers / f"libifdvpcd-{letter}.so"
        if not lib.exists():
            shutil.copyfile(driver, lib)  # one copy per entry: slot state is global
        (conf / f"vpcd-{letter}").write_text(
            f'FRIENDLYNAME "{friendly}"\n'
            f"DEVICENAME   /dev/null:{port}\n"
            f"LIBPATH      {lib}\n"
            f"CHANNELID    {port}\n"
        )
        slots.extend(
            VpcdReader(f"{friendly} 00 {slot:02X}", port + slot, netns=netns)
            for slot in range(SLOTS_PER_DRIVER)
        )
    return slots
