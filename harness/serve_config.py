"""``mynacard serve --config FILE``: a bench described once in TOML, started with one command.

The file has a key for every ``serve`` flag (``[console]`` holds the console's two), and two of
its own::

    readers = 2                         # --readers (1-256)
    personas = ["alice.toml"]           # --persona, repeated (default: the demo persona)
    profile = "next-generation"         # --profile: current, next-generation or a profile file
    image = "alice.sqlite"              # --image (with exactly one persona)
    vpcd = ["kiosk1.example:35963"]     # --vpcd, repeated
    scenario = "pin-locked"             # --scenario: a kiosk scenario name or a fault file
    trace = "apdus.jsonl"               # --trace
    private_socket = true               # --private-socket
    reconnect_timeout = 30              # --reconnect-timeout, seconds (more than 0, at most 3600)
    verbose = true                      # -v
    pki = "pki"                         # the test PKI directory ($MYNACARD_PKI for this run)

    [console]                           # the live console (a web page and API on 127.0.0.1)
    enabled = true                      # --console
    port = 8080                         # --console-port (0-65535; 0: any free port)

Every key is optional. Relative paths (and a scenario that is not a kiosk scenario name) are
relative to the file's directory; ``~`` is the home directory. A flag given on the command line
wins over the file (``--persona`` and ``--vpcd`` replace the file's list; ``--private-socket``,
``-v`` and ``--console`` can only switch on), the file wins over the built-in defaults. The
file's ``pki`` replaces ``$MYNACARD_PKI`` for the run.

Errors name the file and the key (``bench.toml: readers: must be an integer 1-256, not
"four"``); an unknown key is an error with the nearest known key suggested. The file is read
and checked completely before anything starts.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import MynacardError
from harness.card_server import MAX_SERVED, parse_endpoint
from jpki.toml_fields import MAX_UNKNOWN_SHOWN, SHOWN_CHARS, FieldTable, shown

DEFAULT_RECONNECT_TIMEOUT = 30.0
"""Seconds a card waits for its reader to come back (``--reconnect-timeout``'s default)."""
MAX_RECONNECT_TIMEOUT = 3600.0
MAX_CONFIG_BYTES = 1024 * 1024
"""A serve configuration is a few hundred bytes; a bigger file is refused before parsing."""


class ServeConfigError(MynacardError, ValueError):
    """A serve configuration file that cannot be used (the message names the file and key)."""


@dataclass(frozen=True)
class ConsoleConfig:
    """``[console]``: serve the live console (``enabled``), on ``port`` (``None``: any free
    port)."""

    enabled: bool = False
    port: int | None = None


@dataclass(frozen=True)
class ServeConfig:
    """What a configuration file sets; ``None`` (or empty) where it leaves the key out.

    Paths are absolute (resolved against the file's directory); ``scenario`` is a kiosk
    scenario name as written, or the absolute path of a fault scenario file.
    """

    source: Path | None = None
    readers: int | None = None
    personas: tuple[Path, ...] = ()
    profile: str | None = None
    """A built-in generation's name, or the absolute path of a profile file."""
    image: Path | None = None
    vpcd: tuple[str, ...] = ()
    scenario: str | None = None
    trace: Path | None = None
    private_socket: bool | None = None
    reconnect_timeout: float | None = None
    verbose: bool | None = None
    pki: Path | None = None
    console: ConsoleConfig = field(default_factory=ConsoleConfig)


# --- reading the file --------------------------------------------------------------------------


def _value(value: Any) -> str:
    """A bad value as TOML writes it (``"four"``, ``true``, ``3``), cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        quoted = json.dumps(value)  # escapes control characters: a message cannot smuggle any
        if len(quoted) <= SHOWN_CHARS:
            return quoted
        return f'{quoted[:SHOWN_CHARS]}…" ({len(value)} characters)'
    return shown(value)


class _Table(FieldTable):
    """A table of the file: typed fields whose errors name the key; unknown keys suggested."""

    error = ServeConfigError

    def __init__(self, data: Any, where: str, folder: Path) -> None:
        super().__init__(data, where)
        self.folder = folder
        self.known: list[str] = []

    def take(self, key: str, default: Any = ...) -> Any:
        self.known.append(key)
        return super().take(key, default)

    def fail(self, key: str, message: str) -> ServeConfigError:
        return ServeConfigError(f"{self.name(key)}: {message}")

    def boolean(self, key: str) -> bool | None:
        value = self.take(key, None)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_value(value)}")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.take(key, None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be an integer {low}-{high}, not {_value(value)}")
        return value

    def text(self, key: str, value: Any, what: str) -> str:
        """``value`` (the field ``key``, or one of its items) as non-empty printable text."""
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be {what}, not {_value(value)}")
        for position, char in enumerate(value, 1):
            if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
                raise self.fail(key, f"U+{ord(char):04X} at character {position} in {what}")
        return value

    def name(self, key: str) -> str:
        """The dotted name of a field (``console.port``) or of an item (``personas[0]``)."""
        base, bracket, index = key.partition("[")
        return self.path(base) + bracket + index

    def file_path(self, key: str, value: Any) -> Path:
        """A path as written in the file, absolute (against the file's directory)."""
        text = self.text(key, value, "a file path")
        return self.folder / Path(text).expanduser()  # ".." is left to the OS (symlinks)

    def string_list(self, key: str, what: str) -> list[tuple[str, Any]]:
        """``(item key, item)`` for each item of a list field (empty when absent)."""
        value = self.take(key, None)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of {what}s, not {_value(value)}")
        if not value:
            raise self.fail(key, f"must list at least one {what} (or leave the key out)")
        return [(f"{key}[{index}]", item) for index, item in enumerate(value)]

    def done(self) -> None:
        """Refuse any key nobody took, suggesting the nearest known key."""
        if not self.data:
            return
        keys = sorted(self.data)
        names = []
        unlike = False  # a key like none we know: list them all
        for key in keys[:MAX_UNKNOWN_SHOWN]:
            close = difflib.get_close_matches(key, self.known, n=1)
            names.append(
                f"{self.path(key)} (did you mean {self.path(close[0])}?)"
                if close
                else self.path(key)
            )
            unlike = unlike or not close
        more = len(keys) - MAX_UNKNOWN_SHOWN
        message = f"unknown key{'s' if len(keys) > 1 else ''}: {', '.join(names)}"
        if more > 0:
            message += f" and {more} more"
        if unlike:
            message += f"; known keys: {', '.join(self.path(key) for key in self.known)}"
        raise ServeConfigError(message)


def _check(path: Path, key: str, *, exists: bool = False, new_ok: str = "") -> None:
    """``path`` names a file (``exists``) or one that can be created (``new_ok``: what)."""
    try:
        if path.is_dir():
            raise ServeConfigError(f"{key}: {path} is a directory, not a file")
        if exists and not path.is_file():
            raise ServeConfigError(f"{key}: {path} does not exist")
        if not exists and not path.parent.is_dir():
            raise ServeConfigError(
                f"{key}: directory {path.parent} does not exist (the {new_ok} is created in it)"
            )
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ServeConfigError(f"{key}: cannot use {str(path)[:80]!r} ({exc.strerror})") from None


def _pki_directory(table: _Table) -> Path | None:
    value = table.take("pki", None)
    if value is None:
        return None
    path = table.file_path("pki", value)
    try:
        if path.exists() and not path.is_dir():
            raise table.fail("pki", f"{path} is not a directory")
        if not path.exists() and not path.parent.is_dir():
            raise table.fail(
                "pki", f"directory {path.parent} does not exist (a new PKI is created in it)"
            )
    except OSError as exc:
        raise table.fail("pki", f"cannot use {str(path)[:80]!r} ({exc.strerror})") from None
    return path


def _scenario(table: _Table) -> str | None:
    value = table.take("scenario", None)
    if value is None:
        return None
    text = table.text("scenario", value, "a kiosk scenario name or a fault scenario file")
    from harness.conformance.catalogue import load_catalogue  # noqa: PLC0415 - cold start

    names = [scenario.name for scenario in load_catalogue()]
    if text in names:
        return text
    path = table.file_path("scenario", text)
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise table.fail("scenario", f"cannot use {str(path)[:80]!r} ({exc.strerror})") from None
    if not found:
        close = difflib.get_close_matches(text, names, n=1)
        kiosk = f"did you mean {close[0]}?" if close else ", ".join(names)
        raise table.fail(
            "scenario",
            f"{_value(text)} is neither a kiosk scenario ({kiosk}) nor a file ({path} does not "
            "exist)",
        )
    return str(path)


def _profile(table: _Table) -> str | None:
    value = table.take("profile", None)
    if value is None:
        return None
    text = table.text("profile", value, "a card generation (current, next-generation) or file")
    # Imported here, only for a file with this key: the card emulator (cold start, issue 18).
    from card_emulator.profiles import ProfileError, resolve_profile  # noqa: PLC0415

    try:
        return resolve_profile(text, table.folder)
    except ProfileError as exc:
        raise table.fail("profile", str(exc)) from None


def _console(table: _Table) -> ConsoleConfig:
    console = _Table(table.take("console", {}), table.path("console"), table.folder)
    enabled = console.boolean("enabled")
    port = console.integer("port", 0, 65535)
    console.done()
    return ConsoleConfig(bool(enabled), port)


def parse_config(data: Any, folder: Path, source: Path | None = None) -> ServeConfig:
    """The tables of a configuration (as ``tomllib`` gives them) → :class:`ServeConfig`.

    Relative paths are resolved against ``folder``. Errors name the key, not the file.
    """
    table = _Table(data, "", folder)
    readers = table.integer("readers", 1, MAX_SERVED)
    personas = []
    for key, item in table.string_list("personas", "persona file"):
        path = table.file_path(key, item)
        _check(path, table.name(key), exists=True)
        personas.append(path)
    image = None
    raw_image = table.take("image", None)
    if raw_image is not None:
        image = table.file_path("image", raw_image)
        _check(image, "image", new_ok="card image")
    vpcd = []
    for key, item in table.string_list("vpcd", "HOST:PORT endpoint"):
        text = table.text(key, item, "a HOST:PORT endpoint")
        try:
            parse_endpoint(text)
        except ValueError as exc:
            raise table.fail(key, str(exc)) from None
        vpcd.append(text)
    scenario = _scenario(table)
    trace = None
    raw_trace = table.take("trace", None)
    if raw_trace is not None:
        trace = table.file_path("trace", raw_trace)
        _check(trace, "trace", new_ok="trace file")
    private_socket = table.boolean("private_socket")
    reconnect = table.take("reconnect_timeout", None)
    if reconnect is not None and (
        isinstance(reconnect, bool)
        or not isinstance(reconnect, int | float)
        or not 0 < reconnect <= MAX_RECONNECT_TIMEOUT
    ):
        raise table.fail(
            "reconnect_timeout",
            f"must be a number of seconds more than 0 and at most {MAX_RECONNECT_TIMEOUT:g}, "
            f"not {_value(reconnect)}",
        )
    verbose = table.boolean("verbose")
    pki = _pki_directory(table)
    profile = _profile(table)
    console = _console(table)
    table.done()
    if image is not None and len(personas) > 1:
        raise ServeConfigError(
            f"image: goes with exactly one persona, and personas lists {len(personas)}"
        )
    return ServeConfig(
        source=source,
        readers=readers,
        personas=tuple(personas),
        profile=profile,
        image=image,
        vpcd=tuple(vpcd),
        scenario=scenario,
        trace=trace,
        private_socket=private_socket,
        reconnect_timeout=None if reconnect is None else float(reconnect),
        verbose=verbose,
        pki=pki,
        console=console,
    )


def load_config(path: str | Path) -> ServeConfig:
    """The configuration file ``path``; :class:`ServeConfigError` names the file and the key."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ServeConfigError(f"{path}: cannot read the configuration ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ServeConfigError(f"{path}: more than 1 MiB, not a serve configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ServeConfigError(f"{path}: not UTF-8 text (line {line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ServeConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ServeConfigError(f"{path}: arrays or tables nested too deeply") from None
    folder = (Path.cwd() / path).parent  # the file's directory as given, made absolute
    try:
        return parse_config(data, folder, path)
    except ServeConfigError as exc:
        raise ServeConfigError(f"{path}: {exc}") from None


# --- the command line over the file -------------------------------------------------------------


def merge(config: ServeConfig, args: argparse.Namespace) -> argparse.Namespace:
    """``serve``'s arguments: each flag given on the command line, else the file's value, else
    the default. ``--persona`` and ``--vpcd`` replace the file's lists; ``--private-socket``,
    ``-v`` and ``--console`` switch on what the file leaves off; ``--console-port`` wins over
    ``console.port``."""
    merged = argparse.Namespace(**vars(args))
    merged.persona = list(args.persona) or list(config.personas)
    merged.vpcd = list(args.vpcd) or list(config.vpcd)
    for name in ("readers", "profile", "image", "scenario", "trace"):
        if getattr(args, name) is None:
            setattr(merged, name, getattr(config, name))
    merged.private_socket = bool(args.private_socket or config.private_socket)
    merged.verbose = bool(args.verbose or config.verbose)
    merged.console = bool(getattr(args, "console", False) or config.console.enabled)
    port = getattr(args, "console_port", None)
    merged.console_port = port if port is not None else config.console.port
    if args.reconnect_timeout is None:
        merged.reconnect_timeout = config.reconnect_timeout or DEFAULT_RECONNECT_TIMEOUT
    merged.pki = config.pki
    return merged


def configure(args: argparse.Namespace) -> argparse.Namespace:
    """``serve``'s arguments with ``--config`` applied (see :func:`merge`); when the file names
    a ``pki`` directory, ``$MYNACARD_PKI`` is set to it for the rest of this process."""
    source = getattr(args, "config", None)
    config = ServeConfig() if source is None else load_config(source)
    merged = merge(config, args)
    if merged.pki is not None:
        # Imported here: jpki.pki_material brings cryptography.x509 (cold start, issue 18).
        from jpki.pki_material import ENVIRONMENT_VARIABLE  # noqa: PLC0415

        os.environ[ENVIRONMENT_VARIABLE] = str(merged.pki)
    return merged
