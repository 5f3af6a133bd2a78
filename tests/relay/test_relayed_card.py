"""RelayedCard without pcscd: a fake PC/SC connection and a fake virtual reader slot."""

from __future__ import annotations

from typing import cast

import pytest

from harness.cli import main
from harness.relay.relayed_card import SCARD_W_RESET_CARD, RelayedCard
from readers.host_side.pcsc import PcscTransport, PcscTransportError
from readers.scard import SCARD_W_REMOVED_CARD

ATR = bytes.fromhex("3BE000FF8131FE4514")


class FakeTransport:
    def __init__(self) -> None:
        self.connected = False
        self.calls: list[str] = []
        self.fail: list[int] = []  # SCARD codes the next transmits fail with
        self.atr = ATR

    def connect(self) -> FakeTransport:
        self.calls.append("connect")
        self.connected = True
        return self

    def disconnect(self, *, reset: bool = False, unpower: bool = False) -> None:
        self.calls.append("unpower" if unpower else "reset-disconnect" if reset else "disconnect")
        self.connected = False

    def reconnect(self, *, reset: bool = True) -> None:
        self.calls.append("reconnect-reset" if reset else "reconnect-leave")
        self.connected = True

    def transmit(self, command: bytes) -> bytes:
        self.calls.append(command.hex())
        if self.fail:
            raise PcscTransportError(self.fail.pop(0), "fake")
        return b"\x90\x00"


class FakeSlot:
    def __init__(self) -> None:
        self.events: list[str] = []

    def insert(self, *, wait: bool = True, timeout: float | None = None) -> None:
        self.events.append("insert")

    def remove(self, *, wait: bool = True, timeout: float = 5.0) -> None:
        self.events.append("remove")


def _card() -> tuple[RelayedCard, FakeTransport, FakeSlot]:
    transport = FakeTransport()
    card = RelayedCard("Real Reader 00 00", transport=cast(PcscTransport, transport)).open()
    slot = FakeSlot()
    card._slot = slot  # attach() without the presence thread
    return card, transport, slot


def test_atr_and_apdus_pass_unchanged() -> None:
    card, transport, _ = _card()
    assert card.atr == ATR
    assert card.transmit(bytes.fromhex("00A4040C0AD392F000260100000001")) == b"\x90\x00"
    assert transport.calls == ["connect", "00a4040c0ad392f000260100000001"]


def test_power_events_map_to_the_real_connection() -> None:
    card, transport, _ = _card()
    card.power_off()
    card.power_on()
    card.reset()
    assert transport.calls == ["connect", "unpower", "connect", "reconnect-reset"]


def test_a_reset_by_another_client_is_reconnected_and_retried() -> None:
    card, transport, slot = _card()
    transport.fail = [SCARD_W_RESET_CARD]
    assert card.transmit(b"\x00\xa4\x00\x00") == b"\x90\x00"
    assert transport.calls[1:] == ["00a40000", "reconnect-leave", "00a40000"]
    assert slot.events == []


def test_a_card_gone_during_an_apdu_empties_the_virtual_reader_unanswered() -> None:
    card, transport, slot = _card()
    transport.fail = [SCARD_W_REMOVED_CARD]
    assert card.transmit(b"\x00\xa4\x00\x00") == b""
    assert slot.events == ["remove"] and not card.present and card.removals == 1


def test_presence_changes_are_passed_on() -> None:
    card, _transport, slot = _card()
    card._presence_changed(False, b"")
    card._presence_changed(False, b"")  # seen twice: removed once
    other = bytes.fromhex("3B8801") + b"MYNAECHO"
    card._presence_changed(True, other)
    assert slot.events == ["remove", "insert"]
    assert card.atr == other and card.present and card.insertions == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vpcd", "host:port"], "--vpcd 'host:port' is not HOST:PORT"),
        (["--vpcd", "1:2", "--private-socket"], "not allowed with argument"),
        (["--reconnect-timeout", "0"], "--reconnect-timeout must be more than 0"),
        (["--trace", "/no/such/dir/t.jsonl"], "directory /no/such/dir does not exist"),
    ],
)
def test_bad_arguments_exit_2_before_any_pc_sc_call(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["relay", "--reader", "0", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
