"""``mynacard issue``: bulk personalization — N distinct personas, one durable card image each.

    mynacard issue --count 1000 --out cards/ [--base PERSONA.toml] [--seed 1] [--jobs J]
                   [--prefix LABEL] [--unique-keys] [--force]

Each card's persona is derived from ``--base`` (default ``vectors/personas/demo.toml``),
deterministically from ``--seed``: a distinct valid 個人番号 (check digit per the statutory mod-11
rule), a distinct 氏名 (family × given name, drawn without repetition while combinations
last: :data:`NAME_CAPACITY`), sex to match the given name, an adult birth date, the card's expiry
on the 10th birthday after issuance, a distinct 製造番号 and 住民票コード, a セキュリティコード,
and the label ``<prefix>-<n>``. Everything else (address, municipality, PINs, dates of issue,
certificate settings, counters, policy, access overrides, a photo file) is the base's. Image
files the base names for the name, address, 個人番号 or セキュリティコード are dropped (they would
show the base's values); those images are rendered from each card's own data.

``DIR`` receives ``<label>.toml`` (the persona; the card image records its digest, so
``Card.from_persona(toml, image=sqlite)`` reopens the card), ``<label>.sqlite`` (the card image) and
``index.json`` (one entry per card: label, 個人番号, 氏名, persona and image file, certificate
serials). Certificates are issued by the test PKI (``$MYNACARD_PKI``) and recorded there under the
label, so ``mynacard pki revoke --persona LABEL`` works on issued cards.

Speed: cards are made by ``--jobs`` worker processes (default: one per CPU). Key generation
dominates (≈40 ms per RSA-2048 key; a card has six), so by default only the two JPKI keys
(利用者証明用 and 署名用, certified and unique to each card) are generated per card; the four other
card keys (券面事項入力補助AP key and secure-messaging key, 券面AP key, common AP key) come from a
pool generated once per run and shared by every card of that run. They prove the card and its
券面 data genuine rather than identify the holder, and the signed card data that carries them
stays valid, but the cards of one run hold the same four keys (and, e.g., answer the common AP's
INTERNAL AUTHENTICATE alike): a test that tells cards apart by those keys needs
``--unique-keys``, which generates all six per card
(about 2.5 times slower: 7 instead of 17 cards/s on 2 cores).

Exit status: 0 done, 2 bad arguments or a card that could not be made (the message says why).
Wire into ``mynacard`` with ``issue_cli.register(sub)``; ``python -m harness.issue_cli issue …``
runs it stand-alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import multiprocessing
import os
import random
import re
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apdu.errors import MynacardError
from card_emulator import ImageError, PersonaError, mynumber, render
from card_emulator import persona as persona_module
from card_emulator.content import CardContent
from card_emulator.image import SqliteImage
from card_emulator.persona import Persona
from card_emulator.personalize import KEY_PURPOSES, personalize
from harness.default_pki import default_cv_signer, pki_store
from harness.personas import to_toml
from jpki.clock import jst_day_start
from jpki.keys import generate_rsa_key
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiError, default_directory

__all__ = [
    "NAME_CAPACITY",
    "SHARED_KEY_PURPOSES",
    "IssueError",
    "IssueOptions",
    "IssueResult",
    "derive_personas",
    "issue",
    "main",
    "register",
]

DEFAULT_BASE = Path(__file__).resolve().parent.parent / "vectors" / "personas" / "demo.toml"
INDEX_FILE = "index.json"
INDEX_FORMAT = "mynacard-issue/1"
MAX_COUNT = 1_000_000
LABEL_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

SHARED_KEY_PURPOSES: tuple[str, ...] = tuple(p for p in KEY_PURPOSES if not p.startswith("jpki_"))
"""The card keys a run shares between its cards unless ``--unique-keys`` (never the JPKI keys)."""

# 氏名: common family names and given names (by the sex they are usually given to).
_FAMILY = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 "
    "斎藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 "
    "村上 遠藤 青木 坂本 斉藤 福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田 松田 竹内 中川 "
    "小野 田村 和田 石田 森田 上田"
)
_MALE = (
    "太郎 一郎 健太 翔太 大輔 拓也 直樹 浩二 誠 学 悠斗 陽翔 蓮 大翔 湊 悠真 颯太 健一 和也 "
    "達也 智也 雄一 隆 修 博 哲也 亮 剛 聡 秀樹 勇気 海斗 大和 陸 樹 蒼 律 翼 航 慎一"
)
_FEMALE = (
    "花子 陽子 恵子 直子 美穂 由美 裕子 明美 智子 幸子 結衣 陽菜 美咲 さくら 葵 凛 芽依 結菜 "
    "真由美 久美子 愛 彩 舞 香織 麻衣 千尋 美香 優子 奈々 沙織 杏 紬 澪 楓 莉子 美月 遥 七海 "
    "紗希 琴音"
)
FAMILY_NAMES = tuple(_FAMILY.split())
MALE_NAMES = tuple(_MALE.split())
FEMALE_NAMES = tuple(_FEMALE.split())
NAME_CAPACITY = len(FAMILY_NAMES) * (len(MALE_NAMES) + len(FEMALE_NAMES))
"""How many distinct 氏名 the lists give; beyond that names repeat (other fields never do)."""

ADULT_AGES = (20, 80)
"""Holders are this old (years, inclusive range) on the card's issue date."""

_DERIVED_IMAGE_KINDS = ("name", "address", "my_number", "security_code")


class IssueError(MynacardError, ValueError):
    """Bad arguments, a bad base persona or output directory, or a card that could not be made."""


# --- personas ------------------------------------------------------------------------------


def _birthday_in(year: int, birth: dt.date) -> dt.date:
    if birth.month == 2 and birth.day == 29 and not _is_leap(year):
        return dt.date(year, 2, 28)  # the day age reckoning completes the year in common years
    return birth.replace(year=year)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def card_expiry(issued: dt.date, birth: dt.date) -> dt.date:
    """An adult's card expires on the 10th birthday after its issue date.

    (発行日後10回目の誕生日; a 29 February birthday falls on 28 February in common years.)
    """
    first = issued.year if _birthday_in(issued.year, birth) > issued else issued.year + 1
    return _birthday_in(first + 9, birth)


class _Unique:
    """Draws values from ``make`` until one not drawn before comes up."""

    def __init__(self, make: Callable[[], str], taken: Sequence[str] = ()) -> None:
        self._make = make
        self._seen = set(taken)

    def __call__(self) -> str:
        while True:
            value = self._make()
            if value not in self._seen:
                self._seen.add(value)
                return value


def _digits(rng: random.Random, n: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _my_number(rng: random.Random) -> str:
    first_eleven = _digits(rng, 11)
    return first_eleven + str(mynumber.check_digit(first_eleven))


def derive_personas(
    base: Mapping[str, Any], count: int, *, seed: int, prefix: str, base_dir: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` (label, persona tables) pairs derived from the ``base`` tables (see module doc).

    Deterministic for a given ``base``, ``seed`` and ``prefix``; image paths the base gives
    relative to its directory ``base_dir`` become absolute.
    """
    rng = random.Random(seed)  # test data, reproducible on purpose
    holder = base.get("holder", {})
    card = base.get("card", {})
    issued = card.get("issued")
    if not isinstance(issued, dt.date):
        raise IssueError("the base persona has no card.issued date")
    my_numbers = _Unique(lambda: _my_number(rng), [str(holder.get("my_number", ""))])
    serials = _Unique(lambda: _digits(rng, 15, "4"), [str(card.get("serial", ""))])
    resident_codes = _Unique(
        lambda: _digits(rng, 11, "0123456789"), [str(holder.get("resident_code", ""))]
    )
    given_names = {1: MALE_NAMES, 2: FEMALE_NAMES}
    names: dict[int, set[tuple[str, str]]] = {1: set(), 2: set()}
    youngest = _birthday_in(issued.year - ADULT_AGES[0], issued)
    oldest = _birthday_in(issued.year - ADULT_AGES[1] - 1, issued) + dt.timedelta(days=1)
    span = (youngest - oldest).days
    images = {
        kind: str((base_dir / str(path)).resolve())
        for kind, path in base.get("images", {}).items()
        if kind not in _DERIVED_IMAGE_KINDS
    }
    width = max(4, len(str(count)))
    for number in range(1, count + 1):
        sex = rng.choice((1, 2))
        used = names[sex]
        capacity = len(FAMILY_NAMES) * len(given_names[sex])
        while True:
            name = (rng.choice(FAMILY_NAMES), rng.choice(given_names[sex]))
            if name not in used or len(used) >= capacity:
                break
        used.add(name)
        birth = oldest + dt.timedelta(days=rng.randrange(span + 1))
        label = f"{prefix}-{number:0{width}d}"
        tables = {
            **{k: v for k, v in base.items() if k != "images"},
            "label": label,
            "holder": {
                **holder,
                "name": "\u3000".join(name),
                "birth_date": birth,
                "sex": sex,
                "my_number": my_numbers(),
                "resident_code": resident_codes(),
            },
            "card": {
                **card,
                "expiry": card_expiry(issued, birth),
                "security_code": f"{rng.randrange(10_000):04d}",
                "serial": serials(),
            },
        }
        if images:
            tables["images"] = images
        yield label, tables


def persona_text(tables: Mapping[str, Any], *, base: Path, seed: int) -> bytes:
    """The persona file of one issued card (its digest is recorded in the card image)."""
    header = f"# Issued by `mynacard issue` from {base} (seed {seed}).\n"
    try:
        return (header + to_toml(tables)).encode("utf-8")
    except TypeError as exc:
        raise IssueError(f"{base}: cannot derive personas from this persona ({exc})") from None


# --- the workers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    number: int
    label: str
    text: bytes
    persona_file: Path
    image_file: Path


@dataclass
class _WorkerState:
    pool: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    replace: bool = False
    addresses: dict[str, bytes] = field(default_factory=dict)
    """Rendered address images by address text: cards of a run share the base's address."""

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
        shared = self.pool.get(purpose)
        return shared if shared is not None else generate_rsa_key()


_state = _WorkerState()


def _init_worker(pool_der: Mapping[str, bytes], replace: bool) -> None:
    """Set up a worker process: the run's shared key pool (PKCS#8 DER) and whether to replace."""
    global _state  # noqa: PLW0603 - one state per worker process
    pool: dict[str, rsa.RSAPrivateKey] = {}
    for purpose, der in pool_der.items():
        # Made by this run a moment ago: skip OpenSSL's slow consistency check (≈35 ms a key).
        key = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=True
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        pool[purpose] = key
    _state = _WorkerState(pool, replace)


def _remove_image(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".creating", ".creating-wal", ".creating-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _make_card(job: _Job) -> dict[str, Any]:
    """Issue one card (in a worker): persona file, certificates, card image; its index entry."""
    persona = persona_module.parse(job.text, str(job.persona_file), job.persona_file.parent)
    content = personalize(
        persona, store=pki_store(), keys=_state.key, images=_state.images(persona)
    )
    if _state.replace:
        _remove_image(job.image_file)
    job.persona_file.write_bytes(job.text)
    SqliteImage.create(job.image_file, content).close()
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


def _run_job(job: _Job) -> tuple[bool, Any]:
    """``(True, entry)`` or ``(False, message)``: errors cross the process boundary as text."""
    try:
        return True, _make_card(job)
    except (PersonaError, PkiError, ImageError, OSError, ValueError) as exc:
        return False, f"card {job.label}: {exc}"


# --- the run -------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class IssueResult:
    """What a run made and how long it took."""

    count: int
    seconds: float
    jobs: int
    shared_keys: bool
    index: Path
    entries: list[dict[str, Any]]

    @property
    def cards_per_second(self) -> float:
        """Throughput of the whole run (setup, key pool and worker start included)."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")


class Progress:
    """A one-line progress bar on a terminal; silent on anything else."""

    def __init__(self, total: int, stream: IO[str], *, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()
        self.start = time.perf_counter()
        self._drawn = 0.0

    def update(self, done: int) -> None:
        """Redraw (at most ten times a second, and always at the end)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self._drawn < 0.1:
            return
        self._drawn = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        filled = self.width * done // self.total
        bar = "█" * filled + "░" * (self.width - filled)
        eta = f"ETA {(self.total - done) / rate:4.0f} s" if rate > 0 and done else "ETA    ? s"
        self.stream.write(f"\r  issuing [{bar}] {done}/{self.total}  {rate:6.1f} cards/s  {eta} ")
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


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


def _mp_context() -> multiprocessing.context.BaseContext:
    """Fork (workers inherit the warmed-up PKI) unless threads make forking unsafe."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def issue(options: IssueOptions, *, progress: Callable[[int], None] | None = None) -> IssueResult:
    """Issue ``options.count`` cards into ``options.out``; :class:`IssueError` if it cannot."""
    started = time.perf_counter()
    if not 1 <= options.count <= MAX_COUNT:
        raise IssueError(f"--count must be 1-{MAX_COUNT:,}, not {options.count}")
    cpus = os.cpu_count() or 1
    if options.jobs < 0:
        raise IssueError(f"--jobs must be 1 or more (0: one per CPU), not {options.jobs}")
    jobs = min(options.jobs or cpus, options.count)
    try:
        base = persona_module.load(options.base)
        base_tables = tomllib.loads(options.base.read_text(encoding="utf-8"))
    except PersonaError as exc:
        raise IssueError(f"--base: {exc}") from None
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

    out = options.out
    derived = derive_personas(
        base_tables, options.count, seed=options.seed, prefix=prefix, base_dir=options.base.parent
    )
    work = [
        _Job(
            number,
            label,
            persona_text(tables, base=options.base, seed=options.seed),
            out / f"{label}.toml",
            out / f"{label}.sqlite",
        )
        for number, (label, tables) in enumerate(derived, start=1)
    ]
    _check_out(out, options.force, [f for j in work for f in (j.persona_file, j.image_file)])
    try:  # the first card's persona, checked here: a bad base fails before any work
        persona_module.parse(work[0].text, str(work[0].persona_file), out)
    except PersonaError as exc:
        raise IssueError(
            f"--base {options.base}: the derived personas are invalid: {exc}"
        ) from None

    # Warm up before the workers fork: the PKI (created on first use), CA and CV keys, the font.
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
    pool = {} if options.unique_keys else {p: generate_rsa_key() for p in SHARED_KEY_PURPOSES}
    pool_der = {
        purpose: key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for purpose, key in pool.items()
    }

    entries: list[dict[str, Any]] = []
    failures: list[str] = []

    def collect(results: Iterator[tuple[bool, Any]]) -> None:
        for ok, value in results:
            if not ok:
                failures.append(str(value))
                return
            entries.append(value)
            if progress is not None:
                progress(len(entries))

    if jobs == 1:
        _init_worker(pool_der, options.force)
        try:
            collect(_run_job(job) for job in work)
        finally:
            _init_worker({}, replace=False)
    else:
        gc.freeze()  # forked workers: no collector passes over (or copies of) inherited objects
        workers = ProcessPoolExecutor(
            jobs,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(pool_der, options.force),
        )
        try:
            futures = [workers.submit(_run_job, job) for job in work]
            collect(future.result() for future in as_completed(futures))
        except BrokenProcessPool:
            failures.append("a worker process died (out of memory? killed?)")
        finally:
            workers.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()
    if failures:
        raise IssueError(
            f"{failures[0]}; {len(entries)} card(s) were issued into {out} before it stopped"
        )

    entries.sort(key=lambda entry: int(entry["number"]))
    index = out / INDEX_FILE
    document = {
        "format": INDEX_FORMAT,
        "base": str(options.base),
        "seed": options.seed,
        "count": options.count,
        "pki": str(default_directory()),
        "shared_keys": list(pool) if pool else [],
        "cards": entries,
    }
    temporary = index.with_suffix(".tmp")
    try:
        temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
        temporary.replace(index)
    except OSError as exc:
        raise IssueError(f"{index}: cannot write the index ({exc.strerror})") from None
    return IssueResult(
        options.count, time.perf_counter() - started, jobs, bool(pool), index, entries
    )


# --- command line --------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``issue`` sub-command to ``mynacard``'s sub-parsers."""
    parser = subparsers.add_parser(
        "issue",
        help="bulk personalization: N distinct personas, one durable card image each",
        description=(
            "Derive N distinct personas from a base persona (distinct valid 個人番号, names, "
            "serials, 住民票コード, birth dates; reproducible with --seed) and personalize each "
            "into a durable card image in DIR: <label>.toml, <label>.sqlite and index.json. "
            "Cards are made by --jobs worker processes. The two JPKI keys are generated for "
            "every card; the four other card keys (券面事項入力補助AP, its secure-messaging "
            "key, 券面AP, common AP) come from a pool made once per run and shared by its cards, "
            "unless --unique-keys."
        ),
    )
    parser.add_argument("--count", type=int, required=True, metavar="N", help="cards to issue")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output directory (new or empty)"
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=DEFAULT_BASE,
        metavar="PERSONA.toml",
        help="persona the cards are derived from (default: the demo persona)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the derived data (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=0, metavar="J", help="worker processes (default: one per CPU)"
    )
    parser.add_argument(
        "--prefix", help="label prefix: labels are PREFIX-0001, … (default: the base's label)"
    )
    parser.add_argument(
        "--unique-keys",
        action="store_true",
        help="generate all six card keys per card (default: only the two JPKI keys; the other "
        "four are shared by the cards of this run)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow a non-empty DIR: replace the files this run writes, leave others alone",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``mynacard issue``; print a summary line; return the exit status."""
    options = IssueOptions(
        count=args.count,
        out=args.out,
        base=args.base,
        seed=args.seed,
        jobs=args.jobs,
        prefix=args.prefix,
        unique_keys=args.unique_keys,
        force=args.force,
    )
    bar = Progress(max(1, options.count), sys.stderr)
    try:
        result = issue(options, progress=bar.update)
    except IssueError as exc:
        bar.close()
        print(f"mynacard issue: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("mynacard issue: interrupted; the directory holds a partial run", file=sys.stderr)
        return 130
    bar.close()
    keys = "non-JPKI keys shared by the run" if result.shared_keys else "all keys unique"
    print(
        f"issued {result.count} card(s) into {options.out} in {result.seconds:.1f} s "
        f"({result.cards_per_second:.1f} cards/s, {result.jobs} job(s), {keys}); "
        f"index: {result.index}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.issue_cli issue …``: the ``issue`` command without the rest."""
    parser = argparse.ArgumentParser(prog="mynacard", description="Bulk card issuance.")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
