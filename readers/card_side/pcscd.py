"""A private pcscd with N vpcd virtual readers, or the running one if it already has some.

Findings on Debian bookworm (pcsc-lite 1.9.9, vsmartcard-vpcd 3.3 = libifdvpcd 0.8), checked
by running them and against the 1.9.9 sources:

* ``PCSCLITE_CSOCK_NAME`` is honoured by the **client** library only. libpcsclite's
  ``getSocketName()`` reads it with ``getenv`` on the first call (the first
  ``SCardEstablishContext``, not at import or dlopen) and keeps it in a static buffer for
  the life of the process: setting ``os.environ`` after that first call changes nothing
  (verified with pyscard: a context established after changing it still reached the first
  daemon). Without the variable the client uses ``/run/pcscd/pcscd.comm``.
* The **daemon** ignores it: ``pcscd --foreground -c DIR`` with the variable set still binds
  ``/run/pcscd/pcscd.comm`` (verified; the 1.9.9 ``InitializeSocket()`` uses the compile-time
  path), so it would refuse to start beside a system pcscd ("Another pcscd seems to be
  running") and would take over the system socket otherwise.
* What works: systemd-style **socket activation**, which Debian's pcscd is built with
  (libsystemd). We bind and listen on a private Unix socket ourselves and hand it to pcscd as
  fd 3 with ``LISTEN_FDS=1`` and ``LISTEN_PID=<pcscd's pid>`` (a ``/bin/sh -c 'LISTEN_PID=$$
  exec pcscd …'`` wrapper, so the pid is right). pcscd then skips its "another pcscd" check,
  serves the passed socket, and does not delete it on exit. Clients reach it with
  ``PCSCLITE_CSOCK_NAME=<path>`` (pyscard, opensc-tool, pcsc_scan: verified). Because the
  socket listens before pcscd runs, clients that connect early just wait in the backlog;
  and pcscd loads reader.conf readers before it serves the socket, so the first answer a
  client gets already lists every reader that could be created.
* Verified beside a running system pcscd: each daemon served only its own readers.
* Side effects that remain: pcscd still creates ``/run/pcscd`` (per the source, as non-root
  it then starts only if that directory already exists), writes its pid to
  ``/run/pcscd/pcscd.pid`` (overwriting a system pcscd's pid file) and deletes that file when
  it exits. :class:`PrivatePcscd` puts the previous content back on stop when that process
  is still alive (verified). The private pcscd also runs the usual libudev USB hotplug, so
  on a machine with a real USB reader it sees that reader too (and contends for it with a
  system pcscd).
* In-process consequence: this module sets ``os.environ["PCSCLITE_CSOCK_NAME"]`` once per
  process to a per-process private path (unless the variable already names a non-default
  path, which is then reused), and every later :class:`PrivatePcscd` of the process binds the
  same path. So start the first manager before any other PC/SC call of the process; one
  private pcscd at a time per path. Child processes get the path from :attr:`env`.
* vpcd: each reader.conf entry is one driver instance with 2 slots, listening on
  ``0.0.0.0:<port>`` and ``<port>+1`` (``DEVICENAME /dev/null:<port>``); reader names are
  ``FRIENDLYNAME + " 00 00"`` / ``" 00 01"``. Each entry needs its own copy of the driver .so
  (the driver keeps slot state in globals). A port already in use makes pcscd log
  "Address already in use … init failed" and skip that reader; we then retry on other ports.
  Reversed mode and ``--auto-exit`` are never used.
* pcscd is started under ``setpriv --pdeathsig TERM`` when util-linux has it, so a killed
  test run does not leave it behind (verified with SIGKILL on the parent); :meth:`stop`
  sends SIGTERM to the PID we started and SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from readers.card_side import netns as netns_module
from readers.card_side.pcscd_process import (
    PcscdStartError,
    Spawn,
    log_tail,
    read_pid_file,
    restore_pid_file,
    spawn,
    terminate,
)
from readers.card_side.reader_conf import (
    MAX_READERS,
    SLOTS_PER_DRIVER,
    PcscdNotInstalledError,
    VpcdReader,
    find_pcscd,
    find_vpcd_driver,
    write_vpcd_config,
)
from readers.card_side.sockets import bind_listener, pick_ports, private_socket_path, socket_is_live
from readers.scard import (
    DEFAULT_SOCKET,
    SOCKET_ENV,
    PcscError,
    ask_in_subprocess,
    list_readers,
    process_socket,
    wait_for_card,
)

__all__ = ["READER_NAME", "PrivatePcscd"]

READER_NAME = "mynacard vpcd"
"""Default name of a private pcscd's readers ("mynacard vpcd A 00 00", …)."""

_START_ATTEMPTS = 3
_CACHE_HINT = (
    "libpcsclite reads " + SOCKET_ENV + " only once, on the first PC/SC call of a process: "
    "start the private pcscd before any other PC/SC use, or export " + SOCKET_ENV + "={path} "
    "before starting Python."
)


class PrivatePcscd:
    """A pcscd of our own: private socket, private reader.conf.d, ``count`` vpcd readers.

    ``with PrivatePcscd(4) as pcsc:`` starts it and waits until its readers are listed;
    ``pcsc.readers`` gives each reader's PC/SC name and the TCP port its card connects to
    (``VpcdClient(card, reader.port)``). Nothing under /etc or /run/pcscd's socket is
    touched, so a system pcscd may run beside it.

    Readers come in pairs (one driver instance has two slots): an odd ``count`` leaves a
    spare slot that PC/SC lists but :attr:`readers` omits. Reader names are
    ``f"{name} {letter} 00 0{slot}"``, e.g. "mynacard vpcd A 00 01".

    ``kill_with_parent`` starts pcscd under ``setpriv --pdeathsig TERM``, so it ends when
    the *thread* that called :meth:`start` ends — start it from a long-lived thread.
    """

    def __init__(
        self,
        count: int = 2,
        *,
        name: str = READER_NAME,
        socket_path: str | None = None,
        set_environ: bool = True,
        debug: bool = False,
        log_path: str | None = None,
        stop_timeout: float = 5.0,
        kill_with_parent: bool = True,
        pcscd: str | None = None,
        driver: str | None = None,
        isolate_network: bool | None = None,
    ) -> None:
        """``isolate_network`` (default: whenever this process can) runs pcscd in a network
        namespace of its own, so its vpcd ports — which Debian's driver opens on ``0.0.0.0`` —
        cannot be reached from any network or other process; cards connect through
        :attr:`VpcdReader.netns`."""
        if not 1 <= count <= MAX_READERS:
            raise ValueError(f"count must be 1..{MAX_READERS} (pcsc-lite's limit), not {count}")
        self.count = count
        self.name = name
        self.debug = debug
        self.stop_timeout = stop_timeout
        self.kill_with_parent = kill_with_parent
        self._socket_arg = socket_path
        self._set_environ = set_environ
        self._log_arg = log_path
        self._pcscd_arg = pcscd
        self._driver_arg = driver

        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._socket_path: str | None = None
        self._log_path: str | None = None
        self._readers: tuple[VpcdReader, ...] = ()
        self._old_pid_file: str | None = None
        self._bound_socket = False  # we created the socket file (so we may delete it)
        available = netns_module.isolation_available()
        if isolate_network and not available:
            raise PcscdStartError("a network-isolated pcscd needs root and util-linux's unshare")
        self.isolated = available if isolate_network is None else isolate_network
        self._pcscd_path: str | None = None

    def __repr__(self) -> str:
        return f"<PrivatePcscd pid={self.pid} readers={len(self._readers)} {self._socket_path}>"

    # -- public state -----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def readers(self) -> tuple[VpcdReader, ...]:
        return self._readers

    def netns_path(self) -> str | None:
        """The network namespace of the running pcscd (``None`` when not isolated)."""
        if not self.isolated or self._proc is None:
            return None
        return f"/proc/{self._proc.pid}/ns/net"

    @property
    def socket_path(self) -> str:
        if self._socket_path is None:
            raise PcscError("private pcscd not started")
        return self._socket_path

    @property
    def env(self) -> dict[str, str]:
        """Environment entries a PC/SC client process needs (merge into os.environ)."""
        return {SOCKET_ENV: self.socket_path}

    @property
    def config_dir(self) -> str:
        if self._tmpdir is None:
            raise PcscError("private pcscd not started")
        return os.path.join(self._tmpdir, "reader.conf.d")

    @property
    def log_path(self) -> str | None:
        return self._log_path

    def log_text(self) -> str:
        if self._log_path is None:
            return ""
        try:
            return Path(self._log_path).read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_card(self, reader: str, *, present: bool = True, timeout: float = 5.0) -> bytes:
        return wait_for_card(reader, present=present, timeout=timeout, socket_path=self.socket_path)

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PrivatePcscd:
        if self._proc is not None:
            raise PcscError(f"{self!r} already started")
        pcscd = self._pcscd_arg or find_pcscd()
        driver = self._driver_arg or find_vpcd_driver()
        if not os.path.isfile(driver):
            raise PcscdNotInstalledError(
                f"vpcd driver {driver} missing; install the Debian package 'vsmartcard-vpcd'"
            )
        self._socket_path = self._choose_socket()
        if socket_is_live(self._socket_path):
            raise PcscdStartError(f"something already listens on {self._socket_path}")
        if self._set_environ:
            os.environ[SOCKET_ENV] = self._socket_path
        self._tmpdir = tempfile.mkdtemp(prefix="mynacard-pcscd-")
        self._pcscd_path = pcscd
        try:
            self._start_with_retries(pcscd, driver)
        except BaseException:
            self.stop()
            raise
        return self

    def _end_process(self) -> None:
        """SIGTERM our pcscd (SIGKILL after ``stop_timeout``) and tidy its pid file."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, self.stop_timeout)
            restore_pid_file(proc.pid, self._old_pid_file)

    def restart(self) -> None:
        """Start pcscd again with the same readers and ports (after it died or was killed)."""
        if self._tmpdir is None or self._pcscd_path is None:
            raise PcscError(f"{self!r} was never started")
        self._end_process()
        self._spawn(self._pcscd_path)
        listed = self._first_listing()
        missing = [reader.name for reader in self._readers if reader.name not in listed]
        if missing:
            raise PcscdStartError(
                f"restarted pcscd does not list {missing}" + log_tail(self.log_text())
            )

    def stop(self) -> None:
        """SIGTERM our pcscd, SIGKILL after ``stop_timeout``; remove our files."""
        self._end_process()
        if self._bound_socket and self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)
            self._bound_socket = False
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._readers = ()

    # -- internals --------------------------------------------------------------------------

    def _choose_socket(self) -> str:
        if self._socket_arg:
            return os.path.abspath(self._socket_arg)
        current = os.environ.get(SOCKET_ENV)
        if current and os.path.abspath(current) != DEFAULT_SOCKET:
            return os.path.abspath(current)
        return private_socket_path()

    def _start_with_retries(self, pcscd: str, driver: str) -> None:
        assert self._tmpdir is not None
        rng = random.Random()
        pairs = -(-self.count // SLOTS_PER_DRIVER)
        for attempt in range(1, _START_ATTEMPTS + 1):
            ports = pick_ports(pairs, rng)
            slots = write_vpcd_config(self._tmpdir, driver, self.name, ports, self.netns_path)
            self._spawn(pcscd)
            listed = self._first_listing()
            missing = [slot.name for slot in slots if slot.name not in listed]
            if not missing:
                self._readers = tuple(slots[: self.count])
                return
            log = self.log_text()
            if "init failed" not in log and "Address already in use" not in log:
                raise PcscdStartError(
                    f"pcscd at {self._socket_path} runs, but this process's libpcsclite lists "
                    f"{listed}, not {missing}. "
                    + _CACHE_HINT.format(path=self._socket_path)
                    + log_tail(log)
                )
            self._end_process()  # a vpcd port was taken meanwhile: retry
            if attempt == _START_ATTEMPTS:
                raise PcscdStartError(
                    f"vpcd could not listen on its ports after {attempt} attempts" + log_tail(log)
                )

    def _spawn(self, pcscd: str) -> None:
        assert self._tmpdir is not None and self._socket_path is not None
        listener = bind_listener(self._socket_path)
        self._bound_socket = True
        self._log_path = self._log_arg or os.path.join(self._tmpdir, "pcscd.log")
        self._old_pid_file = read_pid_file()
        how = Spawn(
            pcscd,
            self.config_dir,
            self._log_path,
            append_log=bool(self._log_arg),
            debug=self.debug,
            kill_with_parent=self.kill_with_parent,
            isolated=self.isolated,
        )
        self._proc = spawn(how, listener, self._tmpdir)

    def _first_listing(self) -> list[str]:
        """Readers of the new pcscd. It loads reader.conf readers before it serves the
        socket, and our listener existed before it started, so the first answer is final."""
        proc = self._proc
        assert proc is not None and self._socket_path is not None
        if os.path.abspath(process_socket()) != self._socket_path:
            # Not this process's PC/SC socket (explicit socket_path, set_environ=False).
            answer = ask_in_subprocess(self._socket_path, timeout=30.0)
            if answer is not None:
                return list(answer.readers)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
            raise PcscdStartError(
                f"pcscd (pid {proc.pid}, status {proc.poll()}) does not answer on "
                f"{self._socket_path}" + log_tail(self.log_text())
            )
        try:
            return list_readers()
        except PcscError as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)  # a pcscd that is dying: report that, not the PC/SC error
            if proc.poll() is not None:
                log = self.log_text()
                hint = ""
                if "cannot create /run/pcscd" in log:
                    hint = (
                        " (pcscd creates /run/pcscd even when socket-activated; as non-root it "
                        "must already exist: as root run 'install -d -m 755 /run/pcscd')"
                    )
                raise PcscdStartError(
                    f"pcscd exited with status {proc.returncode}{hint}" + log_tail(log)
                ) from exc
            raise PcscdStartError(
                f"pcscd (pid {proc.pid}) runs, but this process cannot reach it: {exc}. "
                + _CACHE_HINT.format(path=self._socket_path)
            ) from exc
