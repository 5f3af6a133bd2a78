"""The mynacard command line: demo output, clear errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import DEMO_PERSONA


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "JPKIAPICCTOKEN2" in out
    assert "3B E0 00 FF 81 31 FE 45 14" in out
    assert "verifies ✓" in out
    assert "番号\u3000花子" in out
    assert "1234" not in out and "ABC123" not in out  # secrets never printed


def test_persona_check_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        DEMO_PERSONA.read_text("utf-8").replace('"314159265352"', '"314159265353"'), "utf-8"
    )
    assert main(["persona-check", str(bad)]) == 2
    assert "holder.my_number: check digit should be 2, not 3" in capsys.readouterr().err


def test_personalize_creates_and_refuses_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "card.sqlite"
    assert main(["personalize", "--persona", str(DEMO_PERSONA), "--image", str(image)]) == 0
    assert image.is_file()
    assert main(["personalize", "--persona", str(DEMO_PERSONA), "--image", str(image)]) == 0
    other = tmp_path / "other.toml"
    other.write_text(DEMO_PERSONA.read_text("utf-8").replace("2285", "1111"), "utf-8")
    assert main(["personalize", "--persona", str(other), "--image", str(image)]) == 2
    assert "different persona" in capsys.readouterr().err


def test_bad_flag_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--bogus"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--vpcd", "host:notaport"], "--vpcd 'host:notaport' is not HOST:PORT"),
        (["serve", "--vpcd", "127.0.0.1:70000"], "outside 1-65535"),
        (["serve", "--readers", "257"], "--readers must be 1-256"),
        (
            [
                "serve",
                "--persona",
                str(DEMO_PERSONA),
                "--persona",
                str(DEMO_PERSONA),
                "--image",
                "x.sqlite",
            ],
            "--image goes with exactly one --persona",
        ),
    ],
)
def test_serve_refuses_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_with_unreachable_vpcd_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["serve", "--vpcd", f"127.0.0.1:{port}"])
    assert code == 2
    assert "mynacard:" in capsys.readouterr().err
