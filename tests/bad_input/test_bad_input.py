"""The bad-input corpus (``cases.toml``): every case fails cleanly and changes nothing.

Each case runs ``mynacard`` as a subprocess (all cases of the module at once, a few in
parallel) and must exit with the expected code, print a message matching its regex, print no
traceback, and leave its directory and the test PKI as they were. Persona cases also check that
:func:`card_emulator.persona.load` raises :class:`PersonaError` with the same message.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from card_emulator import Card, PersonaError, render
from card_emulator import persona as persona_module
from harness.default_pki import pki_store
from harness.issuance import keypool
from tests.conftest import DEMO_PERSONA

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
CASES: list[dict[str, Any]] = tomllib.loads((HERE / "cases.toml").read_text("utf-8"))["case"]
KNOWN_KEYS = {"id", "argv", "message", "exit", "timeout", "files", "demo_edits", "setup", "persona"}
DEFAULT_TIMEOUT = 60.0

Setup = Callable[[Path], Mapping[str, str] | None]
SETUPS: dict[str, Setup] = {}
"""Named input makers: each gets the case's directory and may return extra placeholders."""


def setup(name: str) -> Callable[[Setup], Setup]:
    """Register a setup function under ``name`` (the ``setup`` key of a case)."""

    def register(function: Setup) -> Setup:
        SETUPS[name] = function
        return function

    return register


def demo_with(*edits: tuple[str, str]) -> str:
    """The demo persona with regex edits (first match each, replacement taken literally)."""
    text = DEMO_PERSONA.read_text("utf-8")
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement.replace("\\", "\\\\"), text, count=1, flags=re.M)
        assert count == 1, f"{pattern!r} matches nothing in the demo persona"
    return text


# --- setups ---------------------------------------------------------------------------------


@setup("deep_arrays")
def _deep_arrays(tmp: Path) -> None:
    depth = 10_000
    (tmp / "deep_arrays.toml").write_text(f'label = "deep"\nx = {"[" * depth}{"]" * depth}\n')


@setup("deep_tables")
def _deep_tables(tmp: Path) -> None:
    depth = 10_000
    (tmp / "deep_tables.toml").write_text(f"x = {'{a = ' * depth}1{'}' * depth}\n")


@setup("persona_directory")
def _persona_directory(tmp: Path) -> None:
    (tmp / "folder.toml").mkdir()


@setup("latin1_persona")
def _latin1_persona(tmp: Path) -> None:
    (tmp / "latin1.toml").write_bytes(b'# latin-1\nlabel = "x"\n\n[holder]\nname = "Jos\xe9"\n')


@setup("huge_name")
def _huge_name(tmp: Path) -> None:
    name = "x" * (1024 * 1024)
    (tmp / "huge_name.toml").write_text(demo_with(("^name = .*$", f'name = "{name}"')), "utf-8")


def _with_photo(tmp: Path, photo: str) -> None:
    images = f'[images]\nphoto = "{photo}"\n\n[certificates]'
    (tmp / "persona.toml").write_text(demo_with((r"^\[certificates\]", images)), "utf-8")


@setup("image_path_too_long")
def _image_path_too_long(tmp: Path) -> None:
    _with_photo(tmp, "p" * 5000)


@setup("image_name_too_long_for_the_os")
def _image_name_too_long_for_the_os(tmp: Path) -> None:
    _with_photo(tmp, "p" * 300 + ".jp2")  # more than NAME_MAX (255) in one component


@setup("text_file_as_name_image")
def _text_file_as_name_image(tmp: Path) -> None:
    (tmp / "name.png").write_text("not a picture\n")
    images = '[images]\nname = "name.png"\n\n[certificates]'
    (tmp / "persona.toml").write_text(demo_with((r"^\[certificates\]", images)), "utf-8")


@setup("random_bytes")
def _random_bytes(tmp: Path) -> None:
    data = bytearray(random.Random(7).randbytes(4096))
    data[0] = 0xFF  # never valid UTF-8, whatever the seed gives
    (tmp / "random.bin").write_bytes(bytes(data))


@setup("png_file")
def _png_file(tmp: Path) -> None:
    Image.new("1", (16, 16)).save(tmp / "picture.png")


@setup("zeros")
def _zeros(tmp: Path) -> None:
    (tmp / "zeros.bin").write_bytes(bytes(2 * 1024 * 1024))


@setup("deep_json")
def _deep_json(tmp: Path) -> None:
    (tmp / "deep.jsonl").write_text("[" * 100_000 + "\n")


@setup("long_file_name")
def _long_file_name(tmp: Path) -> dict[str, str]:
    return {"long": str(tmp / ("t" * 300))}  # more than NAME_MAX (255)


# --- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one case's run did."""

    code: int | None
    output: str
    before: dict[str, tuple[int, int]]
    after: dict[str, tuple[int, int]]
    timed_out: bool = False


def _edited_image(tmp: Path, edit: str) -> None:
    image = tmp / "card.sqlite"
    Card.from_persona(DEMO_PERSONA, image=image).close()
    db = sqlite3.connect(image)
    db.execute(edit)
    db.commit()
    db.close()


@setup("image_rules_edited")
def _image_rules_edited(tmp: Path) -> None:
    _edited_image(tmp, "UPDATE applications SET rules = '{}' WHERE name = 'jpki'")


@setup("image_counter_edited")
def _image_counter_edited(tmp: Path) -> None:
    _edited_image(tmp, "UPDATE credentials SET remaining = 2 WHERE app = 'jpki' AND fid = 24")


@setup("image_format_newer")
def _image_format_newer(tmp: Path) -> None:
    _edited_image(tmp, "UPDATE meta SET value = 'mynacard-image/3' WHERE key = 'format'")


@setup("image_format_older")
def _image_format_older(tmp: Path) -> None:
    _edited_image(tmp, "UPDATE meta SET value = 'mynacard-image/0' WHERE key = 'format'")


@setup("image_format_unknown")
def _image_format_unknown(tmp: Path) -> None:
    _edited_image(tmp, "DELETE FROM meta WHERE key = 'format'")


@setup("image_not_sqlite")
def _image_not_sqlite(tmp: Path) -> None:
    (tmp / "card.sqlite").write_bytes(bytes(range(256)) * 64)


@setup("binary_scenario")
def _binary_scenario(tmp: Path) -> None:
    (tmp / "faults.toml").write_bytes(b"\xff\xfe\x00" + bytes(range(256)))


@setup("open_key_pool")
def _open_key_pool(tmp: Path) -> None:
    (tmp / "open").mkdir()
    (tmp / "open").chmod(0o755)


@setup("key_pool_with_notes")
def _key_pool_with_notes(tmp: Path) -> None:
    (tmp / "pool").mkdir(mode=0o700)
    (tmp / "pool" / "notes.txt").write_text("not a key\n")


@setup("key_pool_of_one")
def _key_pool_of_one(tmp: Path) -> None:
    keypool.generate(tmp / "pool", 1, jobs=1)


def mynacard() -> list[str]:
    """The console script next to this Python, else ``python -m harness.cli``."""
    script = Path(sys.executable).with_name("mynacard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``roots``: (size, mtime in ns) by path."""
    found: dict[str, tuple[int, int]] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (0 if path.is_dir() else info.st_size, info.st_mtime_ns)
    return found


def pki_directory() -> Path:
    return Path(os.environ["MYNACARD_PKI"])


def prepare(case: Mapping[str, Any], tmp: Path) -> dict[str, str]:
    """Make the case's inputs in ``tmp``; the placeholders for its argv."""
    for name in case.get("files", []):
        shutil.copy(FILES / name, tmp / name)
    if "demo_edits" in case:
        edits = [(str(pattern), str(replacement)) for pattern, replacement in case["demo_edits"]]
        (tmp / "persona.toml").write_text(demo_with(*edits), "utf-8")
    places = {"tmp": str(tmp), "demo": str(DEMO_PERSONA)}
    if "setup" in case:
        places.update(SETUPS[case["setup"]](tmp) or {})
    return places


def fill(text: str, places: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: places[m.group(1)], text)


def run(case: Mapping[str, Any], tmp: Path, places: Mapping[str, str]) -> Outcome:
    """Run the case's command in its own process group; kill the group on timeout."""
    argv = [*mynacard(), *(fill(arg, places) for arg in case["argv"])]
    before = snapshot(tmp, pki_directory())
    process = subprocess.Popen(
        argv,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=float(case.get("timeout", DEFAULT_TIMEOUT)))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group of the process we started
        out, err = process.communicate()
        timed_out = True
    return Outcome(process.returncode, err + out, before, snapshot(tmp, pki_directory()), timed_out)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcome]]:
    """Every case run once: inputs made in turn, the commands a few at a time. The test PKI is
    made first: a command that needs it would otherwise create it while another case's command
    runs, and that case would see files change under it (the suite's order, or pytest-xdist
    running this module first, decides whether an earlier test made it)."""
    pki_store()
    prepared = []
    for case in CASES:
        tmp = tmp_path_factory.mktemp(case["id"])
        prepared.append((case, tmp, prepare(case, tmp)))
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda item: run(*item), prepared))
    return {
        case["id"]: (tmp, outcome)
        for (case, tmp, _), outcome in zip(prepared, results, strict=True)
    }


# --- tests ----------------------------------------------------------------------------------


def test_manifest_is_well_formed() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in CASES:
        assert set(case) <= KNOWN_KEYS, f"{case['id']}: unknown keys {set(case) - KNOWN_KEYS}"
        assert {"id", "argv", "message"} <= set(case), case["id"]
        assert "setup" not in case or case["setup"] in SETUPS, case["id"]
        assert all((FILES / name).is_file() for name in case.get("files", [])), case["id"]
        re.compile(case["message"])


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_fails_cleanly(
    case: dict[str, Any], outcomes: dict[str, tuple[Path, Outcome]]
) -> None:
    tmp, outcome = outcomes[case["id"]]
    assert not outcome.timed_out, f"still running after {case.get('timeout', DEFAULT_TIMEOUT)} s"
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.code == case.get("exit", 2), outcome.output
    assert re.search(case["message"], outcome.output), outcome.output
    assert outcome.after == outcome.before, "the command changed files"
    if "persona" in case:
        places = {"tmp": str(tmp), "demo": str(DEMO_PERSONA)}
        before = snapshot(tmp, pki_directory())
        with pytest.raises(PersonaError) as info:
            persona_module.load(fill(case["persona"], places))
        assert re.search(case["message"], str(info.value)), str(info.value)
        assert snapshot(tmp, pki_directory()) == before


def test_the_same_failures_through_parse() -> None:
    """``persona.parse`` (bytes, no file) refuses deep nesting and megabyte fields too."""
    deep = b"x = " + b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(PersonaError, match=r"^deep: x: arrays or tables nested too deeply"):
        persona_module.parse(deep, "deep")
    huge = demo_with(("^address = .*$", f'address = "{"住" * 500_000}"')).encode()
    with pytest.raises(PersonaError, match=r"holder\.address: 500000 characters, at most 200"):
        persona_module.parse(huge, "huge")


def test_every_credential_an_override_may_name_is_on_the_card(card: Card) -> None:
    on_card = {
        app.name: frozenset(app.credentials) for app in card.content.applications if app.credentials
    }
    assert on_card == persona_module.CARD_CREDENTIALS


def _font_or_skip() -> None:
    try:
        render.find_cjk_font()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_texts_drawn_without_a_check_always_fit() -> None:
    """``DRAWN_WITHOUT_CHECK`` holds for the widest glyph of the font (U+2E3B THREE-EM DASH)."""
    _font_or_skip()
    widest = "\u2e3b"
    render.render_name_png(widest * persona_module.DRAWN_WITHOUT_CHECK["name"])
    render.render_address_png(widest * persona_module.DRAWN_WITHOUT_CHECK["address"])


def test_limits_admit_the_longest_real_texts(tmp_path: Path) -> None:
    """A name and an address of the maximum length (full-width) load and are drawn."""
    _font_or_skip()
    name = "長" * persona_module.MAX_NAME_CHARS
    address = "東京都千代田区" * (persona_module.MAX_ADDRESS_CHARS // 7) + "一二三四"
    assert len(address) == persona_module.MAX_ADDRESS_CHARS
    text = demo_with(
        ("^name = .*$", f'name = "{name}"'), ("^address = .*$", f'address = "{address}"')
    )
    persona = persona_module.parse(text.encode(), "longest.toml")
    assert (persona.holder.name, persona.holder.address) == (name, address)
