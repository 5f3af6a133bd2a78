"""``mynacard --version``: the installed distribution's version, one source (pyproject.toml)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from apdu import version as version_module
from apdu.version import UNKNOWN, version
from tests.conftest import ROOT


def _mynacard() -> list[str]:
    script = Path(sys.executable).with_name("mynacard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


def test_version_flag_prints_the_distribution_version() -> None:
    result = subprocess.run(
        [*_mynacard(), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mynacard {metadata.version('mynacard')}\n"


def test_version_is_the_installed_metadata() -> None:
    assert version() == metadata.version("mynacard")


def test_fallback_without_distribution_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module.metadata, "version", missing)
    version.cache_clear()
    try:
        assert version() == UNKNOWN == "0+unknown"
    finally:
        version.cache_clear()


def _installed_from() -> Path | None:
    """The source tree the metadata :func:`version` reads was written for, if known: a
    ``mynacard.egg-info`` in that tree (an editable install run from it), or the directory
    pip's ``direct_url.json`` names."""
    distribution = metadata.distribution("mynacard")
    folder = Path(str(distribution.locate_file(""))).resolve()
    if (folder / "pyproject.toml").is_file():
        return folder
    text = distribution.read_text("direct_url.json")
    if text is None:
        return None
    url = urlparse(json.loads(text).get("url", ""))
    return Path(unquote(url.path)).resolve() if url.scheme == "file" else None


def test_installed_metadata_is_this_checkouts_pyproject() -> None:
    """Catches a stale install (pyproject bumped, package not reinstalled); the test command
    reinstalls whenever pyproject.toml changes."""
    source = _installed_from()
    if source != ROOT:
        pytest.skip(f"the installed mynacard's metadata is for {source}, not {ROOT}")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert version() == declared
