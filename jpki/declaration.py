"""A whole test PKI declared in one TOML file: trees, CA key generations, services.

Schema (see ``jpki/default_pki.toml``, the default)::

    [pki]
    base_url = "http://127.0.0.1:8714"   # AIA OCSP / CRL DP URLs in certificates; serve's default
    styles = ["test", "production"]       # NameStyle values with a hierarchy each
    crl_validity_hours = 24               # CRL nextUpdate - thisUpdate
    ocsp_validity_hours = 24              # OCSP nextUpdate - thisUpdate

    [auth]                                # and [sign]: one table per tree (both required)
    responder_common_name = "OCSP Responder"

    [[auth.generations]]                  # one or more CA key generations
    generation = 1                        # positive, unique within the tree
    not_before = 2015-10-20               # date → 00:00:00 JST; offset datetimes as written
    not_after = 2025-10-19                # date → 23:59:59 JST
    serial = 1                            # optional CA certificate serial (random otherwise)
    algorithm = "rsa-2048"                # optional: "rsa-2048" (default, today's card) or
                                          # "ecdsa-p384" (next-generation card, SHA-384)

All generations of a tree share the tree's DN (as the real ones do) and differ by key. The
generation *in force* at a moment for a key algorithm is the newest one of that algorithm whose
validity contains it; cards take their certificates from the generation in force on their issue
date for their keys' algorithm (RSA-2048 today, ECDSA P-384 on the next-generation card).
Every field is checked and an unknown field is refused; errors name the field
(``auth.generations[1].not_after: …``).
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apdu.errors import MynacardError
from jpki.clock import jst_day_end, jst_day_start
from jpki.keys import KeyAlgorithm
from jpki.names import NameStyle, Tree
from jpki.toml_fields import FieldTable

__all__ = [
    "DeclarationError",
    "GenerationDeclaration",
    "PkiDeclaration",
    "TreeDeclaration",
    "default_declaration",
    "load_declaration",
    "parse_declaration",
]


class DeclarationError(MynacardError, ValueError):
    """A PKI declaration that cannot be used; the message names the field."""


@dataclass(frozen=True)
class GenerationDeclaration:
    """One CA key generation of a tree."""

    generation: int
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int | None = None
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048

    def contains(self, moment: dt.datetime) -> bool:
        """True if ``moment`` lies within this generation's validity."""
        return self.not_before <= moment <= self.not_after


@dataclass(frozen=True)
class TreeDeclaration:
    """One tree (利用者証明用 or 署名用): its CA generations and OCSP responder."""

    tree: Tree
    generations: tuple[GenerationDeclaration, ...]
    responder_common_name: str = "OCSP Responder"

    def generation(self, number: int) -> GenerationDeclaration:
        """The declared generation ``number`` (KeyError if not declared)."""
        for generation in self.generations:
            if generation.generation == number:
                return generation
        raise KeyError(f"{self.tree.value} tree has no generation {number}")

    def in_force(
        self, moment: dt.datetime, algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048
    ) -> GenerationDeclaration | None:
        """The newest generation of ``algorithm`` valid at ``moment``, or None."""
        candidates = [
            g for g in self.generations if g.contains(moment) and g.algorithm is algorithm
        ]
        return max(candidates, key=lambda g: g.generation) if candidates else None


@dataclass(frozen=True)
class PkiDeclaration:
    """A validated declaration."""

    base_url: str
    styles: tuple[NameStyle, ...]
    trees: Mapping[Tree, TreeDeclaration]
    crl_validity: dt.timedelta = dt.timedelta(hours=24)
    ocsp_validity: dt.timedelta = dt.timedelta(hours=24)

    def with_base_url(self, base_url: str) -> PkiDeclaration:
        """A copy serving at (and naming in certificates) ``base_url``."""
        return replace(self, base_url=_check_base_url(base_url, "base_url"))

    def to_toml(self) -> str:
        """This declaration as TOML that :func:`parse_declaration` reads back unchanged."""
        lines = [
            "# A test PKI declaration (schema: jpki/declaration.py). Edit to add generations.",
            "",
            "[pki]",
            f"base_url = {_string(self.base_url)}",
            "styles = [" + ", ".join(f'"{style.value}"' for style in self.styles) + "]",
            f"crl_validity_hours = {_hours(self.crl_validity)}",
            f"ocsp_validity_hours = {_hours(self.ocsp_validity)}",
        ]
        for tree in Tree:
            declared = self.trees[tree]
            lines += ["", f"[{tree.value}]"]
            lines.append(f"responder_common_name = {_string(declared.responder_common_name)}")
            for generation in declared.generations:
                lines += [
                    "",
                    f"[[{tree.value}.generations]]",
                    f"generation = {generation.generation}",
                    f"not_before = {generation.not_before.isoformat()}",
                    f"not_after = {generation.not_after.isoformat()}",
                ]
                if generation.serial is not None:
                    lines.append(f"serial = {generation.serial}")
                if generation.algorithm is not KeyAlgorithm.RSA_2048:
                    lines.append(f'algorithm = "{generation.algorithm.value}"')
        return "\n".join(lines) + "\n"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _hours(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 3600)


class _Table(FieldTable):
    error = DeclarationError


def _check_base_url(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise DeclarationError(f"{where}: expected a string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeclarationError(f"{where}: {value!r} is not an http:// URL")
    if parts.query or parts.fragment:
        raise DeclarationError(f"{where}: {value!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise DeclarationError(f"{where}: {value!r} has a bad port") from None
    return value.rstrip("/")


def _positive_int(table: _Table, key: str, default: Any = ...) -> int:
    value = table.take(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DeclarationError(f"{table.path(key)}: expected a positive integer, got {value!r}")
    return value


def _moment(table: _Table, key: str, *, end: bool) -> dt.datetime:
    value = table.take(key)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise DeclarationError(
                f"{table.path(key)}: {value} needs an offset (e.g. +09:00) or use a plain date"
            )
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return jst_day_end(value) if end else jst_day_start(value)
    raise DeclarationError(f"{table.path(key)}: expected a date (YYYY-MM-DD), got {value!r}")


def _generation(data: Any, where: str) -> GenerationDeclaration:
    table = _Table(data, where)
    number = _positive_int(table, "generation")
    not_before = _moment(table, "not_before", end=False)
    not_after = _moment(table, "not_after", end=True)
    if not_after <= not_before:
        raise DeclarationError(f"{table.path('not_after')}: {not_after} is not after not_before")
    serial = table.take("serial", None)
    if serial is not None:
        serial = _positive_int(table, "serial", serial)
        if serial.bit_length() > 159:
            raise DeclarationError(f"{table.path('serial')}: longer than 20 octets")
    try:
        algorithm = KeyAlgorithm.parse(
            table.take("algorithm", KeyAlgorithm.RSA_2048.value), table.path("algorithm")
        )
    except ValueError as exc:
        raise DeclarationError(str(exc)) from None
    table.done()
    return GenerationDeclaration(number, not_before, not_after, serial, algorithm)


def _tree(tree: Tree, data: Any) -> TreeDeclaration:
    table = _Table(data, tree.value)
    name = table.take("responder_common_name", "OCSP Responder")
    if not isinstance(name, str) or not name.strip():
        where = table.path("responder_common_name")
        raise DeclarationError(f"{where}: expected a non-empty string")
    raw = table.take("generations")
    if not isinstance(raw, list) or not raw:
        raise DeclarationError(f"{table.path('generations')}: declare at least one generation")
    generations = [
        _generation(item, f"{tree.value}.generations[{index}]") for index, item in enumerate(raw)
    ]
    numbers = [g.generation for g in generations]
    if len(set(numbers)) != len(numbers):
        raise DeclarationError(f"{table.path('generations')}: generation numbers repeat: {numbers}")
    table.done()
    ordered = tuple(sorted(generations, key=lambda g: g.generation))
    return TreeDeclaration(tree, ordered, name)


def _styles(table: _Table) -> tuple[NameStyle, ...]:
    raw = table.take("styles", ["test", "production"])
    known = {style.value: style for style in NameStyle}
    if not isinstance(raw, list) or not raw:
        raise DeclarationError(f"{table.path('styles')}: expected a non-empty list")
    styles: list[NameStyle] = []
    for value in raw:
        if value not in known:
            raise DeclarationError(
                f"{table.path('styles')}: {value!r} is not one of {', '.join(known)}"
            )
        if known[value] not in styles:
            styles.append(known[value])
    return tuple(styles)


def parse_declaration(text: str, source: str = "<declaration>") -> PkiDeclaration:
    """Validate declaration TOML; errors start with ``source`` and name the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{source}: not valid TOML ({exc})") from None
    try:
        top = _Table(data, "")
        pki = _Table(top.take("pki"), "pki")
        base_url = _check_base_url(pki.take("base_url"), "pki.base_url")
        styles = _styles(pki)
        crl_hours = _positive_int(pki, "crl_validity_hours", 24)
        ocsp_hours = _positive_int(pki, "ocsp_validity_hours", 24)
        pki.done()
        trees = {tree: _tree(tree, top.take(tree.value)) for tree in Tree}
        top.done()
    except DeclarationError as exc:
        raise DeclarationError(f"{source}: {exc}") from None
    return PkiDeclaration(
        base_url=base_url,
        styles=styles,
        trees=trees,
        crl_validity=dt.timedelta(hours=crl_hours),
        ocsp_validity=dt.timedelta(hours=ocsp_hours),
    )


def load_declaration(path: str | Path) -> PkiDeclaration:
    """Read and validate the declaration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError(f"{path}: cannot read declaration ({exc})") from None
    return parse_declaration(text, str(path))


def default_declaration() -> PkiDeclaration:
    """The package's default declaration (``jpki/default_pki.toml``)."""
    text = resources.files("jpki").joinpath("default_pki.toml").read_text(encoding="utf-8")
    return parse_declaration(text, "jpki/default_pki.toml")
