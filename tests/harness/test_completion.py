"""``mynacard completion bash|zsh``: scripts generated from the real parser, that really complete.

The bash script is checked with ``bash -n`` and then used: sourced in ``bash --norc`` and its
completion function called with ``COMP_WORDS``/``COMP_CWORD`` as bash's ``complete -F`` would.
The zsh script is checked with ``zsh -n`` where zsh is installed (the test command installs it),
else by its text.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.commands.completion import script


def _mynacard() -> list[str]:
    exe = Path(sys.executable).with_name("mynacard")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "harness.cli"]


def _generated(shell: str) -> str:
    result = subprocess.run(
        [*_mynacard(), "completion", shell], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    return result.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "mynacard.bash"
    path.write_text(_generated("bash"), "utf-8")
    return path


def _commands(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every subcommand name of ``parser``, nested ones too (``pki revoke`` gives ``revoke``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name
                yield from _commands(child)


def _complete(script_path: Path, words: list[str], cwd: Path | None = None) -> list[str]:
    """COMPREPLY of the script's completion function for ``words`` (the last being completed)."""
    program = (
        f"source {shlex.quote(str(script_path))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(' '.join(words))}\n"
        "COMP_POINT=${#COMP_LINE}\n"
        "complete -p mynacard >/dev/null || exit 3\n"  # the script registered itself
        '_shtab_mynacard mynacard "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_script_is_valid_bash(bash_script: Path) -> None:
    result = subprocess.run(
        ["bash", "-n", str(bash_script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_script_names_every_command_of_the_real_parser(shell: str) -> None:
    text = _generated(shell)
    commands = list(_commands(build_parser()))
    assert {"serve", "personalize", "trace", "completion", "revoke"} <= set(commands)
    missing = [name for name in commands if name not in text]
    assert not missing, missing
    assert text == script(build_parser(), shell).rstrip("\n") + "\n"  # the command prints it


def test_bash_completes_a_command(bash_script: Path) -> None:
    assert "serve" in _complete(bash_script, ["mynacard", "ser"])
    assert _complete(bash_script, ["mynacard", "per"]) == ["persona-check", "personalize"]
    assert _complete(bash_script, ["mynacard", "pki", "rev"]) == ["revoke"]


def test_bash_completes_options_and_choices(bash_script: Path) -> None:
    assert _complete(bash_script, ["mynacard", "serve", "--im"]) == ["--image"]
    assert _complete(bash_script, ["mynacard", "--ver"]) == ["--version"]
    assert _complete(bash_script, ["mynacard", "completion", ""]) == ["bash", "zsh"]


def test_bash_completes_file_names_for_paths(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "card.sqlite").write_bytes(b"")
    (tmp_path / "demo.toml").write_bytes(b"")
    words = ["mynacard", "serve", "--image", "ca"]
    assert _complete(bash_script, words, cwd=tmp_path) == ["card.sqlite"]
    assert _complete(bash_script, ["mynacard", "persona-check", "de"], cwd=tmp_path) == [
        "demo.toml"
    ]


def test_zsh_script(tmp_path: Path) -> None:
    text = _generated("zsh")
    assert text.startswith("#compdef mynacard\n")
    assert "_shtab_mynacard" in text
    assert '"--image[serve this durable card image (created if new)]:image:_files"' in text
    zsh = shutil.which("zsh")
    if zsh is None:  # the text checks above still ran; `apt-get install zsh` runs the parse
        pytest.skip("zsh is not installed: zsh -n not run")
    path = tmp_path / "_mynacard"
    path.write_text(text, "utf-8")
    result = subprocess.run(
        [zsh, "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
