"""The PC/SC checks: pcscd, the vpcd driver and its reader.conf entries, the running pcscd and
the vpcd ports."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

from harness.doctor import probes
from harness.doctor.facts import Facts
from harness.doctor.model import Result, Status, plural
from harness.doctor.model import quote as _q
from readers.card_side.pcscd import READER_NAME
from readers.card_side.reader_conf import SYSTEM_CONFIG_DIR, VpcdReader
from readers.card_side.sockets import pick_ports, port_is_free
from readers.scard import DEFAULT_SOCKET, SOCKET_ENV

__all__ = ["check_config", "check_driver", "check_pcscd", "check_ports", "check_running"]

VPCD_DEFAULT_PORT = 0x8C7B  # 35963, as Debian's /etc/reader.conf.d/vpcd
INSTALLED_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


def _bre(text: str) -> str:
    """``text`` as a literal in a sed basic regular expression delimited by ``|``."""
    return re.sub(r"([\\.*\[\]^$|])", r"\\\1", text)


def _driver_copy(libpath: str, number: int) -> str:
    """Where a copy of the driver for another entry goes: ``libifdvpcd-2.so`` beside it."""
    folder, name = os.path.split(libpath)
    stem = name.split(".so", 1)[0]
    return os.path.join(folder, f"{stem}-{number}.so")


def check_pcscd(facts: Facts) -> Result:
    title = "pcscd"
    if facts.pcscd is None:
        where = ", ".join(facts.env.sbin_dirs) or "nowhere else"
        return Result(
            "pcscd",
            title,
            Status.PROBLEM,
            f"pcscd not found (looked in PATH and {where}): serve has no PC/SC daemon "
            "to put its cards into",
            "apt-get install -y pcscd",
        )
    version = probes.program_version(
        [facts.pcscd, "--version"], r"pcsc-lite version (\d+(?:\.\d+)*)", facts.env.timeout
    )
    if version is None:
        return Result(
            "pcscd",
            title,
            Status.PROBLEM,
            f"{facts.pcscd} does not run (`pcscd --version` printed no pcsc-lite version)",
            "apt-get install --reinstall -y pcscd",
        )
    return Result("pcscd", title, Status.OK, f"{facts.pcscd}, pcsc-lite {version}")


def not_linux(facts: Facts, check: str, title: str, what: str) -> Result:
    return Result(
        check,
        title,
        Status.PROBLEM,
        f"Linux-only: {what} as mynacard uses it exists on Linux only, not on {facts.env.platform}",
        None,
        linux_only=True,
    )


def check_driver(facts: Facts) -> Result:
    title = "vpcd driver"
    if not facts.env.linux:
        return not_linux(facts, "vpcd-driver", title, "vsmartcard's vpcd driver")
    if facts.driver is None:
        return Result(
            "vpcd-driver",
            title,
            Status.PROBLEM,
            f"vpcd driver libifdvpcd.so not found under {', '.join(facts.env.driver_dirs)}: "
            "pcscd has no virtual reader for serve's cards",
            "apt-get install -y vsmartcard-vpcd",
            linux_only=True,
        )
    return Result("vpcd-driver", title, Status.OK, facts.driver, linux_only=True)


def missing_config_fix(facts: Facts) -> str:
    directory = facts.env.reader_conf_dir
    if os.path.abspath(directory) == SYSTEM_CONFIG_DIR:
        if facts.driver is None:
            return "apt-get install -y vsmartcard-vpcd"
        # the package is there but its conffile was deleted: plain reinstalls keep it deleted
        return "apt-get install --reinstall -y -o Dpkg::Options::=--force-confmiss vsmartcard-vpcd"
    port = VPCD_DEFAULT_PORT
    template = (
        f'FRIENDLYNAME "Virtual PCD"\\nDEVICENAME   /dev/null:{port}\\n'
        f"LIBPATH      %s\\nCHANNELID    {port}\\n"
    )
    driver = facts.driver or INSTALLED_DRIVER
    target = os.path.join(directory, "vpcd")
    return f"mkdir -p {_q(directory)} && printf {_q(template)} {_q(driver)} > {_q(target)}"


def check_config(facts: Facts) -> Result:
    check, title = "vpcd-config", "vpcd config"
    directory = facts.env.reader_conf_dir
    if not facts.env.linux:
        return not_linux(facts, check, title, "reader.conf.d with vsmartcard's vpcd")
    if not facts.config:
        what = "has no vpcd entry" if os.path.isdir(directory) else "does not exist"
        return Result(
            check,
            title,
            Status.PROBLEM,
            f"no vpcd reader configuration: {directory} {what}, so a pcscd reading it "
            "has no virtual readers (pcscd reads it only at startup)",
            missing_config_fix(facts),
            linux_only=True,
        )
    details = tuple(
        f"{e.name!r}: {e.device or '(no DEVICENAME)'} → ports "
        + (f"{e.port}-{e.port + 1}" if e.port is not None and not e.reversed else "none")
        + f" ({path})"
        for path, e in facts.config
    )
    issue = next(config_issues(facts), None)
    if issue is not None:
        status, finding, fix = issue
        return Result(check, title, status, finding, fix, linux_only=True, details=details)
    usable = [e for _, e in facts.config if e.readers]
    return Result(
        check,
        title,
        Status.OK,
        f"{plural(len(usable), 'vpcd entry')} in {directory} ({len(facts.declared)} "
        "readers); pcscd reads them only at startup",
        linux_only=True,
        details=details,
    )


def config_issues(facts: Facts) -> Iterator[tuple[Status, str, str | None]]:
    """What is wrong with the vpcd entries, worst first."""
    for path, entry in facts.config:
        if not os.path.exists(entry.libpath):
            fix = (
                f"cp {_q(facts.driver)} {_q(entry.libpath)}"
                if facts.driver is not None
                else "apt-get install -y vsmartcard-vpcd"
            )
            yield (
                Status.PROBLEM,
                f"{path}: LIBPATH {entry.libpath} of {entry.name!r} does not exist, so "
                "pcscd cannot load that reader",
                fix,
            )
    for path, entry in facts.config:
        port = entry.port if entry.port is not None else VPCD_DEFAULT_PORT
        if entry.reversed:
            sed = rf"s|^\(\s*DEVICENAME\s\+\){_bre(entry.device)}\s*$|\1/dev/null:{port}|"
            yield (
                Status.WARNING,
                f"{path}: {entry.name!r} uses reversed mode (DEVICENAME {entry.device}): "
                "no card can connect to it, and pcscd aborts when that card is unreachable",
                f"sed -i {_q(sed)} {_q(path)}",
            )
        elif entry.port is None:
            sed = rf'\|FRIENDLYNAME\s\+"\?{_bre(entry.name)}"\?\s*$|a CHANNELID    {port}'
            yield (
                Status.WARNING,
                f"{path}: {entry.name!r} names no port (DEVICENAME /dev/null:<port> or "
                "CHANNELID), so it has no readers",
                f"sed -i {_q(sed)} {_q(path)}",
            )
    seen: dict[str, str] = {}
    for path, entry in facts.config:
        real = os.path.realpath(entry.libpath)
        if real in seen:
            copy = _driver_copy(entry.libpath, len(seen) + 1)
            start = rf'\|FRIENDLYNAME\s\+"\?{_bre(entry.name)}"\?\s*$|'
            sed = rf"{start},/LIBPATH/ s|^\(\s*LIBPATH\s\+\).*|\1{copy}|"
            yield (
                Status.WARNING,
                f"{path}: {entry.name!r} shares its driver file with {seen[real]!r}: the "
                "driver keeps slot state in globals, so their slots get cross-wired",
                f"cp {_q(real)} {_q(copy)} && sed -i {_q(sed)} {_q(path)}",
            )
        else:
            seen[real] = entry.name


def check_running(facts: Facts) -> Result:
    check, title = "running-pcscd", "running pcscd"
    sock = facts.env.socket_path
    state = facts.socket
    note: tuple[str, ...] = ()
    if facts.env.client_socket and os.path.abspath(facts.env.client_socket) != os.path.abspath(
        sock
    ):
        note = (f"this shell's PC/SC clients use {SOCKET_ENV}={facts.env.client_socket}",)
    if not state.exists:
        return Result(
            check,
            title,
            Status.OK,
            f"no pcscd on {sock}: "
            + (
                "serve starts its own there (and stops it when done)"
                if facts.serves_socket
                else f"serve looks at {DEFAULT_SOCKET} only"
            ),
            details=note,
        )
    if not state.live:
        return Result(
            check,
            title,
            Status.OK,
            f"{sock} is left over from a pcscd that is gone (nothing answers): serve "
            "replaces it with its own pcscd",
            details=note,
        )
    pid = facts.pcscd_pid()
    who = f"pcscd (pid {pid})" if pid is not None else "a pcscd"
    listing = state.listing
    if listing is None:
        fix = facts.pyscard_fix() if facts.pyscard.error else facts.restart_pcscd()
        return Result(
            check,
            title,
            Status.WARNING,
            f"{who} answers on {sock}, but pyscard could not list its readers: serve cannot use it",
            fix,
            details=note,
        )
    vpcd = [facts.declared[name] for name in listing.readers if name in facts.declared]
    own = [name for name in listing.readers if name.startswith(READER_NAME + " ")]
    details = tuple(
        f"{name}: {'card present' if name in listing.present else 'empty'}"
        + (f", vpcd port {facts.declared[name].port}" if name in facts.declared else "")
        for name in listing.readers
    )
    if own and not vpcd:
        held = sum(1 for name in own if name in listing.present)
        return Result(
            check,
            title,
            Status.OK,
            f"{who} on {sock} is mynacard's own (started by a running `mynacard serve` or a "
            f"test), with {plural(len(own), 'reader')}, {held} holding a card",
            details=details + note,
        )
    if not vpcd:
        others = f"{plural(len(listing.readers), 'other reader')}"
        return Result(
            check,
            title,
            Status.WARNING,
            f"{who} on {sock} lists no vpcd reader of {facts.env.reader_conf_dir} "
            f"({others}): it started before that configuration was there (pcscd reads it "
            "only at startup); serve falls back to a private socket clients must be told",
            facts.restart_pcscd(),
            details=details + note,
        )
    free = [r for r in vpcd if r.name not in listing.present]
    if free:
        where = ": serve puts its cards there" if facts.serves_socket else ""
        finding = f"{who} on {sock} with {plural(len(vpcd), 'vpcd reader')}, {len(free)} empty"
        finding += where
    else:
        finding = (
            f"{who} on {sock}: all {plural(len(vpcd), 'vpcd reader')} hold a card, so "
            f"serve starts its own pcscd on a private socket (clients need the "
            f"{SOCKET_ENV} it prints)"
        )
    return Result(check, title, Status.OK, finding, details=details + note)


def check_ports(facts: Facts) -> Result:
    check, title = "vpcd-ports", "vpcd ports"
    if not facts.env.linux:
        return Result(check, title, Status.OK, "Linux-only check: skipped", linux_only=True)
    readers = [(path, entry, r) for path, entry in facts.config for r in entry.readers]
    if not readers:
        return Result(
            check,
            title,
            Status.OK,
            f"no vpcd port is configured in {facts.env.reader_conf_dir} (see vpcd config)",
            linux_only=True,
        )
    listing = facts.socket.listing
    running = set(listing.readers) if listing is not None else set()
    details: list[str] = []
    free: list[int] = []
    ours: list[int] = []
    foreign: list[tuple[Path, VpcdReader, list[tuple[int, str]] | None]] = []
    for path, _, reader in readers:
        if port_is_free(reader.port):
            free.append(reader.port)
            details.append(f"{reader.port} ({reader.name}): free")
        elif reader.name in running:
            ours.append(reader.port)
            details.append(f"{reader.port} ({reader.name}): the running pcscd's vpcd")
        else:
            holders = probes.port_holders(reader.port)
            foreign.append((path, reader, holders))
            who = ", ".join(f"pid {pid} ({comm})" for pid, comm in holders or [])
            details.append(f"{reader.port} ({reader.name}): in use by {who or 'another program'}")
    if foreign:
        path, reader, holders = foreign[0]
        who = ", ".join(f"{comm or 'a process'} (pid {pid})" for pid, comm in holders or [])
        return Result(
            check,
            title,
            Status.WARNING,
            f"port {reader.port} of {reader.name!r} is in use by {who or 'another program'}"
            f", not by a vpcd the pcscd on {facts.env.socket_path} lists: a pcscd started "
            "with this configuration skips that reader (serve's own pcscd picks other ports)",
            port_fix(facts, path, reader, holders),
            linux_only=True,
            details=tuple(details),
        )
    parts = []
    if ours:
        parts.append(f"{plural(len(ours), 'port')} in use by the running pcscd's vpcd")
    if free:
        parts.append(f"{plural(len(free), 'port')} free for a pcscd started now")
    ports = ", ".join(str(p) for p in sorted(ours + free))
    return Result(
        check,
        title,
        Status.OK,
        f"{ports}: {' and '.join(parts)}",
        linux_only=True,
        details=tuple(details),
    )


def port_fix(
    facts: Facts, path: Path, reader: VpcdReader, holders: list[tuple[int, str]] | None
) -> str:
    if sum(1 for p, _ in facts.config if p == path) == 1:
        (new,) = pick_ports(1, random.Random(reader.port))
        sed_device = rf"s|^\(\s*DEVICENAME\s\+\)/dev/null:.*|\1/dev/null:{new}|"
        sed_channel = rf"s|^\(\s*CHANNELID\s\+\).*|\1{new}|"
        return f"sed -i -e {_q(sed_device)} -e {_q(sed_channel)} {_q(path)}"
    if holders:
        return "kill " + " ".join(str(pid) for pid, _ in holders)
    return f"ss -ltnp 'sport = :{reader.port}'"
