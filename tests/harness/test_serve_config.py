"""``mynacard serve --config FILE``: every key, the command line over the file, clear errors."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.serve_config import (
    DEFAULT_RECONNECT_TIMEOUT,
    ConsoleConfig,
    ServeConfig,
    ServeConfigError,
    configure,
    load_config,
    merge,
)
from harness.traces.trace_file import read_trace
from tests.conftest import DEMO_PERSONA, ROOT
from tests.integration.test_serve import opensc_list, pcsc_tool, start_serve

EXAMPLE = ROOT / "examples" / "serve" / "bench.toml"

EVERY_KEY = """\
readers = 3
personas = ["personas/alice.toml"]
image = "images/alice.sqlite"
vpcd = ["kiosk1.example:35963", "35964"]
scenario = "faults.toml"
trace = "traces/apdus.jsonl"
private_socket = true
reconnect_timeout = 12.5
verbose = true
pki = "pki"

[console]
enabled = false
port = 8080
"""


def bench(folder: Path, text: str = EVERY_KEY, name: str = "bench.toml") -> Path:
    """A configuration ``name`` in ``folder``, with the files :data:`EVERY_KEY` names."""
    for sub in ("personas", "images", "traces"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_PERSONA, folder / "personas" / "alice.toml")
    (folder / "faults.toml").write_text(
        '[[fault]]\nkind = "status"\nmatch = "00 20"\nsw = "6581"\n'
    )
    path = folder / name
    path.write_text(text, "utf-8")
    return path


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


# --- every key ----------------------------------------------------------------------------


def test_every_key_is_read_into_the_dataclass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bench"
    path = bench(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths follow the file, not the working directory
    assert load_config(path) == ServeConfig(
        source=path,
        readers=3,
        personas=(folder / "personas" / "alice.toml",),
        image=folder / "images" / "alice.sqlite",
        vpcd=("kiosk1.example:35963", "35964"),
        scenario=str(folder / "faults.toml"),
        trace=folder / "traces" / "apdus.jsonl",
        private_socket=True,
        reconnect_timeout=12.5,
        verbose=True,
        pki=folder / "pki",
        console=ConsoleConfig(enabled=False, port=8080),
    )


def test_an_empty_file_sets_nothing(tmp_path: Path) -> None:
    path = bench(tmp_path, "")
    assert load_config(path) == ServeConfig(source=path)


def test_relative_paths_follow_the_file_given_by_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lab" / "configs"
    folder.mkdir(parents=True)
    bench(folder, 'personas = ["../alice.toml"]\ntrace = "t.jsonl"\n')
    shutil.copy(DEMO_PERSONA, tmp_path / "lab" / "alice.toml")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("lab/configs/bench.toml"))
    assert config.personas == (tmp_path / "lab" / "configs" / ".." / "alice.toml",)
    assert config.personas[0].samefile(tmp_path / "lab" / "alice.toml")
    assert config.trace == folder / "t.jsonl"


def test_dot_dot_goes_up_from_where_the_file_really_is(tmp_path: Path) -> None:
    """Reached through a symlinked directory, ``../x`` is beside the real directory, as the
    operating system sees it (the path is not shortened as text)."""
    real = tmp_path / "real" / "configs"
    real.mkdir(parents=True)
    shutil.copy(DEMO_PERSONA, tmp_path / "real" / "alice.toml")
    bench(real, 'personas = ["../alice.toml"]\n')
    (tmp_path / "link").symlink_to(real)
    config = load_config(tmp_path / "link" / "bench.toml")
    assert config.personas[0].samefile(tmp_path / "real" / "alice.toml")


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "traces").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    path = bench(tmp_path / "b", f'personas = ["{DEMO_PERSONA}"]\ntrace = "~/traces/t.jsonl"\n')
    config = load_config(path)
    assert config.personas == (DEMO_PERSONA,)
    assert config.trace == home / "traces" / "t.jsonl"


def test_a_kiosk_scenario_name_stays_a_name(tmp_path: Path) -> None:
    assert load_config(bench(tmp_path, 'scenario = "pin-locked"\n')).scenario == "pin-locked"


def test_every_serve_flag_has_a_key() -> None:
    """A flag added to ``serve`` without a configuration key fails here."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest for a in sub.choices["serve"]._actions} - {"help", "config"}
    keys = {"persona" if name == "personas" else name for name in ServeConfig.__dataclass_fields__}
    keys |= {f"console_{name}" for name in ConsoleConfig.__dataclass_fields__} - {
        "console_enabled"  # [console] enabled is --console
    }
    assert flags <= keys, flags - keys
    assert keys - flags == {"source", "pki"}


# --- the command line over the file --------------------------------------------------------


def test_the_file_fills_in_what_the_command_line_leaves_out(tmp_path: Path) -> None:
    path = bench(tmp_path)
    merged = merge(load_config(path), serve_args("--config", str(path)))
    assert merged.readers == 3
    assert merged.persona == [tmp_path / "personas" / "alice.toml"]
    assert merged.image == tmp_path / "images" / "alice.sqlite"
    assert merged.vpcd == ["kiosk1.example:35963", "35964"]
    assert merged.scenario == str(tmp_path / "faults.toml")
    assert merged.trace == tmp_path / "traces" / "apdus.jsonl"
    assert merged.private_socket is True
    assert merged.reconnect_timeout == 12.5
    assert merged.verbose is True
    assert merged.pki == tmp_path / "pki"


def test_command_line_flags_win(tmp_path: Path) -> None:
    path = bench(tmp_path)
    args = serve_args(
        "--config",
        str(path),
        "--readers",
        "5",
        "--persona",
        "cli.toml",
        "--persona",
        "cli2.toml",
        "--image",
        "cli.sqlite",
        "--vpcd",
        "other:1",
        "--scenario",
        "pin-locked",
        "--trace",
        "cli.jsonl",
        "--reconnect-timeout",
        "30",  # the default value, given: still wins over the file's 12.5
    )
    merged = merge(load_config(path), args)
    assert merged.readers == 5
    assert merged.persona == [Path("cli.toml"), Path("cli2.toml")]  # replaces the file's list
    assert merged.image == Path("cli.sqlite")
    assert merged.vpcd == ["other:1"]
    assert merged.scenario == "pin-locked"
    assert merged.trace == Path("cli.jsonl")
    assert merged.reconnect_timeout == 30.0


def test_switches_on_the_command_line_switch_on(tmp_path: Path) -> None:
    path = bench(tmp_path, "private_socket = false\nverbose = false\n")
    merged = merge(load_config(path), serve_args("--private-socket", "-v"))
    assert (merged.private_socket, merged.verbose) == (True, True)
    merged = merge(load_config(path), serve_args())
    assert (merged.private_socket, merged.verbose) == (False, False)


def test_defaults_without_a_file() -> None:
    merged = configure(serve_args())
    assert merged.reconnect_timeout == DEFAULT_RECONNECT_TIMEOUT
    assert (merged.persona, merged.vpcd, merged.readers, merged.pki) == ([], [], None, None)


def test_the_file_chooses_the_pki_for_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYNACARD_PKI", str(tmp_path / "from-environment"))
    path = bench(tmp_path, 'pki = "lab-pki"\n')
    configure(serve_args("--config", str(path)))
    assert os.environ["MYNACARD_PKI"] == str(tmp_path / "lab-pki")


def test_the_console_table_turns_the_console_on(tmp_path: Path) -> None:
    path = bench(tmp_path, "[console]\nenabled = true\nport = 8080\n")
    config = load_config(path)
    assert config.console == ConsoleConfig(enabled=True, port=8080)
    merged = merge(config, serve_args("--config", str(path)))
    assert (merged.console, merged.console_port) == (True, 8080)
    merged = merge(config, serve_args("--config", str(path), "--console-port", "0"))
    assert (merged.console, merged.console_port) == (True, 0)  # the flag wins
    off = load_config(bench(tmp_path, "[console]\nenabled = false\nport = 8080\n"))
    merged = merge(off, serve_args("--console"))  # the switch switches on
    assert (merged.console, merged.console_port) == (True, 8080)
    merged = merge(ServeConfig(), serve_args())
    assert (merged.console, merged.console_port) == (False, None)


# --- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('readers = "four"', 'readers: must be an integer 1-256, not "four"'),
        ("readers = 257", "readers: must be an integer 1-256, not 257"),
        ("readers = true", "readers: must be an integer 1-256, not true"),
        ("reders = 2", r"unknown key: reders \(did you mean readers\?\)$"),
        ("persona = []", r"unknown key: persona \(did you mean personas\?\)$"),
        ("private-socket = true", r"unknown key: private-socket \(did you mean private_socket\?\)"),
        ("colour = 1", r"unknown key: colour; known keys: readers, personas, image, vpcd,"),
        ('personas = "a.toml"', 'personas: must be a list of persona files, not "a.toml"'),
        ("personas = []", r"personas: must list at least one persona file \(or leave"),
        ("personas = [1]", "personas\\[0\\]: must be a file path, not 1"),
        ('personas = ["nope.toml"]', r"personas\[0\]: .*/nope\.toml does not exist"),
        ('personas = ["."]', r"personas\[0\]: .* is a directory, not a file"),
        ('personas = ["a\\u0000b"]', r"personas\[0\]: U\+0000 at character 2 in a file path"),
        ("image = 3", "image: must be a file path, not 3"),
        ('image = "no/such/dir/c.sqlite"', r"image: directory .*/no/such/dir does not exist"),
        ('vpcd = "host:1"', 'vpcd: must be a list of HOST:PORT endpoints, not "host:1"'),
        ('vpcd = ["host:port"]', r"vpcd\[0\]: 'host:port' is not HOST:PORT"),
        ('vpcd = ["host:70000"]', r"vpcd\[0\]: 'host:70000': port 70000 is outside 1-65535"),
        ('scenario = "pin-lockd"', r'scenario: "pin-lockd" is neither .*did you mean pin-locked'),
        ("scenario = 1", "scenario: must be a kiosk scenario name or a fault scenario file, not"),
        ('trace = "missing/t.jsonl"', r"trace: directory .*/missing does not exist"),
        ('trace = "."', r"trace: .* is a directory, not a file"),
        ('private_socket = "yes"', 'private_socket: must be true or false, not "yes"'),
        ("verbose = 1", "verbose: must be true or false, not 1"),
        ("reconnect_timeout = 0", "reconnect_timeout: must be a number of seconds more than 0"),
        ("reconnect_timeout = 3601", "reconnect_timeout: .* at most 3600, not 3601$"),
        ("reconnect_timeout = nan", "reconnect_timeout: .* not nan$"),
        ('reconnect_timeout = "30"', 'reconnect_timeout: .* not "30"$'),
        ('pki = "bench.toml"', r"pki: .*bench\.toml is not a directory"),
        ('pki = "no/such/pki"', r"pki: directory .*/no/such does not exist"),
        ("console = 3", "console: expected a table, got 3"),
        ("[console]\nenabled = 1", "console.enabled: must be true or false, not 1"),
        ("[console]\nport = 65536", "console.port: must be an integer 0-65535, not 65536"),
        ("[console]\nport = -1", "console.port: must be an integer 0-65535, not -1"),
        (
            "[console]\nenable = true",
            r"unknown key: console\.enable \(did you mean console\.enabled",
        ),
        (
            'personas = ["a.toml", "b.toml"]\nimage = "c.sqlite"',
            "image: goes with exactly one persona, and personas lists 2",
        ),
        ("readers = 2 2", r"not valid TOML \(.*line 1"),
        (f'personas = ["{"x" * 300}"]', r"personas\[0\]: cannot use .* \(File name too long\)"),
        (f'scenario = "{"x" * 300}"', r"scenario: cannot use .* \(File name too long\)"),
        (f'trace = "{"x" * 300}"', r"trace: cannot use .* \(File name too long\)"),
        (f'pki = "{"x" * 300}"', r"pki: cannot use .* \(File name too long\)"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    if "a.toml" in text:  # the image case: personas that exist
        for name in ("a.toml", "b.toml"):
            shutil.copy(DEMO_PERSONA, tmp_path / name)
    path = bench(tmp_path, text + "\n")
    with pytest.raises(ServeConfigError, match=rf"^{re.escape(str(path))}: {message}"):
        load_config(path)


def test_a_long_bad_value_is_cut_short(tmp_path: Path) -> None:
    path = bench(tmp_path, f'readers = "{"9" * 10_000}"\n')
    with pytest.raises(ServeConfigError) as info:
        load_config(path)
    assert str(info.value).endswith('…" (10000 characters)')
    assert len(str(info.value)) < 200 + len(str(path))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, r"cannot read the configuration \(No such file or directory\)"),
        (lambda p: p.mkdir(), r"cannot read the configuration \(Is a directory\)"),
        (lambda p: p.write_bytes(b"readers = 2\n# caf\xe9\n"), r"not UTF-8 text \(line 2\)"),
        (
            lambda p: p.write_bytes(b"x = " + b"[" * 5000 + b"]" * 5000),
            "arrays or tables nested too deeply",
        ),
        (lambda p: p.write_bytes(b"#" * (1024 * 1024 + 1)), "more than 1 MiB"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "bench.toml"
    setup(path)  # type: ignore[operator]
    with pytest.raises(ServeConfigError, match=rf"^{re.escape(str(path))}: {message}"):
        load_config(path)


def test_serve_with_a_bad_file_exits_2_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bench(tmp_path, 'readers = "four"\n')
    before = sorted(tmp_path.rglob("*"))
    assert main(["serve", "--config", "bench.toml"]) == 2
    err = capsys.readouterr().err
    assert err == 'mynacard: bench.toml: readers: must be an integer 1-256, not "four"\n'
    assert sorted(tmp_path.rglob("*")) == before


def test_serve_names_a_bad_console_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bench(tmp_path, '[console]\nenabled = true\nport = "8080"\n')
    assert main(["serve", "--config", "bench.toml"]) == 2
    err = capsys.readouterr().err
    assert err == 'mynacard: bench.toml: console.port: must be an integer 0-65535, not "8080"\n'
    for argv, message in (
        (["--console", "--console-port", "65536"], "--console-port must be 0-65535, not 65536"),
        (["--console", "--console-port", "-1"], "--console-port must be 0-65535, not -1"),
        (["--console-port", "8080"], "--console-port goes with --console"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(["serve", *argv])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--console", "--console-port", "eighty"])
    assert "--console-port: invalid int value: 'eighty'" in capsys.readouterr().err


# --- the example --------------------------------------------------------------------------


def test_the_example_file_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.readers == 2
    assert [path.resolve() for path in config.personas] == [DEMO_PERSONA.resolve()]
    assert config.trace == EXAMPLE.parent / "bench-apdus.jsonl"
    assert config.console == ConsoleConfig(enabled=False)
    merged = merge(config, serve_args("--config", str(EXAMPLE)))
    assert merged.reconnect_timeout == 30.0


def test_the_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Serve configuration file", 1)[1].split("\n## ", 1)[0]
    for key in ServeConfig.__dataclass_fields__.keys() - {"source"}:
        assert f"`{key}" in section or f"`[{key}]`" in section, key


@pytest.mark.pcsc
def test_serve_the_example_bench(tmp_path: Path) -> None:
    """``mynacard serve --config examples/serve/bench.toml``: the example, unchanged, in a copy
    of the checkout's layout (so its trace lands in ``tmp_path``, not in the checkout)."""
    (tmp_path / "examples" / "serve").mkdir(parents=True)
    shutil.copy(EXAMPLE, tmp_path / "examples" / "serve" / "bench.toml")
    (tmp_path / "vectors").symlink_to(ROOT / "vectors")
    trace = tmp_path / "examples" / "serve" / "bench-apdus.jsonl"
    serve, text, socket_path, env = start_serve(
        "--config", "examples/serve/bench.toml", cwd=tmp_path
    )
    try:
        assert "← demo: 番号\u3000花子, JPKIAPICCTOKEN2" in text, text
        assert text.count("(empty)") == 1, text  # two readers: the card's and an empty one
        assert f"trace (masked APDUs): {trace}" in text
        readers = opensc_list(socket_path, env)
        assert readers.count("mynacard vpcd") == 2, readers
        assert "Yes" in readers
        certificates = pcsc_tool(socket_path, env, "pkcs15-tool", "--list-certificates")
        assert "User Authentication Certificate" in certificates
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, rest
    exchanges = read_trace(trace).exchanges
    assert exchanges, "the configured trace file received no APDU"
    assert any(exchange.command.startswith("00 A4 04") for exchange in exchanges)
