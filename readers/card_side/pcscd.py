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

import atexit
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from apdu.errors import MynacardError
from readers.card_side import netns as netns_module

__all__ = [
    "DEFAULT_SOCKET",
    "MAX_READERS",
    "SOCKET_ENV",
    "PcscError",
    "PcscdNotInstalledError",
    "PcscdStartError",
    "PrivatePcscd",
    "ReaderSet",
    "RunningPcscd",
    "VpcdReader",
    "find_pcscd",
    "find_running_vpcd",
    "find_vpcd_driver",
    "list_readers",
    "parse_vpcd_config",
    "virtual_readers",
    "wait_for_card",
    "wait_for_readers",
]

SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
DEFAULT_SOCKET = "/run/pcscd/pcscd.comm"
PID_FILE = "/run/pcscd/pcscd.pid"
SYSTEM_CONFIG_DIR = "/etc/reader.conf.d"
MAX_READERS = 16  # pcsc-lite's PCSCLITE_MAX_READERS_CONTEXTS
SLOTS_PER_DRIVER = 2  # compiled into libifdvpcd
PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

_PCSCD_CANDIDATES = ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd", "/sbin/pcscd")
_DRIVER_DIRS = (
    "/usr/lib/pcsc/drivers/serial",
    "/usr/local/lib/pcsc/drivers/serial",
    "/usr/lib64/pcsc/drivers/serial",
)
_PORT_RANGE = (20000, 32700)  # below Linux's default ephemeral range (32768-60999)
_START_ATTEMPTS = 3
_CACHE_HINT = (
    "libpcsclite reads " + SOCKET_ENV + " only once, on the first PC/SC call of a process: "
    "start the private pcscd before any other PC/SC use, or export " + SOCKET_ENV + "={path} "
    "before starting Python."
)


class PcscError(MynacardError, RuntimeError):
    """A PC/SC call failed, or pcscd is not in the state we need."""


class PcscdNotInstalledError(PcscError):
    """pcscd or the vpcd driver is missing; the message names the Debian package."""


class PcscdStartError(PcscError):
    """The private pcscd did not come up; the message includes the end of its log."""


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


class ReaderSet(Protocol):
    """What both a private and a running pcscd offer to callers."""

    @property
    def readers(self) -> tuple[VpcdReader, ...]: ...

    @property
    def socket_path(self) -> str: ...

    @property
    def env(self) -> dict[str, str]: ...


# -- finding the pieces ---------------------------------------------------------------------


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


def parse_vpcd_config(text: str) -> list[VpcdReader]:
    """The vpcd reader slots a reader.conf text declares (reversed-mode entries skipped)."""
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
    slots: list[VpcdReader] = []
    for entry in entries:
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


# -- in-process PC/SC helpers (pyscard) -----------------------------------------------------


def _scard() -> Any:
    try:
        from smartcard import scard  # noqa: PLC0415 - imported on first PC/SC use only
    except ImportError as exc:  # pragma: no cover - pyscard is a dependency
        raise PcscError(
            "pyscard is not importable; install it (pip install pyscard; on Linux it builds "
            "from source and needs the Debian package libpcsclite-dev)"
        ) from exc
    return scard


def _process_socket() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def _check_process_socket(socket_path: str | None) -> None:
    if socket_path is not None and os.path.abspath(socket_path) != os.path.abspath(
        _process_socket()
    ):
        raise PcscError(
            f"this process's libpcsclite talks to {_process_socket()} ({SOCKET_ENV}), not to "
            f"{socket_path}; libpcsclite reads {SOCKET_ENV} once per process, so use a "
            "subprocess with that environment instead"
        )


def _error_text(scard: Any, hresult: int) -> str:
    try:
        return f"{scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})"
    except Exception:  # pragma: no cover - defensive
        return f"0x{hresult & 0xFFFFFFFF:08X}"


@contextlib.contextmanager
def _context() -> Iterator[Any]:
    scard = _scard()
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscError(
            f"SCardEstablishContext via {_process_socket()}: {_error_text(scard, hresult)}"
        )
    try:
        yield ctx
    finally:
        scard.SCardReleaseContext(ctx)


def _list(scard: Any, ctx: Any) -> list[str]:
    hresult, names = scard.SCardListReaders(ctx, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscError(f"SCardListReaders: {_error_text(scard, hresult)}")
    return list(names)


def list_readers(*, socket_path: str | None = None) -> list[str]:
    """Reader names, via this process's libpcsclite (``socket_path`` only checks it is that
    one)."""
    _check_process_socket(socket_path)
    with _context() as ctx:
        return _list(_scard(), ctx)


def wait_for_readers(
    names: Iterable[str], *, timeout: float = 10.0, socket_path: str | None = None
) -> list[str]:
    """Block on SCardGetStatusChange (PnP notification) until every name is listed.
    Returns the full reader list; raises TimeoutError naming the missing readers."""
    _check_process_socket(socket_path)
    wanted = set(names)
    scard = _scard()
    deadline = time.monotonic() + timeout
    with _context() as ctx:
        pnp_state = scard.SCARD_STATE_UNAWARE
        while True:
            present = _list(scard, ctx)
            missing = wanted.difference(present)
            if not missing:
                return present
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"readers not listed within {timeout} s: {sorted(missing)}; listed: {present}"
                )
            hresult, states = scard.SCardGetStatusChange(
                ctx, _ms(remaining), [(PNP_NOTIFICATION, pnp_state)]
            )
            if hresult == scard.SCARD_S_SUCCESS:
                pnp_state = states[0][1] & ~scard.SCARD_STATE_CHANGED
            elif hresult != scard.SCARD_E_TIMEOUT:
                raise PcscError(f"SCardGetStatusChange: {_error_text(scard, hresult)}")


def wait_for_card(
    reader: str, *, present: bool = True, timeout: float = 5.0, socket_path: str | None = None
) -> bytes:
    """Block on SCardGetStatusChange until a card is present in (or absent from) ``reader``.
    Returns the ATR pcscd reports (empty when waiting for absence). pcscd notices a vpcd
    insertion or removal within about one 400 ms presence poll."""
    _check_process_socket(socket_path)
    scard = _scard()
    deadline = time.monotonic() + timeout
    with _context() as ctx:
        state = scard.SCARD_STATE_UNAWARE
        while True:
            hresult, states = scard.SCardGetStatusChange(
                ctx, _ms(deadline - time.monotonic()), [(reader, state)]
            )
            if hresult == scard.SCARD_E_TIMEOUT:
                what = "present" if present else "absent"
                raise TimeoutError(f"card not {what} in {reader!r} within {timeout} s")
            if hresult == scard.SCARD_E_UNKNOWN_READER or (
                hresult == scard.SCARD_S_SUCCESS and states[0][1] & scard.SCARD_STATE_UNKNOWN
            ):
                raise PcscError(f"pcscd ({_process_socket()}) has no reader named {reader!r}")
            if hresult != scard.SCARD_S_SUCCESS:
                raise PcscError(f"SCardGetStatusChange({reader!r}): {_error_text(scard, hresult)}")
            _, event, atr = states[0]
            if bool(event & scard.SCARD_STATE_PRESENT) == present:
                return bytes(atr) if present else b""
            state = event & ~scard.SCARD_STATE_CHANGED


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


# -- the running pcscd ----------------------------------------------------------------------

_LIST_SNIPPET = """
import json
from smartcard import scard
out = {"readers": [], "present": []}
rv, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
if rv == scard.SCARD_S_SUCCESS:
    rv, names = scard.SCardListReaders(ctx, [])
    if rv == scard.SCARD_S_SUCCESS and names:
        out["readers"] = list(names)
        rv, states = scard.SCardGetStatusChange(
            ctx, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in names])
        if rv == scard.SCARD_S_SUCCESS:
            out["present"] = [s[0] for s in states if s[1] & scard.SCARD_STATE_PRESENT]
    scard.SCardReleaseContext(ctx)
else:
    out["error"] = rv
print(json.dumps(out))
"""


def _ask_in_subprocess(socket_path: str, timeout: float) -> dict[str, Any] | None:
    """Readers and present cards of the pcscd at ``socket_path``, asked by a child Python
    (this process's libpcsclite may be bound to another socket). None if it cannot answer."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
            [sys.executable, "-c", _LIST_SNIPPET],
            env={**os.environ, SOCKET_ENV: socket_path},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        answer = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(answer, dict) or "error" in answer:
        return None
    return answer


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
    ``config_dir`` (ports from their DEVICENAME), else None.

    The daemon is asked from a short-lived subprocess, so this process's libpcsclite does not
    get bound to ``socket_path`` (it reads the socket path only once)."""
    try:
        if not stat.S_ISSOCK(os.stat(socket_path).st_mode):
            return None
    except OSError:
        return None
    declared: list[VpcdReader] = []
    config = Path(config_dir)
    if config.is_dir():
        for path in sorted(config.iterdir()):
            if path.name.startswith(".") or path.name.endswith("~") or not path.is_file():
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                declared.extend(parse_vpcd_config(path.read_text()))
    if not declared:
        return None
    answer = _ask_in_subprocess(socket_path, timeout)
    if answer is None:
        return None
    listed = set(answer.get("readers", []))
    readers = tuple(r for r in declared if r.name in listed)
    if not readers:
        return None
    return RunningPcscd(socket_path, readers, frozenset(answer.get("present", [])) & listed)


# -- the private pcscd ----------------------------------------------------------------------

_process_socket_dir: str | None = None


def _private_socket_path() -> str:
    """One socket path per process (see the module docstring), in a 0755 mkdtemp directory
    removed at exit."""
    global _process_socket_dir  # noqa: PLW0603 - process-wide by design
    if _process_socket_dir is None or not os.path.isdir(_process_socket_dir):
        directory = tempfile.mkdtemp(prefix="mynacard-pcsc-")
        os.chmod(directory, 0o755)  # noqa: S103 - like /run/pcscd: others may connect
        atexit.register(shutil.rmtree, directory, True)
        _process_socket_dir = directory
    return os.path.join(_process_socket_dir, "pcscd.comm")


def socket_is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _port_pair_free(port: int) -> bool:
    for candidate in (port, port + 1):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as vpcd does
            probe.bind(("0.0.0.0", candidate))  # noqa: S104 - vpcd itself binds 0.0.0.0
        except OSError:
            return False
        finally:
            probe.close()
    return True


def _pick_ports(pairs: int, rng: random.Random) -> list[int]:
    chosen: list[int] = []
    low, high = _PORT_RANGE
    for _ in range(2000):
        base = rng.randrange(low, high, 2)
        if any(abs(base - other) < 2 for other in chosen):
            continue
        if _port_pair_free(base):
            chosen.append(base)
            if len(chosen) == pairs:
                return chosen
    raise PcscdStartError(f"no {pairs} free TCP port pairs in {low}-{high}")


def _read_pid_file() -> str | None:
    try:
        return Path(PID_FILE).read_text()
    except OSError:
        return None


def _pid_alive(text: str | None) -> int | None:
    if not text:
        return None
    try:
        pid = int(text.strip("\x00 \n"))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    return pid


def _setpriv_pdeathsig() -> list[str]:
    """``setpriv --pdeathsig TERM`` (util-linux) when available: pcscd then dies with the
    thread that started it instead of outliving a killed test run."""
    setpriv = shutil.which("setpriv") or (
        "/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None
    )
    if setpriv is None:
        return []
    try:
        usage = subprocess.run(  # noqa: S603
            [setpriv, "--help"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [setpriv, "--pdeathsig", "TERM"] if "--pdeathsig" in usage else []


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
        name: str = "mynacard vpcd",
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
            _terminate(proc, self.stop_timeout)
            self._restore_pid_file(proc.pid)

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
                f"restarted pcscd does not list {missing}" + _log_tail(self.log_text())
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
        return _private_socket_path()

    def _start_with_retries(self, pcscd: str, driver: str) -> None:
        assert self._tmpdir is not None
        rng = random.Random()
        pairs = -(-self.count // SLOTS_PER_DRIVER)
        for attempt in range(1, _START_ATTEMPTS + 1):
            ports = _pick_ports(pairs, rng)
            slots = self._write_config(driver, ports)
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
                    + _log_tail(log)
                )
            self._end_process()  # a vpcd port was taken meanwhile: retry
            if attempt == _START_ATTEMPTS:
                raise PcscdStartError(
                    f"vpcd could not listen on its ports after {attempt} attempts" + _log_tail(log)
                )

    def _write_config(self, driver: str, ports: Sequence[int]) -> list[VpcdReader]:
        assert self._tmpdir is not None
        conf = Path(self._tmpdir, "reader.conf.d")
        drivers = Path(self._tmpdir, "drivers")
        if conf.exists():
            shutil.rmtree(conf)
        conf.mkdir()
        drivers.mkdir(exist_ok=True)
        slots: list[VpcdReader] = []
        for index, port in enumerate(ports):
            letter = chr(ord("A") + index)
            friendly = f"{self.name} {letter}"
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
                VpcdReader(f"{friendly} 00 {slot:02X}", port + slot, netns=self.netns_path)
                for slot in range(SLOTS_PER_DRIVER)
            )
        return slots

    def _spawn(self, pcscd: str) -> None:
        assert self._tmpdir is not None and self._socket_path is not None
        path = self._socket_path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket of an earlier (killed) run of this process
        os.makedirs(os.path.dirname(path), exist_ok=True)  # /run/pcscd may not exist yet
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
        except OSError as exc:
            listener.close()
            raise PcscdStartError(f"cannot bind {path}: {exc}") from exc
        self._bound_socket = True
        os.chmod(path, 0o666)  # noqa: S103 - like pcscd's own socket
        listener.listen(64)
        self._log_path = self._log_arg or os.path.join(self._tmpdir, "pcscd.log")
        self._old_pid_file = _read_pid_file()
        args = [pcscd, "--foreground", "-c", os.path.join(self._tmpdir, "reader.conf.d")]
        if self.debug:
            args += ["--debug", "--apdu"]
        prefix = _setpriv_pdeathsig() if self.kill_with_parent else []
        if self.isolated:
            prefix += netns_module.unshare_prefix()  # exec: pcscd keeps the PID we get
        # The shell passes the listener (our stdin) on as fd 3 and sets LISTEN_PID to its own
        # pid, which ``exec`` hands to pcscd: systemd's socket-activation protocol.
        argv = [
            *prefix,
            "/bin/sh",
            "-c",
            'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&0 0</dev/null',
            "sh",
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env.pop("NOTIFY_SOCKET", None)
        try:
            with open(self._log_path, "ab" if self._log_arg else "wb") as log_file:
                self._proc = subprocess.Popen(  # noqa: S603 - fixed argv
                    argv,
                    stdin=listener.fileno(),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self._tmpdir,
                    start_new_session=True,
                )
        finally:
            listener.close()  # only pcscd holds it now: if pcscd dies, clients get an error

    def _first_listing(self) -> list[str]:
        """Readers of the new pcscd. It loads reader.conf readers before it serves the
        socket, and our listener existed before it started, so the first answer is final."""
        proc = self._proc
        assert proc is not None and self._socket_path is not None
        if os.path.abspath(_process_socket()) != self._socket_path:
            # Not this process's PC/SC socket (explicit socket_path, set_environ=False).
            answer = _ask_in_subprocess(self._socket_path, timeout=30.0)
            if answer is not None:
                return list(answer.get("readers", []))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
            raise PcscdStartError(
                f"pcscd (pid {proc.pid}, status {proc.poll()}) does not answer on "
                f"{self._socket_path}" + _log_tail(self.log_text())
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
                    f"pcscd exited with status {proc.returncode}{hint}" + _log_tail(log)
                ) from exc
            raise PcscdStartError(
                f"pcscd (pid {proc.pid}) runs, but this process cannot reach it: {exc}. "
                + _CACHE_HINT.format(path=self._socket_path)
            ) from exc

    def _restore_pid_file(self, our_pid: int) -> None:
        """pcscd overwrote /run/pcscd/pcscd.pid with its pid and deletes it on exit; put a
        live previous owner's content back."""
        current = _read_pid_file()
        with contextlib.suppress(OSError):
            if current is not None and current.strip("\x00 \n") == str(our_pid):
                os.unlink(PID_FILE)  # left behind by a SIGKILLed pcscd
                current = None
            previous = self._old_pid_file
            if current is None and previous is not None:
                owner = _pid_alive(previous)
                if owner is not None and owner != our_pid:
                    Path(PID_FILE).write_text(previous)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _log_tail(text: str, lines: int = 15) -> str:
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return ("\npcscd log (end):\n  " + "\n  ".join(tail)) if tail else ""


@contextlib.contextmanager
def virtual_readers(
    count: int = 1, *, use_running: bool = True, **private: Any
) -> Iterator[ReaderSet]:
    """``count`` vpcd readers: free ones of the running pcscd when it has enough (and this
    process's libpcsclite talks to it), else a :class:`PrivatePcscd` started for the block."""
    if use_running and os.path.abspath(_process_socket()) == DEFAULT_SOCKET:
        running = find_running_vpcd()
        if running is not None and len(running.free_readers) >= count:
            yield dataclasses.replace(
                running, readers=running.free_readers[:count], occupied=frozenset()
            )
            return
    with PrivatePcscd(count, **private) as pcsc:
        yield pcsc
