"""``mynacard fleet --config FLEET.toml``: the kiosks one fleet process serves, in TOML.

::

    reconnect_timeout = 30      # s a card retries (backoff) after its kiosk's vpcd closed
    retry_max = 30              # s: cap of the backoff between attempts at an unreachable kiosk
    status_interval = 60        # s between status tables (0: only state changes are printed)
    persona = "alice.toml"      # default persona of every kiosk (default: the demo persona)
    scenario = "pin-locked"     # default scenario (a kiosk scenario name or a fault file)
    pki = "pki"                 # the test PKI directory ($MYNACARD_PKI for this run)

    [[kiosks]]
    name = "lobby-1"            # required, unique: status lines and errors name it
    host = "10.0.0.5"           # where the kiosk's vpcd listens (default 127.0.0.1)
    port = 35963                # required, 1-65535
    persona = "bob.toml"        # this kiosk's persona (else the file's persona)
    image = "cards/lobby-1.sqlite"  # a durable card image (created if new), one per kiosk
    scenario = "expired-auth-cert"  # this kiosk's scenario (else the file's scenario)
    netns = "/run/netns/lobby-1"    # the network namespace the port lives in (local simulation)

Errors name the file, the key and the kiosk (``fleet.toml: kiosk "lobby-4": kiosks[3].port:
must be an integer 1-65535, not "x"``); unknown keys are refused with the nearest known key.
The file is read and checked completely before anything starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apdu import MynacardError
from harness.demo_persona import demo_persona_path
from harness.serve_config import (
    MAX_CONFIG_BYTES,
    MAX_RECONNECT_TIMEOUT,
    ServeConfigError,
    _check,
    _pki_directory,
    _scenario,
    _Table,
    _value,
)

__all__ = ["FleetConfig", "FleetConfigError", "KioskConfig", "load_fleet_config"]

MAX_KIOSKS = 1024
"""Kiosks one fleet process serves at most (a thread each); scale out with more processes."""
MAX_NAME = 64
DEFAULT_RECONNECT_TIMEOUT = 30.0
DEFAULT_RETRY_MAX = 30.0
DEFAULT_STATUS_INTERVAL = 60


class FleetConfigError(MynacardError, ValueError):
    """A fleet configuration that cannot be used (the message names the file, key and kiosk)."""


@dataclass(frozen=True)
class KioskConfig:
    """One kiosk: its vpcd endpoint and the card it gets."""

    name: str
    host: str
    port: int
    persona: Path
    image: Path | None = None
    scenario: str | None = None
    netns: Path | None = None

    @property
    def where(self) -> str:
        """``host:port`` (and the namespace when there is one)."""
        text = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"{text} in {self.netns}" if self.netns is not None else text


@dataclass(frozen=True)
class FleetConfig:
    """The whole fleet file."""

    kiosks: tuple[KioskConfig, ...]
    source: Path | None = None
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    retry_max: float = DEFAULT_RETRY_MAX
    status_interval: int = DEFAULT_STATUS_INTERVAL
    pki: Path | None = None


def _seconds(table: _Table, key: str, default: float, low: float) -> float:
    """A number of seconds more than 0 (at least ``low``) and at most an hour."""
    value = table.take(key, None)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= MAX_RECONNECT_TIMEOUT
        or value <= 0
    ):
        least = f"at least {low:g}" if low > 0 else "more than 0"
        raise table.fail(
            key,
            f"must be a number of seconds {least} and at most {MAX_RECONNECT_TIMEOUT:g}, "
            f"not {_value(value)}",
        )
    return float(value)


def _persona(table: _Table, key: str, default: Path) -> Path:
    value = table.take(key, None)
    if value is None:
        return default
    path = table.file_path(key, value)
    _check(path, table.path(key), exists=True)
    return path


def _kiosk(table: _Table, index: int, defaults: tuple[Path, str | None]) -> KioskConfig:
    where = f"kiosks[{index}]"
    raw_name = table.take("name", None)
    if raw_name is None:
        raise table.fail("name", "required (every kiosk has a name, unique in the file)")
    name = table.text("name", raw_name, "a kiosk name")
    if len(name) > MAX_NAME:
        raise table.fail("name", f"at most {MAX_NAME} characters, not {len(name)}")
    try:
        raw_host = table.take("host", "127.0.0.1")
        host = table.text("host", raw_host, "a host name or IP address").strip("[]")
        if any(char.isspace() for char in host) or not host:
            raise table.fail("host", f"must be a host name or IP address, not {_value(raw_host)}")
        if table.data.get("port") is None:
            raise table.fail("port", "required (the kiosk's vpcd port, 1-65535)")
        port = table.integer("port", 1, 65535)
        assert port is not None
        persona = _persona(table, "persona", defaults[0])
        image = None
        raw_image = table.take("image", None)
        if raw_image is not None:
            image = table.file_path("image", raw_image)
            _check(image, table.path("image"), new_ok="card image")
        scenario = _scenario(table) if "scenario" in table.data else defaults[1]
        netns = None
        raw_netns = table.take("netns", None)
        if raw_netns is not None:
            netns = table.file_path("netns", raw_netns)
            if not netns.exists():
                raise table.fail("netns", f"{netns} does not exist (no such network namespace)")
        table.done()
    except ServeConfigError as exc:
        raise ServeConfigError(f"kiosk {_value(name)}: {exc}") from None
    if image is not None and scenario is not None and scenario in _catalogue_names():
        raise ServeConfigError(
            f"kiosk {_value(name)}: {where}.image: a durable image keeps its own state; a kiosk "
            "scenario changes the persona (use a fault scenario file, or no image)"
        )
    return KioskConfig(name, host, port, persona, image, scenario, netns)


def _catalogue_names() -> list[str]:
    from harness.conformance.catalogue import load_catalogue  # noqa: PLC0415 - cold start

    return [scenario.name for scenario in load_catalogue()]


def _check_cards(kiosks: list[KioskConfig]) -> None:
    """Every persona and fault scenario file read once, before anything starts: an error names
    the first kiosk using it. A durable image keeps its own counters: no scenario that sets
    them."""
    from card_emulator import persona as persona_module  # noqa: PLC0415 - cold start
    from harness.faults import Scenario  # noqa: PLC0415

    checked: dict[object, list[str]] = {}
    names = set(_catalogue_names())
    for index, kiosk in enumerate(kiosks):
        where = f"kiosk {_value(kiosk.name)}: kiosks[{index}]"
        if kiosk.persona not in checked:
            try:
                persona_module.load(kiosk.persona)
            except MynacardError as exc:
                raise ServeConfigError(f"{where}.persona: {exc}") from None
            checked[kiosk.persona] = []
        if kiosk.scenario is None or kiosk.scenario in names:
            continue
        if kiosk.scenario not in checked:
            try:
                counters = list(Scenario.load(kiosk.scenario).counters)
            except MynacardError as exc:
                raise ServeConfigError(f"{where}.scenario: {exc}") from None
            checked[kiosk.scenario] = counters
        if kiosk.image is not None and checked[kiosk.scenario]:
            raise ServeConfigError(
                f"{where}.image: a durable image keeps its own counters, and the scenario "
                f"{kiosk.scenario} sets {', '.join(checked[kiosk.scenario])}"
            )


def _unique(kiosks: list[KioskConfig]) -> None:
    """Names, endpoints and images are each used by one kiosk only."""
    seen: dict[object, tuple[int, str]] = {}
    for index, kiosk in enumerate(kiosks):
        for what, key in (
            ("name", kiosk.name),
            ("endpoint", (kiosk.host, kiosk.port, kiosk.netns)),
            ("image", kiosk.image),
        ):
            if key is None:
                continue
            first = seen.setdefault((what, key), (index, kiosk.name))
            if first[0] != index:
                shown_key = kiosk.where if what == "endpoint" else key
                raise ServeConfigError(
                    f"kiosk {_value(kiosk.name)}: kiosks[{index}]: {what} {shown_key} is already "
                    f"used by kiosks[{first[0]}] ({_value(first[1])})"
                )


def parse_fleet(data: Any, folder: Path, source: Path | None = None) -> FleetConfig:
    """The tables of a fleet file (as ``tomllib`` gives them) → :class:`FleetConfig`."""
    table = _Table(data, "", folder)
    reconnect = _seconds(table, "reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT, 0.0)
    retry_max = _seconds(table, "retry_max", DEFAULT_RETRY_MAX, 1.0)
    status = table.integer("status_interval", 0, 86400)
    persona = _persona(table, "persona", demo_persona_path())
    scenario = _scenario(table)
    pki = _pki_directory(table)
    raw = table.take("kiosks", None)
    if raw is None:
        raise table.fail("kiosks", "required: at least one [[kiosks]] table")
    if not isinstance(raw, list) or not raw:
        raise table.fail("kiosks", f"must be [[kiosks]] tables, not {_value(raw)}")
    if len(raw) > MAX_KIOSKS:
        raise table.fail(
            "kiosks", f"at most {MAX_KIOSKS} per fleet process, not {len(raw)} (run more)"
        )
    table.done()
    kiosks = [
        _kiosk(_Table(item, f"kiosks[{index}]", folder), index, (persona, scenario))
        for index, item in enumerate(raw)
    ]
    _unique(kiosks)
    _check_cards(kiosks)
    return FleetConfig(
        tuple(kiosks),
        source,
        reconnect,
        retry_max,
        DEFAULT_STATUS_INTERVAL if status is None else status,
        pki,
    )


def load_fleet_config(path: str | Path) -> FleetConfig:
    """The fleet file ``path``; :class:`FleetConfigError` names the file, key and kiosk."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise FleetConfigError(f"{path}: cannot read the fleet file ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise FleetConfigError(f"{path}: more than 1 MiB, not a fleet file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FleetConfigError(f"{path}: not UTF-8 text (line {line})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise FleetConfigError(f"{path}: arrays or tables nested too deeply") from None
    try:
        return parse_fleet(data, (Path.cwd() / path).parent, path)
    except ServeConfigError as exc:
        raise FleetConfigError(f"{path}: {exc}") from None
