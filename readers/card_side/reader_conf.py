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
    "MAX_READERS",
    "SLOTS_PER_DRIVER",
    "SYSTEM_CONFIG_DIR",
    "PcscdNotInstalledError",
    "VpcdReader",
    "declared_readers",
    "find_pcscd",
    "find_vpcd_driver",
    "parse_vpcd_config",
    "write_vpcd_config",
]

SYSTEM_CONFIG_DIR = "/etc/reader.conf.d"
MAX_READERS = 16  # pcsc-lite's PCSCLITE_MAX_READERS_CONTEXTS
SLOTS_PER_DRIVER = 2  # compiled into libifdvpcd

_PCSCD_CANDIDATES = ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd", "/sbin/pcscd")
_DRIVER_DIRS = (
    "/usr/lib/pcsc/drivers/serial",
    "/usr/local/lib/pcsc/drivers/serial",
    "/usr/lib64/pcsc/drivers/serial",
)


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


def find_pcscd() -> str:
    """Path of the pcscd binary (PATH, then the sbin directories non-root PATHs lack)."""
    found = shutil.which("pcscd")
    if found:
        return found
    for candidate in _PCSCD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise PcscdNotInstalledError(
        "pcscd not found (looked in PATH and /usr/sbin); install the Debian package "
        "'pcscd' (apt-get install pcscd)"
    )


def find_vpcd_driver() -> str:
    """Path of vsmartcard's vpcd driver (libifdvpcd.so*)."""
    for directory in _DRIVER_DIRS:
        base = Path(directory)
        if not base.is_dir():
            continue
        for candidate in sorted(base.glob("libifdvpcd.so*")):
            if candidate.is_file():
                return str(candidate.resolve())
    raise PcscdNotInstalledError(
        "vpcd driver libifdvpcd.so not found under "
        + ", ".join(_DRIVER_DIRS)
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


def parse_vpcd_config(text: str) -> list[VpcdReader]:
    """The vpcd reader slots a reader.conf text declares (reversed-mode entries skipped)."""
    slots: list[VpcdReader] = []
    for entry in _entries(text):
        name = entry.get("FRIENDLYNAME")
        if not name or "ifdvpcd" not in entry.get("LIBPATH", ""):
            continue
        device = entry.get("DEVICENAME", "")
        host, sep, port_text = device.rpartition(":")
        if sep and host != "/dev/null":
            continue  # "host:port" is reversed mode: vpcd connects out, no card can connect in
        if not sep:
            port_text = entry.get("CHANNELID", "")
        try:
            port = int(port_text, 0)
        except ValueError:
            continue
        for slot in range(SLOTS_PER_DRIVER):
            slots.append(VpcdReader(f"{name} 00 {slot:02X}", port + slot))
    return slots


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
