"""A card whose vpcd goes away comes back when vpcd listens again, or reports its reader lost.

Uses the fake vpcd of ``test_vpcd_client_fake`` (no pcscd needed); the whole chain — pcscd
killed under ``mynacard serve`` and restarted — is in ``tests/integration/test_exposure.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from card_emulator import Card
from readers.card_side.vpcd import VpcdClient, VpcdConnectError
from tests.conftest import DEMO_PERSONA
from tests.readers.test_vpcd_client_fake import FakeVpcd

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")
WRONG_PIN = bytes.fromhex("002000800439393939")
EMPTY_VERIFY = bytes.fromhex("00200080")


def _wait(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_card_returns_when_vpcd_listens_again_with_its_state(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    card = Card.from_persona(DEMO_PERSONA, image=image)
    first = FakeVpcd()
    port = first.port
    client = VpcdClient(card, port, reconnect_for=10.0).start(inserted=True, timeout=5)
    first.accept()
    first.send(b"\x01")  # power on
    assert first.exchange(SELECT_JPKI) == b"\x90\x00"
    assert first.exchange(SELECT_AUTH_PIN) == b"\x90\x00"
    assert first.exchange(WRONG_PIN) == b"\x63\xc2"
    first.close()  # pcscd exits: vpcd closes the connection and stops listening
    time.sleep(0.5)
    assert client.running and not client.lost
    second = FakeVpcd(port)  # pcscd is back on the same port
    try:
        second.accept()
        assert second.atr() == card.atr
        second.send(b"\x01")
        assert second.exchange(SELECT_JPKI) == b"\x90\x00"
        assert second.exchange(SELECT_AUTH_PIN) == b"\x90\x00"
        assert second.exchange(EMPTY_VERIFY) == b"\x63\xc2"  # the durable state came along
        assert client.reconnections >= 1  # a try may hit the old listener as it closes
    finally:
        client.stop()
        second.close()
        card.close()


def test_a_reader_that_stays_away_is_reported_lost() -> None:
    fake = FakeVpcd()
    lost = threading.Event()
    client = VpcdClient(
        Card.from_persona(DEMO_PERSONA), fake.port, reconnect_for=1.0, on_lost=lambda c: lost.set()
    ).start()
    fake.accept()
    started = time.monotonic()
    fake.close()
    assert lost.wait(10), "on_lost was not called"
    assert 0.9 <= time.monotonic() - started < 8
    assert client.lost
    assert isinstance(client.error, VpcdConnectError)
    assert str(fake.port) in str(client.error)
    assert _wait(lambda: not client.running, 5)


def test_without_reconnection_the_client_just_stops() -> None:
    fake = FakeVpcd()
    client = VpcdClient(Card.from_persona(DEMO_PERSONA), fake.port).start()
    fake.accept()
    fake.close()
    assert _wait(lambda: not client.running, 5)
    assert client.closed_by_peer and not client.lost
