"""What the doctor asks the machine: programs and their versions, who holds a TCP port, which
libpcsclite pyscard loads, whether a directory takes a new file.

Each probe only reads, or makes and removes a file of its own; none stops, signals or
connects to anything that runs. The Linux-only ones (``/proc``, ``ioctl``) say so by
returning ``None`` elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PyscardProbe",
    "Writability",
    "dpkg_version",
    "immutable",
    "mount_point",
    "port_holders",
    "probe_pyscard",
    "probe_writable",
    "program_version",
    "system_libpcsclite",
    "which",
]

_LDCONFIG = ("/sbin/ldconfig", "/usr/sbin/ldconfig")
_LIB_GLOBS = (
    "/usr/lib/*/libpcsclite.so.1",
    "/lib/*/libpcsclite.so.1",
    "/usr/lib64/libpcsclite.so.1",
    "/usr/lib/libpcsclite.so.1",
    "/usr/local/lib/libpcsclite.so.1",
)
_FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long) on 64-bit Linux
_FS_IMMUTABLE_FL = 0x00000010
_FS_APPEND_FL = 0x00000020
_TCP_LISTEN = "0A"


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(  # noqa: S603 - argv of a program we found, no shell
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def which(name: str, path: str) -> str | None:
    """``name`` on ``path`` (a PATH value), as the shell would find it."""
    return shutil.which(name, path=path)


def program_version(argv: list[str], pattern: str, timeout: float) -> str | None:
    """The first match group of ``pattern`` in what ``argv`` prints (stdout or stderr)."""
    done = _run(argv, timeout)
    if done is None:
        return None
    found = re.search(pattern, done.stdout + "\n" + done.stderr)
    return found.group(1) if found else None


def dpkg_version(package: str, path: str, timeout: float) -> str | None:
    """The installed Debian version of ``package`` (None without dpkg or the package)."""
    dpkg_query = shutil.which("dpkg-query", path=path)
    if dpkg_query is None:
        return None
    done = _run([dpkg_query, "-W", "-f=${Status}\t${Version}", package], timeout)
    if done is None or done.returncode != 0:
        return None
    status, _, version = done.stdout.partition("\t")
    if status.split()[-1:] != ["installed"]:
        return None
    return version.strip() or None


# -- TCP ports ------------------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            if int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return inodes


def _links(fd_dir: Path) -> set[str]:
    """Where the file descriptors in ``fd_dir`` point (those that vanish meanwhile, like the
    one listing the directory, are skipped)."""
    links: set[str] = set()
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return links
    for fd in fds:
        with contextlib.suppress(OSError):
            links.add(os.readlink(fd))
    return links


def port_holders(port: int) -> list[tuple[int, str]] | None:
    """(pid, program name) of each process listening on TCP ``port`` in this network
    namespace, from ``/proc`` (Linux-only: None elsewhere). Processes whose file descriptors
    this user may not read are missing from the list."""
    if not Path("/proc/net/tcp").exists():
        return None
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders: list[tuple[int, str]] = []
    if not wanted:
        return holders
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        if not _links(proc / "fd") & wanted:
            continue
        comm = ""
        with contextlib.suppress(OSError):
            comm = (proc / "comm").read_text().strip()
        holders.append((int(proc.name), comm))
    return sorted(holders)


# -- pyscard and libpcsclite ----------------------------------------------------------------

_PYSCARD_SNIPPET = """
import json, sys
out = {}
try:
    import smartcard.scard
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
else:
    try:
        import importlib.metadata
        out["version"] = importlib.metadata.version("pyscard")
    except Exception:
        out["version"] = None
    native = [m for n, m in sys.modules.items() if n.startswith("smartcard.scard._scard")]
    out["module"] = getattr(native[0] if native else smartcard.scard, "__file__", None)
    try:
        with open("/proc/self/maps") as maps:
            rows = [line.split(None, 5) for line in maps]
        libs = {r[5].strip() for r in rows if len(r) == 6 and "libpcsclite" in r[5]}
        out["libraries"] = sorted(libs)
    except OSError:
        out["libraries"] = None
print(json.dumps(out))
"""


@dataclass(frozen=True)
class PyscardProbe:
    """What importing ``smartcard.scard`` in ``python`` gave: an ``error``, or pyscard's
    ``version``, its native ``module`` and the libpcsclite files mapped into the process
    (``libraries``: None where ``/proc/self/maps`` does not exist, i.e. off Linux)."""

    error: str | None = None
    version: str | None = None
    module: str | None = None
    libraries: tuple[str, ...] | None = None


def probe_pyscard(python: str, timeout: float) -> PyscardProbe:
    """Import pyscard's ``smartcard.scard`` in a child ``python`` (pyscard dlopens libpcsclite
    at import; nothing connects to pcscd) and read which libpcsclite got mapped."""
    done = _run([python, "-c", _PYSCARD_SNIPPET], timeout)
    if done is None:
        return PyscardProbe(error=f"{python} did not run")
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return PyscardProbe(error=f"{python} failed: {tail}")
    if not isinstance(answer, dict):
        return PyscardProbe(error=f"{python} answered {answer!r}")
    if answer.get("error"):
        return PyscardProbe(error=str(answer["error"]))
    libraries = answer.get("libraries")
    return PyscardProbe(
        version=answer.get("version"),
        module=answer.get("module"),
        libraries=None if libraries is None else tuple(str(lib) for lib in libraries),
    )


def system_libpcsclite(path: str, timeout: float) -> list[str]:
    """The libpcsclite.so.1 files the dynamic loader's cache knows (``ldconfig -p``), else
    those in the usual library directories; real paths, without duplicates."""
    found: list[str] = []
    ldconfig = shutil.which("ldconfig", path=path) or next(
        (c for c in _LDCONFIG if os.access(c, os.X_OK)), None
    )
    if ldconfig is not None:
        done = _run([ldconfig, "-p"], timeout)
        for line in done.stdout.splitlines() if done is not None else []:
            name, _, target = line.strip().partition(" => ")
            if name.startswith("libpcsclite.so.1 ") and target:
                found.append(target.strip())
    if not found:
        for pattern in _LIB_GLOBS:
            found.extend(str(p) for p in sorted(Path("/").glob(pattern.lstrip("/"))))
    unique: list[str] = []
    for lib in found:
        real = os.path.realpath(lib)
        if os.path.isfile(real) and real not in unique:
            unique.append(real)
    return unique


# -- directories ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Writability:
    """Whether a new file can be made in ``target``: the directory itself when it exists,
    else its nearest existing ancestor (``exists`` False), where mynacard would create it."""

    target: Path
    exists: bool
    error: OSError | None = None
    not_a_directory: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.not_a_directory


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or "/")


def probe_writable(directory: Path) -> Writability:
    """Try it: make (and remove) a file in ``directory``, or, when it does not exist yet, a
    directory in its nearest existing ancestor. Permission bits alone do not tell (root
    ignores them; read-only mounts and immutable directories refuse root too)."""
    target = _nearest_existing(directory)
    exists = target == directory
    if not target.is_dir():
        return Writability(target, exists, not_a_directory=True)
    try:
        if exists:
            handle, name = tempfile.mkstemp(prefix=".mynacard-doctor-", dir=target)
            os.close(handle)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".mynacard-doctor-", dir=target))
    except OSError as exc:
        return Writability(target, exists, error=exc)
    return Writability(target, exists)


def immutable(path: Path) -> bool | None:
    """True when ``path`` carries the immutable or append-only attribute (``chattr +i`` /
    ``+a``); None when the file system or platform cannot say (Linux-only)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(handle, _FS_IOC_GETFLAGS, b"\0" * 8)
    except OSError:
        return None
    finally:
        os.close(handle)
    (flags,) = struct.unpack("=i", raw[:4])  # the kernel reads and writes an int
    return bool(flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL))


def _unescape(field: str) -> str:
    """A mountinfo path field (spaces and the like are written as octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (from ``/proc/self/mountinfo``,
    which also knows bind mounts; else where the device number changes)."""
    path = path.resolve()
    try:
        rows = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        rows = []
    points = [Path(_unescape(row.split()[4])) for row in rows if len(row.split()) > 4]
    inside = [point for point in points if point == path or point in path.parents]
    if inside:
        return max(inside, key=lambda point: len(point.parts))
    try:
        device = path.stat().st_dev
        for parent in path.parents:
            if parent.stat().st_dev != device:
                break
            path = parent
    except OSError:
        pass
    return path
