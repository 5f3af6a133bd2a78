"""Personalization with an explicit PKI signs everything with it and leaves the default alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.card import throwaway_pki
from card_emulator.personalize import personalize
from jpki.pki_store import PkiStore
from readers.host_side.client import MynaClient
from readers.host_side.kenmen_ap import KenmenReader
from readers.host_side.text_ap import TextApReader
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA


def test_a_private_store_signs_every_record_and_the_default_store_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "default-pki"  # empty: must stay so
    monkeypatch.setenv("MYNACARD_PKI", str(default))
    private = PkiStore.open(tmp_path / "private-pki")
    content = personalize(persona_module.load(DEMO_PERSONA), store=private)
    card = Card(content)
    client = MynaClient(InProcessTransport(card))
    text = TextApReader(client)
    text.unlock_with_pin("1234")
    number, _ = text.verify(private.cv_root_public_key("text"))
    assert number == "314159265352"
    face = KenmenReader(client)
    face.unlock_with_check_code_a("314159265352")
    face.face(private.cv_root_public_key("kenmen"))
    assert not default.exists() or not any(default.iterdir())


def test_a_throwaway_card_writes_no_certificate_record_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Card.from_persona(path)`` without ``pki=``: an in-memory PKI, nothing on disk."""
    default, home, cwd = (tmp_path / name for name in ("default-pki", "home", "cwd"))
    for directory in (default, home, cwd):
        directory.mkdir()
    monkeypatch.setenv("MYNACARD_PKI", str(default))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    persona = tmp_path / "throwaway.toml"  # a persona no other test personalized in-process
    persona.write_text(
        Path(DEMO_PERSONA).read_text("utf-8").replace('label = "demo"', 'label = "throwaway"'),
        "utf-8",
    )
    card = Card.from_persona(persona)
    client = MynaClient(InProcessTransport(card))
    client.select_jpki()
    issued = client.certificate(0x000A)
    pki = throwaway_pki()
    assert pki.is_in_memory
    assert issued.serial_number in {r.serial for r in pki.certificates(persona="throwaway")}
    assert [p for d in (default, home, cwd) for p in d.rglob("*")] == []
