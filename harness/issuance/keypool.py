"""Key pools: RSA-2048 card keys generated ahead (``mynacard key-pool``), used once by ``issue``.

Generating a card's two JPKI keys is most of what issuing it costs (≈40 ms a key, about 70 % of
the CPU of ``mynacard issue``). :func:`generate` makes keys ahead, in ``jobs`` worker processes,
into a pool directory; ``mynacard issue --key-pool DIR`` then takes the per-card keys from there.

The pool: a directory (created 0700) holding one key per file, ``key-<32 hex digits>.der``
(:data:`KEY_NAME`): a PKCS#8 DER RSA-2048 private key, mode 0600. A key file is written as a
hidden temporary file (``.tmp-…``), flushed to disk and renamed into its name, so a crash leaves
at most a temporary file, which no run ever takes (and a later ``mynacard key-pool`` on the
directory removes once it is ten minutes old). Adding keys to an existing pool is allowed.

Using the pool (:class:`Reservation`): a run first counts the keys (it fails before anything is
issued or taken when the pool holds too few, or a file that is not a key, naming it), then
*reserves* the keys it needs: it renames each one into a directory of its own
(``.reserved-<pid>-<random>/``). Runs sharing one pool count and reserve one at a time (an
exclusive ``flock`` on the pool directory, held for the renames only), so a run fails only when
the pool holds too few keys, not because another run had some in hand at that moment; a rename
is atomic besides: of two runs that do not take the lock (an older version), exactly one gets
each key (the other finds it gone and takes another; if the pool runs dry, it puts back what it
took and fails, nothing issued). The run reads and checks every reserved key before the first
card (:func:`load_key`), so a file that holds no usable key is reported, by name, before anything
is issued. Each card's worker deletes its key files *before* making the card, so a key is never
in two cards, even if a worker or the run dies (the deletions are synced to disk before the cards
or their certificates are written: not even a machine crash brings a used key back); keys not
used (a run that stopped early) are renamed back into the pool at the end. A run killed outright
(SIGKILL) leaves its reservation directory, whose keys no run counts; ``mynacard key-pool`` on
the pool puts them back (:func:`recover_reservations`: only those of processes no longer alive).

Checking a key: OpenSSL's own check of a loaded RSA key (primality of p and q) costs ≈35-95 ms,
as much as generating one, so keys are loaded with ``unsafe_skip_rsa_key_validation=True`` and
checked cheaply instead (:func:`check_key`, ≈0.1 ms): 2048-bit modulus, e = 65537, n = p·q, d an
inverse of e modulo p-1 and q-1, and the CRT values consistent. That rejects a damaged or foreign
file; what it does not prove (that p and q are prime) only matters for a key made by someone
else, and the pool is a private (0700 / 0600) directory of keys this program generated.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.issuance.personas import IssueError
from jpki.keys import KEY_SIZE, PUBLIC_EXPONENT, generate_rsa_key

__all__ = [
    "KEY_NAME",
    "MAX_KEYS",
    "GenerateResult",
    "Reservation",
    "check_key",
    "consume",
    "count_keys",
    "generate",
    "load_key",
    "pool_keys",
    "recover_reservations",
    "sync_consumed",
    "too_small_message",
]

KEY_NAME = re.compile(r"key-[0-9a-f]{32}\.der")
"""The name of a key file in a pool."""
TEMPORARY_PREFIX = ".tmp-"
RESERVED_PREFIX = ".reserved-"
MAX_KEYS = 10_000_000
STALE_TEMPORARY_SECONDS = 600
"""A temporary key file this old was left by a killed run (writing one takes milliseconds)."""
MAX_KEY_FILE = 4096
"""A PKCS#8 DER RSA-2048 key is ≈1,220 bytes; a bigger file is not one of ours."""


# --- generating ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` made."""

    count: int
    seconds: float
    jobs: int
    pool: Path
    total: int
    """Keys in the pool afterwards."""

    @property
    def keys_per_second(self) -> float:
        """Throughput of the whole run (worker start included)."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def _key_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_key(pool: Path, der: bytes) -> None:
    """Write one key file atomically: a 0600 temporary file, flushed, renamed into its name."""
    token = secrets.token_hex(16)
    temporary = pool / f"{TEMPORARY_PREFIX}{token}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(der)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, pool / f"key-{token}.der")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _make_keys(pool: Path, count: int) -> int:
    """Generate ``count`` keys into ``pool`` (in a worker); return ``count``."""
    for _ in range(count):
        _write_key(pool, _key_der(generate_rsa_key()))
    return count


def _prepare_pool(pool: Path) -> None:
    """Create the pool directory (0700), or check an existing one; remove stale temporaries."""
    if pool.exists() and not pool.is_dir():
        raise IssueError(f"key pool {pool} exists and is not a directory")
    if not pool.exists():
        try:
            pool.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise IssueError(
                f"key pool {pool}: cannot create the directory ({exc.strerror})"
            ) from None
        return
    mode = stat.S_IMODE(pool.stat().st_mode)
    if mode & 0o077:
        raise IssueError(
            f"key pool {pool} is accessible to other users (mode {mode:04o}); private keys go "
            f"in a private directory: chmod 700 {pool}"
        )
    if not os.access(pool, os.W_OK | os.X_OK):
        raise IssueError(f"key pool {pool}: not writable")
    pool_keys(pool)  # an existing pool with foreign files is refused before any work
    stale = time.time() - STALE_TEMPORARY_SECONDS
    for path in pool.iterdir():  # left by a run that was killed (not one writing now)
        with contextlib.suppress(OSError):
            if path.name.startswith(TEMPORARY_PREFIX) and path.stat().st_mtime < stale:
                path.unlink()
    recover_reservations(pool)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours
    return True


def recover_reservations(pool: Path) -> int:
    """Put back the keys reserved by runs that died (killed before they could); the count.

    Safe: a card deletes its keys before it uses them, so a reserved key was never used. A
    reservation of a process still alive (or a reused process id) is left alone.
    """
    recovered = 0
    for path in pool.iterdir():
        match = re.fullmatch(re.escape(RESERVED_PREFIX) + r"(\d+)-[0-9a-f]+", path.name)
        if match is None or not path.is_dir() or _process_alive(int(match[1])):
            continue
        stale = Reservation(pool)
        stale.directory = path
        recovered += stale.release()
    return recovered


def _chunks(count: int, jobs: int) -> list[int]:
    """Split ``count`` keys into tasks small enough for a smooth progress bar."""
    size = max(1, min(8, count // (jobs * 4) or 1))
    sizes = [size] * (count // size)
    if count % size:
        sizes.append(count % size)
    return sizes


def generate(
    pool: Path,
    count: int,
    *,
    jobs: int = 0,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Add ``count`` fresh RSA-2048 keys to the pool directory ``pool``, in ``jobs`` processes.

    ``progress(done)`` is called as keys are written. :class:`IssueError` if it cannot.
    """
    started = time.perf_counter()
    if not 1 <= count <= MAX_KEYS:
        raise IssueError(f"--count must be 1-{MAX_KEYS:,}, not {count}")
    if jobs < 0:
        raise IssueError(f"--jobs must be 1 or more (0: one per CPU), not {jobs}")
    workers = min(jobs or os.cpu_count() or 1, count)
    _prepare_pool(pool)
    done = 0
    try:
        if workers == 1:
            for size in _chunks(count, 1):
                done += _make_keys(pool, size)
                if progress is not None:
                    progress(done)
        else:
            with ProcessPoolExecutor(workers) as executor:
                futures = [executor.submit(_make_keys, pool, n) for n in _chunks(count, workers)]
                for future in as_completed(futures):
                    done += future.result()
                    if progress is not None:
                        progress(done)
    except BrokenProcessPool:
        raise IssueError(
            f"a worker process died (out of memory? killed?); {done} key(s) were added to {pool}"
        ) from None
    except OSError as exc:
        raise IssueError(
            f"key pool {pool}: cannot write a key ({exc.strerror}); {done} key(s) were added"
        ) from None
    _sync_directory(pool)
    return GenerateResult(count, time.perf_counter() - started, workers, pool, len(pool_keys(pool)))


def _sync_directory(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- using ---------------------------------------------------------------------------------


def pool_keys(pool: Path) -> list[Path]:
    """The key files in ``pool``; :class:`IssueError` for a missing pool or a foreign file.

    Hidden temporary files (a key being written) and reservations of runs are skipped.
    """
    if not pool.is_dir():
        what = "does not exist" if not pool.exists() else "is not a directory"
        raise IssueError(f"key pool {pool} {what} (make one with mynacard key-pool)")
    keys: list[Path] = []
    try:
        entries = sorted(os.scandir(pool), key=lambda entry: entry.name)
    except OSError as exc:
        raise IssueError(f"key pool {pool}: cannot list it ({exc.strerror})") from None
    for entry in entries:
        name = entry.name
        if name.startswith((TEMPORARY_PREFIX, RESERVED_PREFIX)):
            continue
        path = pool / name
        if KEY_NAME.fullmatch(name) is None or not entry.is_file(follow_symlinks=False):
            raise IssueError(
                f"key pool {pool}: {path} is not a key file (a pool holds only "
                "key-<32 hex digits>.der files made by mynacard key-pool)"
            )
        keys.append(path)
    return keys


def count_keys(pool: Path) -> int:
    """How many keys ``pool`` holds (:class:`IssueError` as :func:`pool_keys`)."""
    return len(pool_keys(pool))


def check_key(key: rsa.RSAPrivateKey) -> str | None:
    """What is wrong with ``key`` as a card key (cheap arithmetic checks), or ``None``."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    p, q, d, n, e = numbers.p, numbers.q, numbers.d, public.n, public.e
    if n.bit_length() != KEY_SIZE:
        return f"a {n.bit_length()}-bit key, not {KEY_SIZE}"
    if e != PUBLIC_EXPONENT:
        return f"public exponent {e}, not {PUBLIC_EXPONENT}"
    if (
        p * q != n
        or p < 3
        or q < 3
        or d * e % (p - 1) != 1
        or d * e % (q - 1) != 1
        or numbers.dmp1 != d % (p - 1)
        or numbers.dmq1 != d % (q - 1)
        or numbers.iqmp * q % p != 1
    ):
        return "an inconsistent RSA key"
    return None


def load_key(
    path: Path, der: bytes | None = None, *, name: Path | None = None
) -> tuple[rsa.RSAPrivateKey, bytes]:
    """Read (unless ``der`` is given) and check the key file ``path``: ``(key, its DER)``.

    :class:`IssueError`, naming ``name`` (default ``path``), if it is not a usable key.
    """
    name = name or path
    try:
        if der is None:
            if path.stat().st_size > MAX_KEY_FILE:
                raise IssueError(f"{name}: not a key file (too big for an RSA-2048 key)")
            der = path.read_bytes()
    except OSError as exc:
        raise IssueError(f"{name}: cannot read the key ({exc.strerror})") from None
    try:
        # Cheap checks below instead of OpenSSL's (see the module docstring).
        key = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as exc:
        raise IssueError(f"{name}: not a PKCS#8 DER private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise IssueError(f"{name}: not an RSA key")
    problem = check_key(key)
    if problem is not None:
        raise IssueError(f"{name}: {problem}")
    return key, der


def consume(paths: Sequence[str]) -> None:
    """Delete reserved key files (a card is about to use them): raises ``OSError`` if gone.

    Durable once :func:`sync_consumed` has synced their directories (before the card, or its
    certificates, is written anywhere).
    """
    for path in paths:
        os.unlink(path)


def sync_consumed(directories: Iterable[str]) -> None:
    """Make the deletions of :func:`consume` in ``directories`` durable (fsync each directory):
    after a crash, a key a card was written with cannot be back in the pool."""
    for directory in directories:
        _sync_directory(Path(directory))


class Reservation:
    """Keys of a pool taken by one run: renamed into a directory of the run's own.

    :meth:`take` reserves ``needed`` keys (all or none) and reads them; :meth:`release` puts the
    keys no card used back into the pool and removes the directory.
    """

    def __init__(self, pool: Path) -> None:
        self.pool = pool
        self.directory = pool / f"{RESERVED_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.keys: list[tuple[str, bytes]] = []
        """The reserved keys: ``(path in the reservation, PKCS#8 DER)``."""

    def take(self, needed: int, purpose: str) -> None:
        """Reserve and read ``needed`` keys; :class:`IssueError` (nothing taken) if it cannot."""
        with _locked(self.pool):
            self._reserve(needed, purpose)
        try:
            self.keys = [
                (str(path), load_key(path, name=self.pool / path.name)[1])
                for path in sorted(self.directory.iterdir())
            ]
        except BaseException:
            self.keys = []
            self.release()
            raise

    def _reserve(self, needed: int, purpose: str) -> None:
        """Rename ``needed`` keys of the pool into :attr:`directory` (the pool's lock held)."""
        available = pool_keys(self.pool)
        if len(available) < needed:
            raise IssueError(too_small_message(self.pool, len(available), needed, purpose))
        try:
            self.directory.mkdir(mode=0o700)
        except OSError as exc:
            raise IssueError(f"key pool {self.pool}: not writable ({exc.strerror})") from None
        taken: list[Path] = []
        try:
            for path in _candidates(available):
                target = self.directory / path.name
                try:
                    os.rename(path, target)
                except FileNotFoundError:
                    continue  # another run took it
                taken.append(target)
                if len(taken) == needed:
                    break
            if len(taken) < needed:
                left = len(pool_keys(self.pool))
                raise IssueError(
                    too_small_message(self.pool, len(taken) + left, needed, purpose)
                    + " (another run is taking keys from it)"
                )
        except BaseException:
            self.release()
            raise

    def release(self) -> int:
        """Put the keys still reserved back into the pool; remove the directory; the count."""
        returned = 0
        if not self.directory.is_dir():
            return returned
        for path in self.directory.iterdir():
            try:
                os.rename(path, self.pool / path.name)
                returned += 1
            except OSError:
                pass
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        return returned


@contextlib.contextmanager
def _locked(pool: Path) -> Iterator[None]:
    """Hold the pool's reservation lock (an exclusive ``flock`` on its directory; every open of
    it is a lock of its own, so threads of one run exclude each other too)."""
    try:
        descriptor = os.open(pool, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise IssueError(f"key pool {pool}: cannot open ({exc.strerror})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _candidates(available: list[Path]) -> Iterator[Path]:
    """The pool's keys in a random order: concurrent runs rarely race for the same file."""
    order = list(available)
    secrets.SystemRandom().shuffle(order)
    return iter(order)


def too_small_message(pool: Path, holds: int, needed: int, purpose: str) -> str:
    return (
        f"key pool {pool} holds {holds:,} key(s); this run needs {needed:,} ({purpose}); "
        f"add {needed - holds:,} with: mynacard key-pool --out {pool} --count {needed - holds}"
    )
