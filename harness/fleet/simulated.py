"""Simulated kiosks on this machine, for the fleet's tests and benchmark.

A simulated kiosk is a pcscd of its own with one vpcd reader: its own private socket (what the
kiosk's PC/SC client uses, via ``PCSCLITE_CSOCK_NAME``) and its own vpcd port. As root, each
kiosk's pcscd runs in a *named* network namespace (``ip netns add``), so the port exists only
there — like a kiosk machine of its own — and the namespace outlives a pcscd restart (a kiosk
reboot), so a fleet file can name it (``netns = "/run/netns/NAME"``). Without root, the
kiosks are loopback ports (Debian's vpcd listens on 0.0.0.0: firewall them).

pcscd processes are started and restarted by a long-lived pool of threads: they run under
``setpriv --pdeathsig``, and end if the thread that started them ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.process_usage import cpu_seconds, rss_mib
from readers.card_side.netns import isolation_available
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import find_pcscd

__all__ = ["FleetProcess", "KioskFarm", "SimulatedKiosk", "namespaces_available"]

NETNS_DIR = Path("/run/netns")


def namespaces_available() -> bool:
    """True when kiosks can get named network namespaces (root, ``ip``, ``nsenter``)."""
    return isolation_available() and bool(shutil.which("ip")) and bool(shutil.which("nsenter"))


@dataclass
class SimulatedKiosk:
    """One kiosk: its pcscd (socket, reader) and where its vpcd listens."""

    name: str
    pcscd: PrivatePcscd
    port: int
    reader: str
    netns: Path | None

    @property
    def socket_path(self) -> str:
        return self.pcscd.socket_path


class KioskFarm:
    """``count`` simulated kiosks in ``directory`` (sockets, wrappers), started in parallel."""

    def __init__(
        self,
        count: int,
        directory: Path,
        *,
        namespaces: bool | None = None,
        workers: int = 8,
        prefix: str = "mynacard-kiosk",
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        available = namespaces_available()
        if namespaces and not available:
            raise RuntimeError("named network namespaces need root, ip and nsenter")
        self.namespaces = available if namespaces is None else namespaces
        self.count = count
        self.directory = directory
        self.prefix = f"{prefix}-{os.getpid()}"
        self.kiosks: list[SimulatedKiosk] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="farm")
        self._made_namespaces: list[str] = []

    def __enter__(self) -> KioskFarm:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _namespace(self, index: int) -> tuple[Path, str]:
        """A named namespace with its loopback up, and a pcscd wrapper that runs in it."""
        name = f"{self.prefix}-{index}"
        subprocess.run(["ip", "netns", "add", name], check=True)  # noqa: S603,S607 - fixed argv
        self._made_namespaces.append(name)
        subprocess.run(  # noqa: S603
            ["ip", "-n", name, "link", "set", "lo", "up"],  # noqa: S607
            check=True,
        )
        nsenter = shutil.which("nsenter")
        wrapper = self.directory / f"pcscd-{index}"
        path = NETNS_DIR / name
        # nsenter execs pcscd (no fork for a network namespace): the PID stays the one the
        # socket-activation wrapper announced in LISTEN_PID.
        wrapper.write_text(f'#!/bin/sh\nexec {nsenter} --net={path} {find_pcscd()} "$@"\n')
        wrapper.chmod(0o755)
        return path, str(wrapper)

    def _start_one(self, index: int) -> SimulatedKiosk:
        netns, pcscd = self._namespace(index) if self.namespaces else (None, None)
        manager = PrivatePcscd(
            1,
            name=f"kiosk{index}",
            socket_path=str(self.directory / f"k{index}.comm"),
            set_environ=False,
            pcscd=pcscd,
            isolate_network=False,
        )
        manager.start()
        reader = manager.readers[0]
        return SimulatedKiosk(f"kiosk-{index}", manager, reader.port, reader.name, netns)

    def start(self) -> None:
        """Start every kiosk's pcscd (``workers`` at a time); raises the first failure."""
        self.directory.mkdir(parents=True, exist_ok=True)
        futures = [self._pool.submit(self._start_one, i) for i in range(self.count)]
        try:
            self.kiosks = [future.result() for future in futures]
        except BaseException:
            for future in futures:  # the others, started or not, are stopped
                with contextlib.suppress(BaseException):
                    kiosk = future.result()
                    self.kiosks.append(kiosk)
            self.stop()
            raise

    def restart(self, index: int) -> None:
        """Restart kiosk ``index``'s pcscd (same namespace, same port): a kiosk reboot."""
        self._pool.submit(self.kiosks[index].pcscd.restart).result()

    def fleet_toml(self, header: str = "") -> str:
        """A fleet file naming every kiosk (``header``: top-level keys to put first)."""
        parts = [header.rstrip() + "\n" if header else ""]
        for kiosk in self.kiosks:
            parts.append(f'\n[[kiosks]]\nname = "{kiosk.name}"\nport = {kiosk.port}\n')
            if kiosk.netns is not None:
                parts.append(f'netns = "{kiosk.netns}"\n')
        return "".join(parts)

    def stop(self) -> None:
        """Stop every pcscd (by PID), delete the namespaces made here, end the pool."""
        for kiosk in self.kiosks:
            with contextlib.suppress(Exception):
                self._pool.submit(kiosk.pcscd.stop).result()
        self.kiosks = []
        for name in self._made_namespaces:
            subprocess.run(  # noqa: S603
                ["ip", "netns", "delete", name],  # noqa: S607
                check=False,
                capture_output=True,
            )
        self._made_namespaces = []
        self._pool.shutdown(wait=True)


class FleetProcess:
    """``mynacard fleet --config FILE`` in a subprocess, its stdout lines timestamped."""

    def __init__(self, config: Path, env: dict[str, str], cwd: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "mynacard", "fleet", "--config", str(config), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(cwd),
        )
        self.lines: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    def _read(self, stream: IO[str] | None, into: list[Any]) -> None:
        assert stream is not None
        for line in stream:
            with self._cond:
                into.append((time.monotonic(), line.rstrip("\n")) if into is self.lines else line)
                self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[str], bool], timeout: float, what: str, start: int = 0
    ) -> tuple[float, str]:
        """The first line (time, text) from line ``start`` on for which ``predicate(text)``;
        RuntimeError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for stamp, line in self.lines[start:]:
                    if predicate(line):
                        return stamp, line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "".join(self.errors[-5:])
                    raise RuntimeError(f"fleet: no {what} within {timeout:g} s\n{tail}")
                self._cond.wait(min(left, 0.5))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the fleet process so far."""
        return cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        """Resident memory of the fleet process (MiB)."""
        return rss_mib(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM by PID, then wait (SIGKILL after 60 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
