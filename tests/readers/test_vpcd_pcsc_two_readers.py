"""EchoCard in a private pcscd with 2 vpcd readers, seen through pyscard and OpenSC.

One pcscd for the whole module (private socket, private reader.conf.d); each test plugs in
its own cards."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from smartcard import scard

from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.virtual_card import ECHO_ATR, EchoCard
from readers.card_side.vpcd import Removal, VpcdClient
from readers.scard import wait_for_card

pytestmark = pytest.mark.pcsc

SELECT_MF = list(bytes.fromhex("00A4000C023F00"))
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_E_NO_SMARTCARD = 0x8010000C


def _u32(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


@pytest.fixture(scope="module")
def pcsc() -> Iterator[PrivatePcscd]:
    with PrivatePcscd(2) as manager:
        yield manager


@pytest.fixture
def context() -> Iterator[Any]:
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    yield ctx
    scard.SCardReleaseContext(ctx)


@pytest.fixture
def card_in_a(pcsc: PrivatePcscd) -> Iterator[tuple[EchoCard, VpcdClient, str]]:
    reader = pcsc.readers[0]
    card = EchoCard()
    client = VpcdClient(card, reader.port, netns=reader.netns).start()
    assert wait_for_card(reader.name) == ECHO_ATR
    yield card, client, reader.name
    client.stop()
    wait_for_card(reader.name, present=False)


def _connect(ctx: Any, reader: str) -> tuple[Any, int]:
    hresult, handle, protocol = scard.SCardConnect(
        ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    return handle, protocol


def _transmit(handle: Any, protocol: int, apdu: list[int]) -> tuple[int, list[int]]:
    hresult, response = scard.SCardTransmit(handle, protocol, apdu)
    return _u32(hresult), list(response)


def test_readers_are_listed_with_their_ports(pcsc: PrivatePcscd) -> None:
    from smartcard.System import readers

    names = [r.name for r in pcsc.readers]
    assert names == ["mynacard vpcd A 00 00", "mynacard vpcd A 00 01"]
    assert [str(r) for r in readers()] == names
    assert pcsc.readers[1].port == pcsc.readers[0].port + 1
    assert pcsc.socket_path != "/run/pcscd/pcscd.comm"
    assert os.environ["PCSCLITE_CSOCK_NAME"] == pcsc.socket_path


@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc-tool not installed")
def test_a_separate_process_finds_the_readers_through_the_env(pcsc: PrivatePcscd) -> None:
    listing = subprocess.run(
        ["opensc-tool", "-l"],
        env={**os.environ, **pcsc.env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "mynacard vpcd A 00 00" in listing and "mynacard vpcd A 00 01" in listing


def test_select_read_binary_and_extended_length(
    card_in_a: tuple[EchoCard, VpcdClient, str], context: Any
) -> None:
    card, _client, reader = card_in_a
    handle, protocol = _connect(context, reader)
    assert protocol == scard.SCARD_PROTOCOL_T1
    assert card.power_ons >= 1  # vpcd's control messages reached the card
    assert _transmit(handle, protocol, SELECT_MF) == (0, [0x90, 0x00])

    hresult, response = _transmit(handle, protocol, list(bytes.fromhex("00B0000000")))
    assert hresult == 0 and len(response) == 258
    assert bytes(response) == bytes(range(256)) + b"\x90\x00"

    data = bytes(i * 7 & 0xFF for i in range(1000))
    command = bytes.fromhex("00D6000000") + len(data).to_bytes(2, "big") + data
    assert _transmit(handle, protocol, list(command)) == (0, [*data, 0x90, 0x00])

    hresult, response = _transmit(handle, protocol, list(bytes.fromhex("00B00000001000")))
    assert hresult == 0 and bytes(response) == bytes(range(256)) * 16 + b"\x90\x00"
    scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)


def test_removal_and_reinsertion_seen_by_get_status_change(
    pcsc: PrivatePcscd, context: Any
) -> None:
    reader = pcsc.readers[1]
    client = VpcdClient(EchoCard(), reader.port, netns=reader.netns).start()
    try:
        started = time.monotonic()
        assert pcsc.wait_for_card(reader.name) == ECHO_ATR
        inserted_after = time.monotonic() - started
        handle, protocol = _connect(context, reader.name)
        assert _transmit(handle, protocol, SELECT_MF) == (0, [0x90, 0x00])

        client.remove()
        started = time.monotonic()
        assert pcsc.wait_for_card(reader.name, present=False) == b""
        removed_after = time.monotonic() - started
        assert _transmit(handle, protocol, SELECT_MF)[0] == SCARD_W_REMOVED_CARD

        client.insert()
        assert pcsc.wait_for_card(reader.name) == ECHO_ATR
        hresult, _ = _transmit(handle, protocol, SELECT_MF)
        assert hresult == SCARD_W_REMOVED_CARD  # the old handle stays invalid ...
        hresult, protocol = scard.SCardReconnect(
            handle, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1, scard.SCARD_RESET_CARD
        )
        assert hresult == scard.SCARD_S_SUCCESS  # ... until SCardReconnect
        assert _transmit(handle, protocol, SELECT_MF) == (0, [0x90, 0x00])
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        print(f"\ninsertion seen after {inserted_after:.3f} s, removal after {removed_after:.3f} s")
    finally:
        client.stop()
        pcsc.wait_for_card(reader.name, present=False)


def test_removal_after_answering_apdu_k(
    card_in_a: tuple[EchoCard, VpcdClient, str], context: Any
) -> None:
    card, client, reader = card_in_a
    handle, protocol = _connect(context, reader)
    k = 3
    client.remove_on_apdu(k, when=Removal.AFTER_ANSWER)
    for _ in range(k):
        assert _transmit(handle, protocol, SELECT_MF) == (0, [0x90, 0x00])
    first, answer = _transmit(handle, protocol, SELECT_MF)
    again, _ = _transmit(handle, protocol, SELECT_MF)
    # vpcd finds the socket closed while sending APDU k+1: "transaction failed" (runbook §7)
    # until pcscd's presence poll (every 400 ms) marks the card removed; had the poll come
    # first, the handle would already say "removed". When vpcd's send of APDU k+1 wins the race
    # with the close, its receive then sees EOF: a "successful" transmit with no response at
    # all (as in test_removal_on_receiving_apdu_k) — never an answer.
    assert first in (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD) or (first, answer) == (0, []), (
        hex(first),
        answer,
    )
    assert again in (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD), hex(again)
    wait_for_card(reader, present=False)
    assert _transmit(handle, protocol, SELECT_MF)[0] == SCARD_W_REMOVED_CARD
    hresult, _, _ = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1
    )
    assert _u32(hresult) == SCARD_E_NO_SMARTCARD
    assert card.apdus == k
    print(f"\ntransmits after the removal: 0x{first:08X}, 0x{again:08X}")

    client.insert()  # put it back for the fixture's teardown
    wait_for_card(reader)


def test_removal_on_receiving_apdu_k(
    card_in_a: tuple[EchoCard, VpcdClient, str], context: Any
) -> None:
    card, client, reader = card_in_a
    handle, protocol = _connect(context, reader)
    client.remove_on_apdu(2, when=Removal.BEFORE_PROCESSING)
    assert _transmit(handle, protocol, SELECT_MF) == (0, [0x90, 0x00])
    # SCardTransmit "succeeds" with a 0-byte response (pyscard's high-level API raises
    # "Card returned no valid response")
    assert _transmit(handle, protocol, SELECT_MF) == (0, [])
    again, _ = _transmit(handle, protocol, SELECT_MF)
    assert again in (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD), hex(again)
    wait_for_card(reader, present=False)
    assert _transmit(handle, protocol, SELECT_MF)[0] == SCARD_W_REMOVED_CARD
    assert card.apdus == 1
    client.insert()
    wait_for_card(reader)


def _round_trips(handle: Any, protocol: int, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        hresult, _ = scard.SCardTransmit(handle, protocol, SELECT_MF)
        times.append(time.perf_counter() - started)
        assert hresult == scard.SCARD_S_SUCCESS
    return times


def test_round_trip_latency_with_and_without_quickack(pcsc: PrivatePcscd, context: Any) -> None:
    results = {}
    for quickack, count in ((True, 2000), (False, 12)):
        reader = pcsc.readers[0 if quickack else 1]
        client = VpcdClient(EchoCard(), reader.port, quickack=quickack, netns=reader.netns).start()
        try:
            wait_for_card(reader.name)
            handle, protocol = _connect(context, reader.name)
            _round_trips(handle, protocol, 5 if not quickack else 50)  # warm up
            times = sorted(_round_trips(handle, protocol, count))
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        finally:
            client.stop()
            wait_for_card(reader.name, present=False)
        results[quickack] = times
        median = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        label = "with TCP_QUICKACK   " if quickack else "without TCP_QUICKACK"
        print(f"\n{label}: n={count} median {median:.3f} ms, p99 {p99:.3f} ms")
    assert statistics.median(results[True]) < 0.010  # the 44 ms delayed-ACK stall is gone
