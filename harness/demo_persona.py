"""Where the demo persona's file is: a module of its own, importing nothing heavy, so that
``mynacard serve`` knows its default persona before it imports the card emulator (issue 18,
cold start). :mod:`harness.personas` re-exports :func:`demo_persona_path`."""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from functools import cache
from importlib import resources
from pathlib import Path

DEMO_RESOURCE = ("data", "personas", "demo.toml")
"""Where the demo persona lives in the ``harness`` package (``vectors/personas/demo.toml`` in a
clone is a symbolic link to it)."""

_extracted = ExitStack()  # files copied out of a zipped install, removed at exit
atexit.register(_extracted.close)


GENERATION_RESOURCES = {"next-generation": ("data", "personas", "next-generation.toml")}
"""The demo holder on a card of another built-in generation (the packaged persona files)."""


def demo_persona_path() -> Path:
    """The demo persona as a file: the one the installed package carries (package data)."""
    return generation_persona_path(None)


@cache
def generation_persona_path(profile: str | None) -> Path:
    """The demo persona of card generation ``profile``: the packaged next-generation persona
    for ``next-generation``, the demo persona otherwise (``current``, ``None``, a profile file:
    the demo persona with that profile)."""
    parts = GENERATION_RESOURCES.get(profile or "", DEMO_RESOURCE)
    resource = resources.files("harness").joinpath(*parts)
    return _extracted.enter_context(resources.as_file(resource))
