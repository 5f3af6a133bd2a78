"""The profile file: JSON with a schema version, the tool's version, the behaviour and, in a
section of its own that comparisons drop, the timing.

::

    {
      "schema": 1,
      "tool": "0.2.0",
      "complete": true,                 # false: the run stopped; "stopped" says why
      "atr": "3BE000FF8131FE4514",
      "probes": {"mf": {...}, "jpki": {"select/aid/p2=00": {"sw": "9000", "fci": [...]}, ...}},
      "timing": {"select": {"median_ms": 0.05, "count": 60}, ...}
    }

Keys are sorted and the text indented by 2, so a profile is stable under regeneration and
reads well in a diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from apdu.version import version
from harness.fingerprint.runner import Observations

__all__ = ["METADATA", "SCHEMA", "ProfileError", "build", "dumps", "load"]

SCHEMA = 1
METADATA = frozenset({"schema", "tool"})
"""Top-level keys that describe the file, not the card (a diff mentions, never counts, them)."""
TIMING = "timing"


class ProfileError(MynacardError, ValueError):
    """A file that is not a usable profile; the message names the file and the field."""


def build(found: Observations, *, timing: bool = True) -> dict[str, Any]:
    """The profile of a run (``timing=False``: without the timing section)."""
    profile: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": version(),
        "complete": found.stopped is None,
        "atr": found.atr,
        "probes": found.probes,
    }
    if found.stopped is not None:
        profile["stopped"] = found.stopped
    if timing:
        profile[TIMING] = found.timing()
    return profile


def dumps(profile: dict[str, Any]) -> str:
    """The file's text: sorted keys, indent 2, UTF-8 kept, final newline."""
    return json.dumps(profile, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def load(path: str | Path) -> dict[str, Any]:
    """Read and check a profile; :class:`ProfileError` names the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    return check(data, str(path))


def check(data: Any, where: str) -> dict[str, Any]:
    """``data`` when it has the profile's shape."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile is a JSON object, not {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ProfileError(f"{where}: field schema: expected {SCHEMA}, got {schema!r}")
    for key, kind in (("tool", str), ("atr", str), ("complete", bool), ("probes", dict)):
        if not isinstance(data.get(key), kind):
            raise ProfileError(f"{where}: field {key}: missing or not a {kind.__name__}")
    for scope, probes in data["probes"].items():
        if not isinstance(probes, dict):
            raise ProfileError(f"{where}: field probes.{scope}: not an object")
        for key, values in probes.items():
            if not isinstance(values, dict):
                raise ProfileError(f"{where}: field probes.{scope}.{key}: not an object")
    if TIMING in data and not isinstance(data[TIMING], dict):
        raise ProfileError(f"{where}: field timing: not an object")
    return data
