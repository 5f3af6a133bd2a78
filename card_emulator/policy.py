"""Behaviour defaults where public sources are silent (card-facts §15), each overridable.

The defaults follow DESIGN.md "Card behaviour". A persona's ``[policy]`` table may change any
field; the chosen policy is stored in the card image.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from apdu import StatusWord


@dataclass(frozen=True, slots=True)
class CardPolicy:
    """Status words and state-machine choices for questions the spec leaves open."""

    unknown_aid_sw: int = StatusWord.FILE_NOT_FOUND
    """SELECT of an AID the card does not have (GUESS; never 9000)."""
    key_not_enabled_sw: int = StatusWord.SECURITY_STATUS_NOT_SATISFIED
    """COMPUTE DIGITAL SIGNATURE with a key whose credential is not verified (GUESS)."""
    wrong_length_pin_counts: bool = True
    """A PIN of the wrong length is a wrong PIN (counts down) rather than ``6700``."""
    failed_verify_clears_state: bool = True
    """A failed VERIFY forgets an earlier successful VERIFY of the same IEF (ISO practice)."""
    reselect_clears_state: bool = True
    """SELECT of the already-selected AP clears its security state."""
    aid_prefix_selection: bool = False
    """Select a DF by a prefix of its name (legal per JICSAP; real readers send whole AIDs)."""

    def to_json(self) -> str:
        """JSON for the card image."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "policy") -> CardPolicy:
        """Defaults with the fields in ``data`` replaced; status words may be given as hex text."""
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, given in data.items():
            value = given
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown policy field (known: {sorted(known)})")
            default = getattr(cls(), key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{where}.{key}: expected true or false, got {value!r}")
            elif isinstance(value, str):
                try:
                    value = int(given, 16)
                except ValueError:
                    raise ValueError(f"{where}.{key}: {given!r} is not a hex status word") from None
            if key.endswith("_sw") and not (isinstance(value, int) and 0x6100 <= value <= 0x6FFF):
                raise ValueError(
                    f"{where}.{key}: {value!r} is not an error status word (61xx-6Fxx)"
                )
            changes[key] = value
        return replace(cls(), **changes)
