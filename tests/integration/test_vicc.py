"""The virtualsmartcard (vicc) adapter serves the demo card through the library's VirtualICC
loop: pyscard SELECTs the JPKI-AP and reads a certificate through it."""

from __future__ import annotations

import logging
import sys

import pytest

from card_emulator import Card
from readers.card_side.reader_conf import VpcdReader
from readers.card_side.vicc import (
    ViccConnectError,
    ViccRunner,
    ViccUnavailableError,
    load_virtualsmartcard,
    serve_vicc,
    smartcard_os,
)
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport
from readers.scard import wait_for_card
from tests.integration.conftest import DEMO_PERSONA, der_object

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def library() -> object:
    try:
        return load_virtualsmartcard()
    except ViccUnavailableError as exc:
        pytest.skip(str(exc))


def test_the_card_as_a_smartcard_os(library: object) -> None:
    card = Card.from_persona(DEMO_PERSONA)
    os_ = smartcard_os(card)
    assert isinstance(os_, library.SmartcardOS)  # type: ignore[attr-defined]
    assert os_.getATR() == card.atr
    os_.powerUp()
    assert os_.execute(bytes.fromhex("00A4040C0AD392F000260100000001")) == b"\x90\x00"
    os_.reset()
    os_.powerDown()
    assert os_.execute(bytes.fromhex("00A4040C05A000000001")) == b"\x6a\x82"  # unknown AID


def test_vicc_serves_the_card_through_pcscd(
    library: object, spare_readers: list[tuple[int, VpcdReader]]
) -> None:
    _, reader = spare_readers[0]
    card = Card.from_persona(DEMO_PERSONA)
    root_handlers = list(logging.getLogger().handlers)
    runner = serve_vicc(card, reader.port, netns=reader.netns)
    try:
        assert wait_for_card(reader.name) == card.atr
        with PcscTransport(reader.name) as transport:
            assert transport.transmit(bytes.fromhex("00A4040C0AD392F000260100000001")) == (
                b"\x90\x00"
            )
            client = MynaClient(transport)
            certificate = client.read_ef(0x000A)
            assert certificate == der_object(card.content.application("jpki").files[0x000A])
            whole = transport.transmit(bytes.fromhex("00B08A00000000"))  # extended Le, too
            assert whole == card.content.application("jpki").files[0x000A] + b"\x90\x00"
    finally:
        runner.stop()
    wait_for_card(reader.name, present=False)
    assert not runner.running and not runner.closed_by_peer and runner.error is None
    assert logging.getLogger().handlers == root_handlers  # the library configured nothing


def test_vicc_reports_an_unreachable_vpcd(library: object) -> None:
    runner = ViccRunner(Card.from_persona(DEMO_PERSONA), 1, connect_timeout=0.2)
    with pytest.raises(ViccConnectError, match="not reachable"):
        runner.start()


def test_a_missing_library_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "virtualsmartcard.VirtualSmartcard", None)
    with pytest.raises(ViccUnavailableError) as missing:
        load_virtualsmartcard()
    text = str(missing.value)
    assert "python3-virtualsmartcard" in text and "pycryptodome" in text
    assert "/usr/lib/python3/site-packages/virtualsmartcard" in text
