"""The fleet file: every key read, bad input refused with the file, key and kiosk named."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from harness.cli import main
from harness.demo_persona import demo_persona_path
from harness.fleet.config import (
    DEFAULT_RECONNECT_TIMEOUT,
    FleetConfigError,
    KioskConfig,
    load_fleet_config,
)
from harness.fleet.fleet import Fleet, KioskState, KioskStatus
from tests.conftest import DEMO_PERSONA

GOOD = """\
reconnect_timeout = 12.5
retry_max = 5
status_interval = 0
pki = "pki"

[[kiosks]]
name = "lobby-1"
host = "10.0.0.5"
port = 35963

[[kiosks]]
name = "lobby-2"
port = 35964
persona = "alice.toml"
image = "cards/lobby-2.sqlite"
scenario = "faults.toml"
"""


def _write(folder: Path, text: str) -> Path:
    (folder / "alice.toml").write_text(DEMO_PERSONA.read_text())
    (folder / "faults.toml").write_text('name = "x"\n')
    (folder / "locked.toml").write_text("[counters]\njpki_auth = 0\n")
    (folder / "broken-faults.toml").write_text("seed = true\n")
    (folder / "broken-persona.toml").write_text("[holder]\nname = 3\n")
    (folder / "cards").mkdir(exist_ok=True)
    path = folder / "fleet.toml"
    path.write_text(text)
    return path


def test_every_key(tmp_path: Path) -> None:
    config = load_fleet_config(_write(tmp_path, GOOD))
    assert config.reconnect_timeout == 12.5
    assert config.retry_max == 5.0
    assert config.status_interval == 0
    assert config.pki == tmp_path / "pki"
    first, second = config.kiosks
    assert first == KioskConfig("lobby-1", "10.0.0.5", 35963, demo_persona_path())
    assert second.persona == tmp_path / "alice.toml"
    assert second.image == tmp_path / "cards" / "lobby-2.sqlite"
    assert second.scenario == str(tmp_path / "faults.toml")
    assert first.where == "10.0.0.5:35963"


def test_defaults(tmp_path: Path) -> None:
    config = load_fleet_config(_write(tmp_path, '[[kiosks]]\nname = "k"\nport = 1\n'))
    assert config.reconnect_timeout == DEFAULT_RECONNECT_TIMEOUT
    assert config.kiosks[0].host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "kiosks: required: at least one [[kiosks]] table"),
        ("kiosks = 3", "kiosks: must be [[kiosks]] tables, not 3"),
        ("[[kiosks]]\nport = 1\n", "kiosks[0].name: required"),
        ('[[kiosks]]\nname = "k"\n', 'kiosk "k": kiosks[0].port: required'),
        ('[[kiosks]]\nname = "k"\nport = "x"\n', 'kiosk "k": kiosks[0].port: must be an integer'),
        ('[[kiosks]]\nname = "k"\nport = 70000\n', "kiosks[0].port: must be an integer 1-65535"),
        ('[[kiosks]]\nname = "k"\nport = 1\nhots = "a"\n', "kiosks[0].hots (did you mean"),
        ('[[kiosks]]\nname = "k"\nport = 1\nhost = "a b"\n', "kiosks[0].host: must be a host"),
        ('[[kiosks]]\nname = "k"\nport = 1\npersona = "no.toml"\n', "no.toml does not exist"),
        ('[[kiosks]]\nname = "k"\nport = 1\nnetns = "nons"\n', "kiosks[0].netns:"),
        ('[[kiosks]]\nname = "k"\nport = 1\nscenario = "nope"\n', "kiosks[0].scenario:"),
        ('retry_max = 0\n[[kiosks]]\nname = "k"\nport = 1\n', "retry_max: must be a number"),
        ('reconnect_timeout = true\n[[kiosks]]\nname = "k"\nport = 1\n', "reconnect_timeout:"),
        ('status_interval = -1\n[[kiosks]]\nname = "k"\nport = 1\n', "status_interval:"),
        ('statusinterval = 1\n[[kiosks]]\nname = "k"\nport = 1\n', "did you mean status_interval"),
        (
            '[[kiosks]]\nname = "k"\nport = 1\n[[kiosks]]\nname = "k"\nport = 2\n',
            'kiosk "k": kiosks[1]: name k is already used by kiosks[0] ("k")',
        ),
        (
            '[[kiosks]]\nname = "a"\nport = 1\n[[kiosks]]\nname = "b"\nport = 1\n',
            'kiosk "b": kiosks[1]: endpoint 127.0.0.1:1 is already used by kiosks[0] ("a")',
        ),
        (
            '[[kiosks]]\nname = "a"\nport = 1\nimage = "i.sqlite"\n'
            '[[kiosks]]\nname = "b"\nport = 2\nimage = "i.sqlite"\n',
            "image",
        ),
        ('[[kiosks]]\nname = "a\\u0007"\nport = 1\n', "kiosks[0].name: U+0007"),
        (
            '[[kiosks]]\nname = "k"\nport = 1\npersona = "broken-persona.toml"\n',
            'kiosk "k": kiosks[0].persona: ',
        ),
        (
            'scenario = "broken-faults.toml"\n[[kiosks]]\nname = "k"\nport = 1\n',
            'kiosk "k": kiosks[0].scenario: ',
        ),
        (
            '[[kiosks]]\nname = "k"\nport = 1\nscenario = "locked.toml"\nimage = "c.sqlite"\n',
            'kiosk "k": kiosks[0].image: a durable image keeps its own counters',
        ),
        (
            '[[kiosks]]\nname = "k"\nport = 1\nscenario = "pin-locked"\nimage = "c.sqlite"\n',
            'kiosk "k": kiosks[0].image: a durable image keeps its own state',
        ),
        ("[[kiosks]\n", "not valid TOML"),
    ],
)
def test_bad_input_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(FleetConfigError) as caught:
        load_fleet_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created


def test_cli_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, '[[kiosks]]\nname = "k2"\nport = "x"\n')
    assert main(["fleet", "--config", str(path)]) == 2
    assert 'kiosk "k2": kiosks[0].port: must be an integer 1-65535, not "x"' in (
        capsys.readouterr().err
    )


def test_cli_flag_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, '[[kiosks]]\nname = "k"\nport = 1\n')
    with pytest.raises(SystemExit):
        main(["fleet", "--config", str(path), "--status-interval", "-5"])
    assert "--status-interval must be 0-86400 seconds, not -5" in capsys.readouterr().err


def test_status_line() -> None:
    kiosk = KioskConfig("lobby-1", "::1", 35963, demo_persona_path())
    status = KioskStatus(kiosk, KioskState.UNREACHABLE, "refused", 0.0, 3, 1, retry=4.0)
    assert status.line(now=10.0) == (
        "kiosk lobby-1 ([::1]:35963): unreachable for 10 s, 3 APDUs, 1 reconnections — "
        "refused (next attempt in 4 s)"
    )


@pytest.mark.slow  # vpcd's connect timeout: 10 s
def test_unreachable_kiosk_is_named_and_retried(tmp_path: Path) -> None:
    """A kiosk whose vpcd does not listen: an error naming it, then further attempts."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = _write(tmp_path, f'retry_max = 1\n[[kiosks]]\nname = "lobby-9"\nport = {port}\n')
    config = load_fleet_config(path)
    made: list[str] = []

    def card_factory(kiosk: KioskConfig) -> object:
        made.append(kiosk.name)
        return _NoCard()

    out, err = io.StringIO(), io.StringIO()
    fleet = Fleet(config, out=out, err=err, card_factory=card_factory)  # type: ignore[arg-type]
    with fleet:
        assert fleet.first_round.wait(30)
    assert fleet.status["lobby-9"].state is KioskState.STOPPED
    assert f"kiosk lobby-9 (127.0.0.1:{port}) cannot be reached: vpcd at" in err.getvalue()
    assert "fleet ready: 0/1 kiosks connected" in out.getvalue()
    assert made and made == ["lobby-9"] * len(made)


class _NoCard:
    atr = b"\x3b\x00"

    def transmit(self, command: bytes) -> bytes:
        return b"\x6d\x00"

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def test_cards_for_persona_image_and_scenario(tmp_path: Path) -> None:
    """What each kind of kiosk gets: a fresh persona card, a durable image, a faulty card."""
    from card_emulator import Card
    from harness.faults import FaultyCard
    from harness.fleet.fleet import make_card

    persona = demo_persona_path()
    plain = make_card(KioskConfig("a", "127.0.0.1", 1, persona))
    image = make_card(KioskConfig("b", "127.0.0.1", 2, persona, tmp_path / "b.sqlite"))
    locked = make_card(KioskConfig("c", "127.0.0.1", 3, persona, scenario="pin-locked"))
    try:
        assert isinstance(plain, Card) and isinstance(image, Card)
        assert (tmp_path / "b.sqlite").is_file()
        assert isinstance(locked, FaultyCard)
    finally:
        for card in (plain, image, locked):
            card.close()
