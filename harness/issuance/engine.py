"""Bulk card issuance (the engine of ``mynacard issue``): N personas, one durable card image each.

:func:`issue` derives the batch's personas (:mod:`harness.issuance.personas`), checks the base and
the output directory, warms up the test PKI, and has ``jobs`` worker processes personalize the
cards: each writes ``<label>.toml`` (the persona; the card image records its digest, so
``Card.from_persona(toml, image=sqlite)`` reopens the card) and ``<label>.sqlite`` (the card
image). Then ``index.json`` lists every card (label, 個人番号, 氏名, persona and image file,
certificate serials). Certificates are issued by the test PKI (``$MYNACARD_PKI``) and recorded
there under the label, so ``mynacard pki revoke --persona LABEL`` works on issued cards.
Progress is reported through a callback (cards done so far).

Keys: generating an RSA-2048 key takes ≈40 ms and a card has six, so by default only the two
JPKI keys (利用者証明用 and 署名用, certified and unique to each card) are generated per card; the
four others (:data:`SHARED_KEY_PURPOSES`: 券面事項入力補助AP key and secure-messaging key, 券面AP
key, common AP key) come from a pool generated once per run and shared by its cards. They prove
the card and its 券面 data genuine rather than identify the holder, and the signed card data that
carries them stays valid, but the cards of one run hold the same four keys (and, e.g., answer the
common AP's INTERNAL AUTHENTICATE alike): a test that tells cards apart by those keys needs
``unique_keys`` (``--unique-keys``), which generates all six per card (about 2.5 times slower: 7
instead of 17 cards/s on 2 cores). Cards are made by ``jobs`` worker processes (default: one per
CPU), forked when that is safe so that they inherit the warmed-up PKI.

Each worker makes its cards in batches (:data:`BATCH` cards at most, smaller towards the end of
the run): it personalizes the batch's cards with the PKI's recording deferred
(:meth:`~jpki.pki_store.PkiStore.deferred`: their certificates go into the PKI database in one
transaction, not one each), then writes their persona files and card images
(:meth:`~card_emulator.image.SqliteImage.write`: written without a journal and synced once, not
reopened) — so every card image on disk has its certificates recorded. A card that fails ends the
batch: the cards before it are written, the ones after it are not started.

Key pool (``key_pool``, ``--key-pool DIR``): the per-card keys (the two JPKI keys; all six with
``unique_keys``) are taken from a directory of keys generated ahead by ``mynacard key-pool``
(:mod:`harness.issuance.keypool`) instead of being generated, each used by one card only and
deleted before the card is made. A pool holding too few keys, or a file that is not a key, fails
the run before anything is issued, and nothing is taken from the pool.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from card_emulator import ImageError, PersonaError, render
from card_emulator import persona as persona_module
from card_emulator.content import CardContent
from card_emulator.image import SqliteImage
from card_emulator.persona import Persona
from card_emulator.personalize import KEY_PURPOSES, personalize
from card_emulator.profiles import ProfileError, load_profile
from harness.default_pki import default_cv_signer, pki_store
from harness.issuance import keypool
from harness.issuance.personas import IssueError, derive_personas, persona_text
from harness.personas import demo_persona_path, profile_value
from jpki.clock import jst_day_start
from jpki.keys import generate_rsa_key
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiError, default_directory

__all__ = [
    "DEFAULT_BASE",
    "INDEX_FILE",
    "INDEX_FORMAT",
    "LABEL_PREFIX",
    "MAX_COUNT",
    "SHARED_KEY_PURPOSES",
    "IssueError",
    "IssueOptions",
    "IssueResult",
    "issue",
]

DEFAULT_BASE = demo_persona_path()
"""The persona ``mynacard issue`` derives cards from by default: the packaged demo persona."""
INDEX_FILE = "index.json"
INDEX_FORMAT = "mynacard-issue/1"
MAX_COUNT = 1_000_000
LABEL_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

SHARED_KEY_PURPOSES: tuple[str, ...] = tuple(p for p in KEY_PURPOSES if not p.startswith("jpki_"))
"""The card keys a run shares between its cards unless ``unique_keys`` (never the JPKI keys)."""


@dataclass(frozen=True)
class IssueOptions:
    """What ``mynacard issue`` was asked to do."""

    count: int
    out: Path
    base: Path = DEFAULT_BASE
    seed: int = 1
    jobs: int = 0
    """Worker processes; 0 means one per CPU."""
    prefix: str | None = None
    """Label prefix; default: the base persona's label."""
    unique_keys: bool = False
    force: bool = False
    key_pool: Path | None = None
    """A key pool directory the per-card keys are taken from (``None``: generate them)."""
    profile: str | None = None
    """``--profile``: the card generation of every card (``None``: the base persona's)."""


@dataclass(frozen=True)
class IssueResult:
    """What a run made and how long it took."""

    count: int
    seconds: float
    jobs: int
    shared_keys: bool
    index: Path
    entries: list[dict[str, Any]]
    pool_keys_used: int = 0
    """Keys taken from the key pool (and deleted from it)."""

    @property
    def cards_per_second(self) -> float:
        """Throughput of the whole run (setup, key pool and worker start included)."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")


# --- the workers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    number: int
    label: str
    text: bytes
    persona_file: Path
    image_file: Path
    keys: tuple[tuple[str, str, bytes], ...] = ()
    """Keys from the key pool: ``(purpose, reserved file, PKCS#8 DER)``."""


@dataclass
class _WorkerState:
    pool: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    replace: bool = False
    addresses: dict[str, bytes] = field(default_factory=dict)
    """Rendered address images by address text: cards of a run share the base's address."""
    card_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    """The current card's keys from the key pool, by purpose."""
    consumed: set[str] = field(default_factory=set)
    """Directories whose pool key files this worker deleted since :meth:`sync_consumed`."""

    def images(self, persona: Persona) -> dict[str, bytes] | None:
        """The 券面 images this worker has already rendered for ``persona``."""
        address = persona.holder.address
        if "address" in persona.images:
            return None
        if address not in self.addresses:
            try:
                self.addresses[address] = render.render_address_png(address)
            except ValueError:
                return None  # personalize() reports it, naming the field
        return {"address": self.addresses[address]}

    def key(self, purpose: str) -> rsa.RSAPrivateKey:
        """The card's key from the key pool, the run's shared key for ``purpose``, or a new one."""
        pooled = self.card_keys.get(purpose)
        if pooled is not None:
            return pooled
        shared = self.pool.get(purpose)
        return shared if shared is not None else generate_rsa_key()

    def take_keys(self, job: _Job) -> None:
        """Delete the card's pool key files (before use: a key is never in two cards); load them.

        The run read and checked each key (:func:`keypool.load_key`) before the first card.
        """
        keypool.consume([path for _, path, _ in job.keys])
        self.consumed.update(os.path.dirname(path) for _, path, _ in job.keys)
        self.card_keys = {purpose: _private_key(der) for purpose, _, der in job.keys}

    def sync_consumed(self) -> None:
        """Make the key deletions so far durable (before the cards using them are recorded or
        written): a crash cannot put a key that is in a card back into the pool."""
        keypool.sync_consumed(sorted(self.consumed))
        self.consumed.clear()


_state = _WorkerState()


def _private_key(der: bytes) -> rsa.RSAPrivateKey:
    """A key this run made or checked a moment ago: without OpenSSL's slow consistency check
    (≈35 ms a key)."""
    key = serialization.load_der_private_key(
        der, password=None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _init_worker(pool_der: Mapping[str, bytes], replace: bool) -> None:
    """Set up a worker process: the run's shared key pool (PKCS#8 DER) and whether to replace."""
    global _state  # noqa: PLW0603 - one state per worker process
    _state = _WorkerState(
        {purpose: _private_key(der) for purpose, der in pool_der.items()}, replace
    )


def _remove_image(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".creating", ".creating-wal", ".creating-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _personalize_card(job: _Job) -> tuple[Persona, CardContent]:
    """One card's content (in a worker): its pool keys deleted, its certificates issued."""
    persona = persona_module.parse(job.text, str(job.persona_file), job.persona_file.parent)
    _state.take_keys(job)
    try:
        content = personalize(
            persona, store=pki_store(), keys=_state.key, images=_state.images(persona)
        )
    finally:
        _state.card_keys = {}
    return persona, content


def _write_card(job: _Job, persona: Persona, content: CardContent) -> dict[str, Any]:
    """Write one card's persona file and image (its certificates recorded); its index entry."""
    if _state.replace:
        _remove_image(job.image_file)
    job.persona_file.write_bytes(job.text)
    SqliteImage.write(job.image_file, content)
    return _index_entry(job, persona, content)


def _index_entry(job: _Job, persona: Persona, content: CardContent) -> dict[str, Any]:
    meta = content.meta
    return {
        "number": job.number,
        "label": job.label,
        "my_number": persona.holder.my_number,
        "name": persona.holder.name,
        "persona": job.persona_file.name,
        "image": job.image_file.name,
        "card_serial": persona.card.serial,
        "auth_certificate_serial": meta["auth_certificate_serial"],
        "sign_certificate_serial": meta["sign_certificate_serial"],
    }


_CARD_ERRORS = (PersonaError, PkiError, ImageError, OSError, ValueError, IssueError)
"""What stops a card (reported by its label); anything else is a bug and stops the run loudly."""


def _run_batch(batch: Sequence[_Job]) -> list[tuple[bool, Any]]:
    """Issue a batch of cards (in a worker): ``(True, entry)`` per card made, in order, then
    ``(False, message)`` for the card that failed, if one did (the rest of the batch is not
    started). Errors cross the process boundary as text.

    The batch's certificates are recorded in the PKI together (one database transaction,
    :meth:`~jpki.pki_store.PkiStore.deferred`) before any of its cards is written, so every
    card image on disk has its certificates recorded; before that, the deletions of the pool
    keys the batch took are synced to disk (one directory sync per batch), so no key in a
    card or a recorded certificate can come back into the pool after a crash.
    """
    made: list[tuple[_Job, Persona, CardContent]] = []
    failure: str | None = None
    try:
        with pki_store().deferred():
            for job in batch:
                try:
                    made.append((job, *_personalize_card(job)))
                except _CARD_ERRORS as exc:
                    failure = f"card {job.label}: {exc}"
                    break
            _state.sync_consumed()  # the batch's key deletions on disk before anything else
    except _CARD_ERRORS as exc:  # the batch's certificates could not be recorded
        first = made[0][0] if made else batch[0]
        return [(False, f"card {first.label}: {exc}")]
    results: list[tuple[bool, Any]] = []
    for job, persona, content in made:
        try:
            results.append((True, _write_card(job, persona, content)))
        except _CARD_ERRORS as exc:
            results.append((False, f"card {job.label}: {exc}"))
            return results
    if failure is not None:
        results.append((False, failure))
    return results


BATCH = 20
"""Cards a worker makes per task at most: one PKI transaction per batch."""


def _batches(work: Sequence[_Job], jobs: int) -> list[Sequence[_Job]]:
    """``work`` in tasks of at most :data:`BATCH` cards, each at most a quarter of what is left
    per worker: batches shrink towards the end of the run, so the workers finish together."""
    batches: list[Sequence[_Job]] = []
    start = 0
    while start < len(work):
        size = max(1, min(BATCH, (len(work) - start) // (jobs * 4)))
        batches.append(work[start : start + size])
        start += size
    return batches


def _mp_context() -> multiprocessing.context.BaseContext:
    """Fork (workers inherit the warmed-up PKI) unless threads make forking unsafe."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class _Collector:
    """The index entries of the cards made so far, and the first failure."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.failure: str | None = None
        self._progress = progress

    def collect(self, results: Iterable[tuple[bool, Any]]) -> None:
        """Take results until the first failure."""
        for ok, value in results:
            if not ok:
                self.failure = str(value)
                return
            self.entries.append(value)
            if self._progress is not None:
                self._progress(len(self.entries))


def _make_cards(
    work: Sequence[_Job], jobs: int, pool_der: Mapping[str, bytes], replace: bool, into: _Collector
) -> None:
    """Make the cards of ``work`` in this process (``jobs`` == 1) or in ``jobs`` workers."""
    batches = _batches(work, jobs)
    if jobs == 1:
        _init_worker(pool_der, replace)
        try:  # lazily: a failure stops the run before the next batch
            into.collect(result for batch in batches for result in _run_batch(batch))
        finally:
            _init_worker({}, replace=False)
        return
    gc.freeze()  # forked workers: no collector passes over (or copies of) inherited objects
    workers = ProcessPoolExecutor(
        jobs, mp_context=_mp_context(), initializer=_init_worker, initargs=(pool_der, replace)
    )
    try:
        futures = [workers.submit(_run_batch, batch) for batch in batches]
        into.collect(result for future in as_completed(futures) for result in future.result())
    except BrokenProcessPool:
        into.failure = "a worker process died (out of memory? killed?)"
    finally:
        workers.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


# --- the run -------------------------------------------------------------------------------


def _check_numbers(options: IssueOptions) -> int:
    """The number of worker processes to use; :class:`IssueError` for a bad count or jobs."""
    if not 1 <= options.count <= MAX_COUNT:
        raise IssueError(f"--count must be 1-{MAX_COUNT:,}, not {options.count}")
    if options.jobs < 0:
        raise IssueError(f"--jobs must be 1 or more (0: one per CPU), not {options.jobs}")
    return min(options.jobs or os.cpu_count() or 1, options.count)


def _load_base(options: IssueOptions) -> tuple[Persona, dict[str, Any], str]:
    """The base persona, its TOML tables, and the label prefix (checked: it names files)."""
    try:
        base = persona_module.load(options.base)
        tables = tomllib.loads(options.base.read_text(encoding="utf-8"))
    except PersonaError as exc:
        raise IssueError(f"--base: {exc}") from None
    try:  # a profile file by its absolute path: the cards' persona files live elsewhere
        tables["profile"] = (
            profile_value(options.profile) if options.profile is not None else base.profile
        )
    except ProfileError as exc:
        raise IssueError(str(exc)) from None
    prefix = options.prefix if options.prefix is not None else base.label
    if LABEL_PREFIX.fullmatch(prefix) is None:
        what = (
            f"--prefix {prefix!r}"
            if options.prefix is not None
            else (f"the base persona's label {prefix!r} (the default --prefix)")
        )
        raise IssueError(
            f"{what}: labels become file names; use 1-64 of A-Z a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    return base, tables, prefix


def _plan(options: IssueOptions, base_tables: Mapping[str, Any], prefix: str) -> list[_Job]:
    """One job per card: its persona file's text and the files it writes."""
    out = options.out
    derived = derive_personas(
        base_tables, options.count, seed=options.seed, prefix=prefix, base_dir=options.base.parent
    )
    return [
        _Job(
            number,
            label,
            persona_text(tables, base=options.base, seed=options.seed),
            out / f"{label}.toml",
            out / f"{label}.sqlite",
        )
        for number, (label, tables) in enumerate(derived, start=1)
    ]


def _check_out(out: Path, force: bool, files: Sequence[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise IssueError(f"--out {out} exists and is not a directory")
    if out.is_dir() and not force and any(out.iterdir()):
        raise IssueError(
            f"--out {out} is not empty; use a new directory, or --force to replace the "
            "persona, image and index files this run writes (other files are left alone)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IssueError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise IssueError(f"--out {out}: not writable")
    for path in files:
        if path.exists() and path.is_dir():
            raise IssueError(f"{path} is a directory; cannot write a card file there")


def _check_first(work: Sequence[_Job], options: IssueOptions) -> None:
    """Parse the first card's persona here: a bad base fails before any work."""
    try:
        persona_module.parse(work[0].text, str(work[0].persona_file), options.out)
    except PersonaError as exc:
        raise IssueError(
            f"--base {options.base}: the derived personas are invalid: {exc}"
        ) from None


def _warm_up(base: Persona) -> None:
    """Before the workers fork: the PKI (created on first use), CA and CV keys, the font."""
    try:
        store = pki_store()
        style = NameStyle.PRODUCTION if base.certificates.style == "production" else NameStyle.TEST
        for tree in Tree:  # loading a CA key checks it (≈35 ms): once here, not in every worker
            store.authority_in_force(tree, style, jst_day_start(base.certificates.issued))
        default_cv_signer("text")
        default_cv_signer("kenmen")
    except (PkiError, OSError) as exc:
        raise IssueError(f"test PKI: {exc}") from None
    render.find_cjk_font()


def _shared_keys(unique_keys: bool) -> dict[str, bytes]:
    """The run's shared key pool (PKCS#8 DER by purpose); empty with ``unique_keys``."""
    if unique_keys:
        return {}
    return {
        purpose: generate_rsa_key().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for purpose in SHARED_KEY_PURPOSES
    }


class _SharedKeys(threading.Thread):
    """:func:`_shared_keys` in a thread of its own, started at once: OpenSSL lets go of the GIL
    while it generates, so the keys are made while the run reserves its pool keys, checks its
    output directory and warms up the PKI."""

    def __init__(self, unique_keys: bool) -> None:
        super().__init__(name="issue-shared-keys", daemon=True)
        self._unique_keys = unique_keys
        self._der: dict[str, bytes] = {}
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._der = _shared_keys(self._unique_keys)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> dict[str, bytes]:
        """The shared keys (PKCS#8 DER by purpose), once made."""
        self.join()
        if self._error is not None:
            raise self._error
        return self._der


def _pool_purposes(options: IssueOptions) -> tuple[str, ...]:
    """The keys of each card taken from the key pool."""
    return KEY_PURPOSES if options.unique_keys else ("jpki_auth", "jpki_sign")


def _pool_needs(options: IssueOptions) -> tuple[int, str]:
    """Keys the run takes from the pool, and why (for the "pool too small" message)."""
    per_card = len(_pool_purposes(options))
    what = "all six keys" if options.unique_keys else "2 JPKI keys"
    return per_card * options.count, f"{what} for each of {options.count:,} card(s)"


def _check_pool(options: IssueOptions, profile: str | None) -> None:
    """Before anything is written: the cards' JPKI keys are RSA-2048 (what a pool holds), the
    pool exists, holds only keys, and enough of them."""
    if options.key_pool is None:
        return
    try:
        algorithm = load_profile(profile or "current", options.base.parent).setting(
            "key_algorithm", "rsa-2048"
        )
    except ProfileError as exc:
        raise IssueError(str(exc)) from None
    if algorithm != "rsa-2048":
        raise IssueError(
            f"--key-pool: the cards' JPKI keys are {algorithm} (profile {profile}), made per card "
            "in about a millisecond; a key pool holds RSA-2048 keys, which these cards would not "
            "use (leave --key-pool out)"
        )
    needed, purpose = _pool_needs(options)
    holds = keypool.count_keys(options.key_pool)
    if holds < needed:
        raise IssueError(keypool.too_small_message(options.key_pool, holds, needed, purpose))


def _assign_keys(
    work: Sequence[_Job], options: IssueOptions, reservation: keypool.Reservation
) -> list[_Job]:
    """Give each card its own reserved keys."""
    purposes = _pool_purposes(options)
    keys = iter(reservation.keys)
    return [
        _Job(
            job.number,
            job.label,
            job.text,
            job.persona_file,
            job.image_file,
            tuple((purpose, *next(keys)) for purpose in purposes),
        )
        for job in work
    ]


def _write_index(
    options: IssueOptions, entries: list[dict[str, Any]], shared: Sequence[str]
) -> Path:
    """Write ``index.json`` (atomically) and return its path."""
    index = options.out / INDEX_FILE
    document = {
        "format": INDEX_FORMAT,
        "base": str(options.base),
        "seed": options.seed,
        "count": options.count,
        "pki": str(default_directory()),
        "shared_keys": list(shared),
        "cards": entries,
    }
    temporary = index.with_suffix(".tmp")
    try:
        temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
        temporary.replace(index)
    except OSError as exc:
        raise IssueError(f"{index}: cannot write the index ({exc.strerror})") from None
    return index


def issue(options: IssueOptions, *, progress: Callable[[int], None] | None = None) -> IssueResult:
    """Issue ``options.count`` cards into ``options.out``; :class:`IssueError` if it cannot.

    ``progress(done)`` is called after each card is made.
    """
    started = time.perf_counter()
    jobs = _check_numbers(options)
    base, base_tables, prefix = _load_base(options)
    work = _plan(options, base_tables, prefix)
    files = [f for job in work for f in (job.persona_file, job.image_file)]
    _check_pool(options, base_tables.get("profile"))
    reservation = None if options.key_pool is None else keypool.Reservation(options.key_pool)
    made = _Collector(progress)
    shared = _SharedKeys(options.unique_keys)  # generated while the run gets ready
    try:
        if reservation is not None:  # every key read and checked before anything is written
            reservation.take(*_pool_needs(options))
            work = _assign_keys(work, options, reservation)
        _check_out(options.out, options.force, files)
        _check_first(work, options)
        _warm_up(base)
        pool_der = shared.result()
        _make_cards(work, jobs, pool_der, options.force, made)
    finally:
        shared.join()  # no thread left behind: workers fork only from a single thread
        if reservation is not None:
            reservation.release()  # the keys no card took go back into the pool
    if made.failure is not None:
        raise IssueError(
            f"{made.failure}; {len(made.entries)} card(s) were issued into {options.out} "
            "before it stopped"
        )
    entries = sorted(made.entries, key=lambda entry: int(entry["number"]))
    index = _write_index(options, entries, list(pool_der))
    used = len(_pool_purposes(options)) * len(entries) if options.key_pool is not None else 0
    return IssueResult(
        options.count, time.perf_counter() - started, jobs, bool(pool_der), index, entries, used
    )
