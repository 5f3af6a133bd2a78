"""The documentation site: its generated pages cover everything the code knows.

The expected sets are derived here from the code itself (the loaded access rules and
``apdu.vocabulary``, the persona dataclasses and the keys the validator reads, the real
argument parser, the plugin module), independently of ``docs/gen_pages.py``, and each page is
expanded exactly as the MkDocs hook expands it. ``scripts/dev.sh test`` also runs the strict
build itself (broken links, missing pages and unknown anchors fail it).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator
from types import ModuleType
from typing import Any, get_type_hints

import pytest

from apdu.vocabulary import APPLICATIONS, CREDENTIALS
from card_emulator import persona as persona_module
from card_emulator.access import AccessRules, load_rules
from card_emulator.persona import IMAGE_KINDS, TOP_LEVEL_FIELDS
from card_emulator.persona_fields import PersonaTable
from card_emulator.persona_model import Persona
from harness.cli import build_parser
from tests.conftest import DEMO_PERSONA, ROOT

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen_pages() -> ModuleType:
    """``docs/gen_pages.py``, imported the way the MkDocs hook imports it (by file)."""
    spec = importlib.util.spec_from_file_location("gen_pages", DOCS / "gen_pages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_pages"] = module
    spec.loader.exec_module(module)
    return module


def page(gen_pages: ModuleType, name: str) -> str:
    """``docs/<name>`` as the built site shows it (generate directives expanded)."""
    text = (DOCS / name).read_text(encoding="utf-8")
    assert "<!-- generate:" in text, f"{name} asks for nothing generated"
    expanded: str = gen_pages.expand(text)
    assert "<!-- generate:" not in expanded
    return expanded


# -- applications and access rules -----------------------------------------------------------


def test_access_rule_page_lists_every_fid_of_every_application(gen_pages: ModuleType) -> None:
    text = page(gen_pages, "access-rules.md")
    rules = load_rules()
    assert set(rules) == set(APPLICATIONS)
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    for name, app_rules in rules.items():
        section = next(
            s for s in sections if s.startswith(f"{APPLICATIONS[name].label} (`{name}`)")
        )
        expected = set(app_rules.read) | set(app_rules.use) | set(APPLICATIONS[name].files)
        for condition in app_rules.conditions():
            expected |= condition.credentials
        expected |= {c.fid for c in CREDENTIALS.values() if c.application == name}
        missing = sorted(f"{fid:04X}" for fid in expected if f"`{fid:04X}`" not in section)
        assert not missing, f"{name}: FIDs missing from the page: {missing}"
        assert APPLICATIONS[name].aid.hex().upper() in section
        for credential, where in CREDENTIALS.items():
            if where.application == name:
                assert f"`{credential}`" in section
    for overlay in tomllib.loads(
        (ROOT / "card_emulator" / "access_rules.toml").read_text(encoding="utf-8")
    )["overlay"]:
        assert f"### `{overlay}`" in text


def test_access_rule_page_shows_the_conditions_of_the_rules(gen_pages: ModuleType) -> None:
    text = page(gen_pages, "access-rules.md")
    row = next(line for line in text.splitlines() if line.startswith("| `0009` |"))
    assert "**never**" in row  # JPKI 0009: nothing opens it
    row = next(line for line in text.splitlines() if line.startswith("| `0017` |"))
    assert "`0018` 利用者証明用暗証番号" in row  # the auth key after the auth PIN


# -- personas --------------------------------------------------------------------------------


def dataclass_paths(cls: type, prefix: str = "") -> Iterator[str]:
    """Every field of the persona dataclasses, recursively, as a dotted path."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not prefix and field.name not in TOP_LEVEL_FIELDS:
            continue
        path = f"{prefix}{field.name}"
        yield path
        if dataclasses.is_dataclass(hints[field.name]):
            yield from dataclass_paths(hints[field.name], f"{path}.")


def validator_paths(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key the validator takes while reading the demo persona."""
    taken: set[str] = set()
    original = PersonaTable.take

    def take(self: PersonaTable, key: str, default: Any = ...) -> Any:
        taken.add(self.path(key))
        return original(self, key, default)

    with monkeypatch.context() as patch:
        patch.setattr(PersonaTable, "take", take)
        persona_module.load(DEMO_PERSONA)
    return taken


def test_persona_page_lists_every_field_the_code_knows(
    gen_pages: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page(gen_pages, "personas.md")
    expected = set(dataclass_paths(Persona))
    expected |= {f"counters.{name}" for name in CREDENTIALS}
    expected |= {f"images.{kind}" for kind in IMAGE_KINDS}
    expected |= {
        f"access.{application}.{field.name}"
        for application in load_rules()
        for field in dataclasses.fields(AccessRules)
    }
    assert expected >= TOP_LEVEL_FIELDS
    taken = validator_paths(monkeypatch)
    assert taken <= expected, f"the validator reads fields the dataclasses lack: {taken - expected}"
    tables = {path.rsplit(".", 1)[0] for path in expected if "." in path}
    assert {"holder", "card", "card.municipality", "pins", "certificates", "policy"} <= tables
    for path in sorted(expected):
        if path in tables or path in ("counters", "images", "access"):
            assert f"`[{path}]`" in text, f"table [{path}] missing from the persona page"
        else:
            assert f"`{path}`" in text, f"field {path} missing from the persona page"


def test_persona_page_shows_defaults_and_the_validators_answers(gen_pages: ModuleType) -> None:
    text = page(gen_pages, "personas.md")

    def row(path: str) -> str:
        return next(line for line in text.splitlines() if line.startswith(f"| `{path}` |"))

    assert "**required**" in row("holder.my_number")
    assert "is not 12 digits" in row("holder.my_number")
    assert '`"1234"`' in row("pins.jpki_auth")  # the default PIN
    assert "the same as `card.issued`" in row("certificates.issued")
    assert "keyCompromise" in row("certificates.auth_reason")  # the accepted reasons
    assert "at most 64 characters" in row("holder.name")
    assert '`"6A82"`' in row("policy.unknown_aid_sw")
    assert "integer 0–5" in row("counters.jpki_sign")


# -- the command line ------------------------------------------------------------------------


def parser_commands(parser: argparse.ArgumentParser, words: str = "") -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{words}{name}"
                yield from parser_commands(sub, f"{words}{name} ")


def test_cli_page_lists_every_subcommand_of_the_real_parser(gen_pages: ModuleType) -> None:
    text = page(gen_pages, "cli.md")
    commands = list(parser_commands(build_parser()))
    assert {"demo", "serve", "pki revoke", "conformance run", "fidelity"} <= set(commands)
    for command in commands:
        assert f"`mynacard {command}`" in text, f"mynacard {command} missing from the CLI page"
        assert f"usage: mynacard {command}" in text
    assert "`--reconnect-timeout SECONDS`" in text  # arguments and their help
    assert "`--kiosk-cmd COMMAND`" in text


def test_console_page_lists_every_route_of_the_real_app(gen_pages: ModuleType) -> None:
    from fastapi.routing import APIRoute

    from harness.console import CardController
    from harness.console.web.app import create_app

    text = page(gen_pages, "console.md")
    routes = [
        r for r in create_app(CardController([]), "t", port=1).routes if isinstance(r, APIRoute)
    ]
    assert len(routes) >= 17
    for route in routes:
        if not route.include_in_schema:
            continue
        for method in route.methods:
            assert f"| `{method}` | `{route.path}` |" in text, f"{method} {route.path} missing"
    assert "`tries`, `action`" in text and "`reason`" in text  # the bodies' keys


# -- the plugin, the conformance suite -------------------------------------------------------


def test_plugin_page_lists_every_fixture_and_marker(gen_pages: ModuleType) -> None:
    import harness.plugin

    text = page(gen_pages, "pytest-plugin.md")
    fixtures = [
        name
        for name, value in vars(harness.plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
        or hasattr(value, "_pytestfixturefunction")
    ]
    assert "myna_card" in fixtures
    for name in fixtures:
        assert f"| `{name}` |" in text, f"fixture {name} missing from the plugin page"
    assert "| `pcsc` |" in text


def test_conformance_page_lists_every_scenario_rule_and_reason(gen_pages: ModuleType) -> None:
    from harness.conformance.catalogue import REASONS, load_catalogue
    from harness.conformance.rules import RULES

    text = page(gen_pages, "conformance.md")
    for scenario in load_catalogue():
        assert f"| `{scenario.name}` |" in text
    for rule in RULES:
        assert f'<span id="{rule}"></span>`{rule}`' in text
    for reason in REASONS:
        assert f'`"{reason}"`' in text
    assert "MYNACARD_READER" in text  # the protocol, from the runner's docstring


# -- every page, the machinery ---------------------------------------------------------------


def test_every_page_expands(gen_pages: ModuleType) -> None:
    for path in sorted(DOCS.glob("*.md")):
        text = gen_pages.expand(path.read_text(encoding="utf-8"))
        assert "<!-- generate:" not in text, path.name
    assert "<!-- generate:" not in (DOCS / "fidelity.md").read_text(encoding="utf-8")


def test_what_the_pages_ask_for_must_exist(gen_pages: ModuleType) -> None:
    with pytest.raises(gen_pages.DocsError, match="unknown generator"):
        gen_pages.expand("<!-- generate: no-such-thing -->")
    with pytest.raises(gen_pages.DocsError, match="no section"):
        gen_pages.expand("<!-- generate: readme No Such Section -->")
    with pytest.raises(gen_pages.DocsError, match="no file"):
        gen_pages.expand("<!-- generate: file no/such.toml -->")


def test_docstrings_become_markdown(gen_pages: ModuleType) -> None:
    text = "See :class:`~jpki.clock.Clock` and :func:`jpki.clock.default_clock`::\n\n    code"
    assert gen_pages.rst_to_markdown(text) == (
        "See ``Clock`` and ``jpki.clock.default_clock``:\n\n    code"
    )


def test_readme_sections(gen_pages: ModuleType) -> None:
    assert "](architecture.md)" in gen_pages.readme_section("Architecture")  # links into docs/
    # A "# comment" line in a code block is no heading: the section goes on past it.
    assert "TextApSession" in gen_pages.readme_section("Using the card from Python")
    assert gen_pages.readme_section("lead").startswith("An open-source emulator")


def test_the_site_is_configured_offline_and_strict() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, re.MULTILINE)
    assert re.search(r"^\s+font: false", config, re.MULTILINE)  # no Google Fonts
    assert "extra_javascript" not in config
    assert "site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_every_api_reference_page_names_a_real_module_or_class() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    names = re.findall(r"reference/([\w.]+)\.md", config)
    assert {"apdu", "apdu.vocabulary", "card_emulator.Card", "harness.plugin"} <= set(names)
    for dotted in names:
        if importlib.util.find_spec(dotted) is None:
            module, _, attribute = dotted.rpartition(".")
            assert hasattr(importlib.import_module(module), attribute), dotted
