"""``mynacard completion bash|zsh``: the shell completion script, generated from the parser.

The script comes from the ``mynacard`` argparse parser itself (via shtab), so every command and
option, including ones added later, completes without a hand-kept list. Arguments that take a
path (``type=Path``) complete file names. Install it once per machine or user::

    mynacard completion bash > /etc/bash_completion.d/mynacard
    mynacard completion bash > ~/.local/share/bash-completion/completions/mynacard
    mynacard completion zsh > "${fpath[1]}/_mynacard"   # then start a new zsh
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import shtab

SHELLS = ("bash", "zsh")

INSTALL = """\
install for bash (all users, or one user):
  mynacard completion bash > /etc/bash_completion.d/mynacard
  mynacard completion bash > ~/.local/share/bash-completion/completions/mynacard
install for zsh (then start a new zsh):
  mynacard completion zsh > "${fpath[1]}/_mynacard"
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    root: argparse.ArgumentParser,
) -> None:
    """Add the ``completion`` command; ``root`` is the parser the script completes."""
    completion = subparsers.add_parser(
        "completion",
        help="print the bash or zsh completion script for mynacard",
        description="Print a shell completion script for mynacard, generated from its commands "
        "and options.",
        epilog=INSTALL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    completion.set_defaults(func=lambda args: _print_script(root, args.shell))


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` for ``shell`` (``bash`` or ``zsh``)."""
    for action in _actions(parser):
        if action.type is Path and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell)


def _print_script(root: argparse.ArgumentParser, shell: str) -> int:
    print(script(root, shell).rstrip("\n"))
    return 0


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every action of ``parser`` and of its subcommands, recursively."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _actions(child)
