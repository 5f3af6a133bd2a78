"""Behaviour choices where public sources are thin or silent, each overridable.

Every field is listed with its evidence grade and source in ``fidelity.toml`` (rendered as
``docs/fidelity.md``). A persona's ``[policy]`` table may change any field; the chosen policy is
stored in the card image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from apdu import StatusWord

SESSION_KEY_SCOPES = ("jpki", "text", "kenmen", "common", "juki", "mf")
"""Where SET SESSION KEY can be sent: each AP, and ``mf`` (no AP selected)."""

ECDSA_SIGNATURE_ENCODINGS = ("raw", "der")
"""The encodings :attr:`CardPolicy.ecdsa_signature_encoding` may name."""

_DEFAULT_SESSION_KEY_SW = (
    ("common", 0x66F1),
    ("jpki", 0x6982),
    ("juki", 0x6982),
    ("kenmen", 0x66F1),
    ("mf", 0x66F1),
)


@dataclass(frozen=True, slots=True)
class CardPolicy:
    """Status words and state-machine choices; ``fidelity.toml`` grades each one."""

    unknown_aid_sw: int = StatusWord.FILE_NOT_FOUND
    """SELECT of an AID the card does not have (GUESS; never 9000)."""
    key_not_enabled_sw: int = StatusWord.SECURITY_STATUS_NOT_SATISFIED
    """COMPUTE DIGITAL SIGNATURE with a key whose credential is not verified (GUESS)."""
    wrong_length_pin_counts: bool = True
    """A PIN of the wrong length is a wrong PIN (counts down) rather than ``6700``."""
    failed_verify_clears_state: bool = True
    """A failed VERIFY forgets an earlier successful VERIFY of the same IEF (ISO practice)."""
    reselect_clears_state: bool = True
    """SELECT of the already-selected AP clears its security state and SM session."""
    aid_prefix_selection: bool = False
    """Select a DF by a prefix of its name (legal per JICSAP; real readers send whole AIDs)."""
    set_session_key_sw: tuple[tuple[str, int], ...] = _DEFAULT_SESSION_KEY_SW
    """SET SESSION KEY where no key delivery exists, per AP (``mf``: no AP selected)."""
    sm_select_refused_sw: int = 0x6882
    """SELECT FILE with a secure-messaging class outside a session."""
    sm_refused_sw: int = 0x69FC
    """Any other command with a secure-messaging class outside a session (or after an SM error)."""
    last_command_indicator_sw: int = StatusWord.WRONG_LENGTH
    """``80 FC`` (the iPhone token's last-command indicator) on a physical card."""
    atr_object_in_applications: bool = True
    """GET DATA ``5F51`` (the contact ATR) also answers with an AP selected."""
    select_returns_fci: bool = True
    """SELECT by AID with P2 ``00`` answers a minimal FCI ``6F { 84 <AID> }`` (else no data)."""
    unknown_ins_sw: int = StatusWord.INS_NOT_SUPPORTED
    """An instruction the card does not know."""
    unknown_cla_sw: int = StatusWord.CLA_NOT_SUPPORTED
    """A class byte the card does not accept (or a known INS under the wrong class)."""
    ecdsa_signature_encoding: str = "raw"
    """How COMPUTE DIGITAL SIGNATURE returns an ECDSA signature (next-generation card): ``raw``
    r ‖ s, each as long as the curve order (ISO 7816-8 practice), or ``der`` (X9.62 SEQUENCE)."""
    remap: tuple[tuple[int, int, int], ...] = ()
    """``(INS, status word, replacement)``: any answer of INS (``-1``: every INS) with that
    status word is replaced; how a persona overrides any status-word choice of ours."""

    def remapped(self, ins: int, response: bytes) -> bytes:
        """``response`` with its status word replaced when :attr:`remap` says so."""
        sw = int.from_bytes(response[-2:], "big")
        for rule_ins, rule_sw, replacement in self.remap:
            if rule_sw == sw and rule_ins in (ins, -1):
                return response[:-2] + replacement.to_bytes(2, "big")
        return response

    def session_key_refusal(self, scope: str) -> int:
        """The SET SESSION KEY answer of an AP (or ``mf``) without key delivery."""
        return dict(self.set_session_key_sw).get(scope, StatusWord.SECURITY_STATUS_NOT_SATISFIED)

    def to_data(self) -> dict[str, Any]:
        """Plain data: the TOML / JSON form :meth:`from_mapping` reads."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "remap":
                value = {
                    f"{'*' if ins < 0 else f'{ins:02X}'} {sw:04X}": f"{to:04X}"
                    for ins, sw, to in value
                }
            elif isinstance(value, tuple):
                value = {k: f"{v:04X}" for k, v in value}
            data[f.name] = value
        return data

    def to_json(self) -> str:
        """JSON for the card image."""
        return json.dumps(self.to_data(), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "policy") -> CardPolicy:
        """Defaults with the fields in ``data`` replaced; status words may be given as hex text."""
        known = {f.name for f in fields(cls)}
        defaults = cls()
        changes: dict[str, Any] = {}
        for key, given in data.items():
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown policy field (known: {sorted(known)})")
            default = getattr(defaults, key)
            if isinstance(default, bool):
                if not isinstance(given, bool):
                    raise ValueError(f"{where}.{key}: expected true or false, got {given!r}")
                changes[key] = given
            elif key == "remap":
                changes[key] = _remap(given, f"{where}.{key}")
            elif key == "ecdsa_signature_encoding":
                if given not in ECDSA_SIGNATURE_ENCODINGS:
                    raise ValueError(
                        f"{where}.{key}: expected one of {', '.join(ECDSA_SIGNATURE_ENCODINGS)},"
                        f" got {given!r}"
                    )
                changes[key] = given
            elif isinstance(default, tuple):
                changes[key] = _per_scope(default, given, f"{where}.{key}")
            else:
                changes[key] = _status_word(given, f"{where}.{key}")
        return replace(defaults, **changes)


def _status_word(given: Any, where: str) -> int:
    value = given
    if isinstance(given, str):
        try:
            value = int(given, 16)
        except ValueError:
            raise ValueError(f"{where}: {given!r} is not a hex status word") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0x6100 <= value <= 0x6FFF:
        raise ValueError(f"{where}: {given!r} is not an error status word (61xx-6Fxx)")
    return value


def _per_scope(
    default: tuple[tuple[str, int], ...], given: Any, where: str
) -> tuple[tuple[str, int], ...]:
    if not isinstance(given, Mapping):
        raise ValueError(f"{where}: expected a table of AP name → status word, got {given!r}")
    merged = dict(default)
    for scope, sw in given.items():
        if scope not in SESSION_KEY_SCOPES:
            raise ValueError(
                f"{where}.{scope}: unknown AP (known: {', '.join(SESSION_KEY_SCOPES)})"
            )
        merged[scope] = _status_word(sw, f"{where}.{scope}")
    return tuple(sorted(merged.items()))


def _remap(given: Any, where: str) -> tuple[tuple[int, int, int], ...]:
    """``{"B0 6986" = "6A82", "* 6D00" = "6E00"}`` → ``((0xB0, 0x6986, 0x6A82), (-1, ...))``."""
    if not isinstance(given, Mapping):
        raise ValueError(f'{where}: expected a table like {{"B0 6986" = "6A82"}}, got {given!r}')
    out = []
    for key, to in given.items():
        parts = str(key).split()
        if len(parts) != 2:
            raise ValueError(f'{where}."{key}": expected "<INS hex or *> <status word>"')
        ins_text, sw_text = parts
        try:
            ins = -1 if ins_text == "*" else int(ins_text, 16)
        except ValueError:
            raise ValueError(f'{where}."{key}": {ins_text!r} is not an INS byte or *') from None
        if not -1 <= ins <= 0xFF:
            raise ValueError(f'{where}."{key}": {ins_text!r} is not an INS byte or *')
        try:
            sw = int(sw_text, 16)
        except ValueError:
            raise ValueError(f'{where}."{key}": {sw_text!r} is not a status word') from None
        if not 0x6100 <= sw <= 0x6FFF and sw != 0x9000:
            raise ValueError(f'{where}."{key}": {sw_text!r} is not a status word (61xx-6Fxx, 9000)')
        out.append((ins, sw, _status_word(to, f'{where}."{key}"')))
    return tuple(sorted(out))
