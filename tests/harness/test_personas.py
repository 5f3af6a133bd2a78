"""harness.personas: cards and persona files from tables, validated without a TOML round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from card_emulator import persona as persona_module
from harness import personas
from tests.conftest import DEMO_PERSONA, exchange

SELECT_JPKI = "00A4040C0AD392F000260100000001"
VERIFY_AUTH_EMPTY = "00200098"  # P2 = 80 | 18, no data: the auth PIN's tries left


def _no_toml(*_: object, **__: object) -> None:
    raise AssertionError("persona TOML text was written or parsed")


def test_a_card_with_overrides_is_made_without_toml_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(personas, "to_toml", _no_toml)
    monkeypatch.setattr(persona_module, "parse", _no_toml)
    card = personas.card_from_persona(DEMO_PERSONA, counters={"jpki_auth": 1})
    assert exchange(card, SELECT_JPKI)[1] == 0x9000
    assert exchange(card, VERIFY_AUTH_EMPTY)[1] == 0x63C1


def test_the_same_overrides_reuse_one_personalization() -> None:
    first = personas.card_from_persona(DEMO_PERSONA, counters={"jpki_sign": 2})
    second = personas.card_from_persona(DEMO_PERSONA, counters={"jpki_sign": 2})
    digest = first.content.meta["persona_digest"]
    assert second.content.meta["persona_digest"] == digest
    assert first.content.application("jpki").files == second.content.application("jpki").files
    other = personas.card_from_persona(DEMO_PERSONA, counters={"jpki_sign": 3})
    assert other.content.meta["persona_digest"] != digest


def test_a_written_persona_is_the_file_load_reads(tmp_path: Path) -> None:
    overrides = {"label": "remapped", "policy": {"remap": {"B0 6986": "6A82", "* 6D00": "6E00"}}}
    path = tmp_path / "remapped.toml"
    persona = personas.written_persona(path, DEMO_PERSONA, **overrides)
    loaded = persona_module.load(path)
    assert persona == loaded  # digest included: the file's SHA-256
    assert loaded.policy.remap == ((-1, 0x6D00, 0x6E00), (0xB0, 0x6986, 0x6A82))
    data = personas.merge(personas.persona_data(DEMO_PERSONA), overrides)
    assert replace(persona_module.from_mapping(data, base=tmp_path), digest="") == replace(
        loaded, digest=""
    )


def test_write_persona_refuses_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    with pytest.raises(persona_module.PersonaError, match=r"^.*bad\.toml: holder\.sex: "):
        personas.write_persona(path, DEMO_PERSONA, holder={"sex": 7})
    assert not path.exists()
    assert personas.write_persona(path, DEMO_PERSONA, holder={"sex": 1}) == path
    assert persona_module.load(path).holder.sex == 1


def test_the_demo_persona_is_package_data_and_vectors_links_to_it() -> None:
    """One demo persona: the ``harness`` package's (what an installed wheel reads), which the
    documented ``vectors/personas/demo.toml`` of a clone is a symbolic link to."""
    packaged = personas.demo_persona_path()
    assert packaged == Path(personas.__file__).parent / "data" / "personas" / "demo.toml"
    assert DEMO_PERSONA.is_symlink()
    assert DEMO_PERSONA.resolve() == packaged.resolve()


def test_the_demo_tables_are_the_packaged_demo_persona() -> None:
    assert personas.persona_data() == personas.DEMO
