"""Four EchoCards in a private pcscd with 4 vpcd readers, answering four client threads at
once; detection of a running pcscd; a clean stop by PID."""

from __future__ import annotations

import os
import random
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from smartcard import scard

from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.running_pcscd import find_running_vpcd
from readers.card_side.virtual_card import ECHO_ATR, EchoCard
from readers.card_side.vpcd import VpcdClient
from readers.scard import PcscError, list_readers, wait_for_card, wait_for_readers

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def pcsc() -> Iterator[PrivatePcscd]:
    with PrivatePcscd(4) as manager:
        yield manager


@pytest.fixture(scope="module")
def cards(pcsc: PrivatePcscd) -> Iterator[list[tuple[EchoCard, VpcdClient]]]:
    plugged = []
    for reader in pcsc.readers:
        card = EchoCard()
        plugged.append((card, VpcdClient(card, reader.port, netns=reader.netns).start()))
    for reader in pcsc.readers:
        assert wait_for_card(reader.name) == ECHO_ATR
    yield plugged
    for _, client in plugged:
        client.stop()


def test_four_readers_are_listed(pcsc: PrivatePcscd) -> None:
    names = [r.name for r in pcsc.readers]
    assert names == [
        "mynacard vpcd A 00 00",
        "mynacard vpcd A 00 01",
        "mynacard vpcd B 00 00",
        "mynacard vpcd B 00 01",
    ]
    # PC/SC lists readers in the order of pcscd's reader.conf.d directory, not A, B, ...
    assert sorted(list_readers(socket_path=pcsc.socket_path)) == names
    assert len({r.port for r in pcsc.readers}) == 4
    assert sorted(wait_for_readers(names, timeout=1.0)) == names


def test_waits_time_out_or_fail_clearly(pcsc: PrivatePcscd) -> None:
    with pytest.raises(TimeoutError, match="no such reader"):
        wait_for_readers(["no such reader 00 00"], timeout=0.2)
    with pytest.raises(PcscError, match="no reader named"):
        wait_for_card("no such reader 00 00", timeout=1.0)
    with pytest.raises(TimeoutError, match="not present"):
        wait_for_card(pcsc.readers[0].name, timeout=0.2)  # no card plugged in yet
    with pytest.raises(PcscError, match="talks to"):
        wait_for_card(pcsc.readers[0].name, socket_path="/run/pcscd/pcscd.comm")


def _client_thread(reader: str, seed: int, count: int, errors: list[str]) -> None:
    rng = random.Random(seed)
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        hresult, handle, protocol = scard.SCardConnect(
            ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1
        )
        if hresult != scard.SCARD_S_SUCCESS:
            errors.append(f"{reader}: connect {scard.SCardGetErrorMessage(hresult)}")
            return
        for i in range(count):
            data = rng.randbytes(rng.randint(1, 255))
            command = bytes([0x00, 0xCA, 0x00, 0x00, len(data)]) + data
            hresult, response = scard.SCardTransmit(handle, protocol, list(command))
            if hresult != scard.SCARD_S_SUCCESS or bytes(response) != data + b"\x90\x00":
                errors.append(f"{reader}: APDU {i} got {hresult:#x} {bytes(response).hex()}")
                return
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(ctx)


def test_four_cards_answer_four_threads_concurrently(
    pcsc: PrivatePcscd, cards: list[tuple[EchoCard, VpcdClient]]
) -> None:
    count = 300
    before = [card.apdus for card, _ in cards]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_client_thread, args=(reader.name, seed, count, errors))
        for seed, reader in enumerate(pcsc.readers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert [card.apdus - b for (card, _), b in zip(cards, before, strict=True)] == [count] * 4


def test_find_running_vpcd_reads_ports_from_the_config(
    pcsc: PrivatePcscd, cards: list[tuple[EchoCard, VpcdClient]]
) -> None:
    cards[3][1].remove()
    wait_for_card(pcsc.readers[3].name, present=False)
    try:
        running = find_running_vpcd(socket_path=pcsc.socket_path, config_dir=pcsc.config_dir)
        assert running is not None
        assert running.readers == pcsc.readers
        assert running.occupied == {r.name for r in pcsc.readers[:3]}
        assert running.free_readers == (pcsc.readers[3],)
        assert running.env == {"PCSCLITE_CSOCK_NAME": pcsc.socket_path}
    finally:
        cards[3][1].insert()
        wait_for_card(pcsc.readers[3].name)


def _pcscd_processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "pcscd" in cmdline and marker in cmdline:
            found.append(int(entry.name))
    return found


def test_a_second_private_pcscd_beside_the_first_and_a_clean_stop(pcsc: PrivatePcscd) -> None:
    """Explicit socket, environment untouched: the module's pcscd stays this process's one,
    the second is reached by subprocesses (here: the readiness check and the detection)."""
    with tempfile.TemporaryDirectory(prefix="mynacard-test-") as scratch:
        second = PrivatePcscd(
            2, name="second vpcd", socket_path=os.path.join(scratch, "s.comm"), set_environ=False
        )
        with second:
            pid = second.pid
            assert pid is not None and second.running
            tmpdir = str(Path(second.config_dir).parent)
            assert _pcscd_processes_mentioning(tmpdir) == [pid]
            assert [r.name for r in second.readers] == [
                "second vpcd A 00 00",
                "second vpcd A 00 01",
            ]
            assert os.environ["PCSCLITE_CSOCK_NAME"] == pcsc.socket_path
            client = VpcdClient(
                EchoCard(), second.readers[0].port, netns=second.readers[0].netns
            ).start()
            running = find_running_vpcd(
                socket_path=second.socket_path, config_dir=second.config_dir
            )
            assert running is not None and running.readers == second.readers
        # stopped: SIGTERM to its PID, reaped, files gone, the card saw vpcd close
        assert not second.running and second.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert _pcscd_processes_mentioning(tmpdir) == []
        assert not os.path.exists(tmpdir)
        assert not os.path.exists(os.path.join(scratch, "s.comm"))
        assert client.join(5)
        assert client.closed_by_peer and not client.running
    assert pcsc.running  # the module's pcscd is untouched
    assert sorted(list_readers()) == sorted(r.name for r in pcsc.readers)
