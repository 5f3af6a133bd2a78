"""VpcdClient against a fake vpcd (a plain TCP listener in the test): framing, control
messages, hooks, removal faults, reconnects. No pcscd needed."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from apdu import TraceRecord
from readers.card_side.virtual_card import ECHO_ATR, EchoCard
from readers.card_side.vpcd import Removal, VpcdClient, VpcdConnectError

TIMEOUT = 5.0


class FakeVpcd:
    """The reader side of the vpcd protocol, driven step by step by the test."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4)
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        conn, _ = self.listener.accept()
        conn.settimeout(TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        return conn

    def send(self, payload: bytes, *, split: bool = False) -> None:
        assert self.conn is not None
        frame = struct.pack(">H", len(payload)) + payload
        if split:  # one byte per segment: the card must loop until a message is complete
            for i in range(len(frame)):
                self.conn.sendall(frame[i : i + 1])
        else:
            self.conn.sendall(frame)

    def _recv_exact(self, size: int) -> bytes:
        assert self.conn is not None
        buf = b""
        while len(buf) < size:
            chunk = self.conn.recv(size - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def recv(self) -> bytes:
        (size,) = struct.unpack(">H", self._recv_exact(2))
        return self._recv_exact(size)

    def exchange(self, apdu: bytes, **kw: bool) -> bytes:
        self.send(apdu, **kw)
        return self.recv()

    def atr(self) -> bytes:
        return self.exchange(b"\x04")

    def assert_closed(self) -> None:
        assert self.conn is not None
        try:
            data = self.conn.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def _started(card: EchoCard, fake: FakeVpcd, **kw: object) -> VpcdClient:
    client = VpcdClient(card, fake.port, **kw)  # type: ignore[arg-type]
    client.start()
    fake.accept()
    return client


def test_atr_and_control_messages(vpcd: FakeVpcd) -> None:
    card = EchoCard()
    with VpcdClient(card, vpcd.port) as client:
        vpcd.accept()
        assert client.connected
        assert vpcd.atr() == ECHO_ATR
        vpcd.send(b"\x01")  # power on: no reply
        assert vpcd.atr() == ECHO_ATR  # answered after the power-on was handled
        assert card.powered and card.power_ons == 1
        vpcd.send(b"\x02")
        vpcd.send(b"\x00")
        vpcd.send(b"\x07")  # unknown control byte: ignored
        assert vpcd.atr() == ECHO_ATR
        assert card.resets == 1 and not card.powered


def test_apdus_split_into_single_bytes_are_reassembled(vpcd: FakeVpcd) -> None:
    with VpcdClient(EchoCard(), vpcd.port):
        vpcd.accept()
        assert vpcd.exchange(bytes.fromhex("00A4000C023F00"), split=True) == b"\x90\x00"
        data = bytes(range(256)) * 4
        command = bytes.fromhex("00D6000000") + len(data).to_bytes(2, "big") + data
        assert vpcd.exchange(command, split=True) == data + b"\x90\x00"
        big = vpcd.exchange(bytes.fromhex("00B00000000000"))
        assert len(big) == 0xFFFF  # the largest frame vpcd can carry


def test_on_exchange_sees_every_exchange_and_event_and_cannot_break_the_card(
    vpcd: FakeVpcd,
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    events: list[str] = []
    records: list[TraceRecord] = []

    def hook(record: TraceRecord) -> None:
        records.append(record)
        if record.event:
            events.append(record.event)
            return
        seen.append((record.command, record.response))
        if record.command[1] == 0xCA:
            raise RuntimeError("buggy tracer")

    with VpcdClient(EchoCard(), vpcd.port, on_exchange=hook, reader="Test 00") as client:
        vpcd.accept()
        vpcd.atr()  # control messages are not APDUs
        assert vpcd.exchange(bytes.fromhex("00CA0000021122")) == b"\x11\x22\x90\x00"
        assert vpcd.exchange(bytes.fromhex("00A4040000")) == b"\x90\x00"
        assert client.apdu_count == 2
    assert seen == [
        (bytes.fromhex("00CA0000021122"), b"\x11\x22\x90\x00"),
        (bytes.fromhex("00A4040000"), b"\x90\x00"),
    ]
    assert events == ["insert", "remove"]
    assert {r.reader for r in records} == {"Test 00"}
    exchanges = [r for r in records if not r.event]
    assert all(r.duration is not None and r.duration >= 0 for r in exchanges)
    assert exchanges[0].timestamp <= exchanges[1].timestamp


class RaisingCard(EchoCard):
    def transmit(self, command: bytes) -> bytes:
        raise ValueError("bug in the card")


def test_a_card_that_raises_answers_6f00(vpcd: FakeVpcd) -> None:
    with VpcdClient(RaisingCard(), vpcd.port):
        vpcd.accept()
        assert vpcd.exchange(bytes.fromhex("00A4040000")) == b"\x6f\x00"
        assert vpcd.atr() == ECHO_ATR  # still alive


def test_removal_after_answering_the_nth_apdu(vpcd: FakeVpcd) -> None:
    card = EchoCard()
    client = _started(card, vpcd)
    try:
        client.remove_on_apdu(2, when=Removal.AFTER_ANSWER)
        assert vpcd.atr() == ECHO_ATR  # does not count
        assert vpcd.exchange(bytes.fromhex("00A4040000")) == b"\x90\x00"
        assert vpcd.exchange(bytes.fromhex("00CA000001AA")) == b"\xaa\x90\x00"
        vpcd.assert_closed()
        assert card.apdus == 2
        assert not client.closed_by_peer
        client.insert()  # re-insertion: a new connection
        vpcd.accept()
        assert client.connected and client.connections == 2
        assert vpcd.exchange(bytes.fromhex("00A4040000")) == b"\x90\x00"
    finally:
        client.stop()


@pytest.mark.parametrize(
    ("when", "processed"),
    [(Removal.BEFORE_PROCESSING, 1), (Removal.AFTER_PROCESSING, 2)],
)
def test_removal_on_receiving_the_nth_apdu(vpcd: FakeVpcd, when: Removal, processed: int) -> None:
    card = EchoCard()
    client = _started(card, vpcd)
    try:
        client.remove_on_apdu(2, when=when)
        assert vpcd.exchange(bytes.fromhex("00A4040000")) == b"\x90\x00"
        vpcd.send(bytes.fromhex("00CA000001AA"))
        vpcd.assert_closed()  # no answer
        assert card.apdus == processed
    finally:
        client.stop()


def test_remove_and_insert_from_another_thread(vpcd: FakeVpcd) -> None:
    client = _started(EchoCard(), vpcd)
    try:
        assert vpcd.atr() == ECHO_ATR
        client.remove()
        assert not client.connected
        vpcd.assert_closed()
        client.remove()  # idempotent
        client.insert()
        vpcd.accept()
        assert vpcd.atr() == ECHO_ATR
    finally:
        client.stop()
    vpcd.assert_closed()
    assert not client.running


def test_remove_from_inside_the_hook_answers_first(vpcd: FakeVpcd) -> None:
    holder: list[VpcdClient] = []

    def hook(record: TraceRecord) -> None:
        if record.command[1:2] == b"\xee":
            holder[0].remove()

    client = VpcdClient(EchoCard(), vpcd.port, on_exchange=hook)
    holder.append(client)
    client.start()
    try:
        vpcd.accept()
        assert vpcd.exchange(bytes.fromhex("00EE000001AB")) == b"\xab\x90\x00"
        vpcd.assert_closed()
    finally:
        client.stop()


def test_start_with_the_card_out(vpcd: FakeVpcd) -> None:
    client = VpcdClient(EchoCard(), vpcd.port).start(inserted=False)
    try:
        assert client.running and not client.connected
        client.insert()
        vpcd.accept()
        assert vpcd.atr() == ECHO_ATR
    finally:
        client.stop()


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_connect_is_retried_until_vpcd_listens() -> None:
    port = _free_port()
    holder: list[FakeVpcd] = []
    timer = threading.Timer(0.3, lambda: holder.append(FakeVpcd(port)))
    timer.start()
    client = VpcdClient(EchoCard(), port, connect_timeout=5.0)
    try:
        client.start()  # returns once connected
        timer.join()
        fake = holder[0]
        fake.accept()
        assert fake.atr() == ECHO_ATR
    finally:
        client.stop()
        timer.join()
        for fake in holder:
            fake.close()


def test_connect_gives_up_after_the_timeout() -> None:
    client = VpcdClient(EchoCard(), _free_port(), connect_timeout=0.3)
    with pytest.raises(VpcdConnectError, match="not reachable"):
        client.start()
    assert not client.running
    with pytest.raises(VpcdConnectError):
        client.run()


def test_vpcd_closing_ends_the_loop(vpcd: FakeVpcd) -> None:
    client = _started(EchoCard(), vpcd)
    assert vpcd.conn is not None
    vpcd.conn.close()
    vpcd.conn = None
    assert client.join(TIMEOUT)
    assert client.closed_by_peer and not client.running and not client.connected
    assert client.error is None
    with pytest.raises(RuntimeError, match="not running"):
        client.insert()


def test_blocking_run_returns_on_stop(vpcd: FakeVpcd) -> None:
    client = VpcdClient(EchoCard(), vpcd.port)
    runner = threading.Thread(target=client.run)
    runner.start()
    try:
        vpcd.accept()
        assert vpcd.atr() == ECHO_ATR
        assert client.running
    finally:
        client.stop()
        runner.join(TIMEOUT)
    assert not runner.is_alive()
    vpcd.assert_closed()


def test_several_cards_in_one_process() -> None:
    fakes = [FakeVpcd() for _ in range(4)]
    cards = [EchoCard(atr=bytes([0x3B, 0x00 + i])) for i in range(4)]
    clients = [VpcdClient(card, fake.port).start() for card, fake in zip(cards, fakes, strict=True)]
    try:
        for i, fake in enumerate(fakes):
            fake.accept()
            assert fake.atr() == bytes([0x3B, i])
            assert fake.exchange(bytes([0, 0xCA, 0, 0, 1, i])) == bytes([i, 0x90, 0x00])
    finally:
        for client in clients:
            client.stop()
        for fake in fakes:
            fake.close()


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="port"):
        VpcdClient(EchoCard(), 0)
    client = VpcdClient(EchoCard(), 35963)
    with pytest.raises(ValueError, match="n must be"):
        client.remove_on_apdu(0)


class _VanishingCard(EchoCard):
    """Removes itself on INS EE and has no answer (as a relayed card whose real card went)."""

    client: VpcdClient | None = None

    def transmit(self, command: bytes) -> bytes:
        if command[1:2] == b"\xee" and self.client is not None:
            self.client.remove()
            return b""
        return super().transmit(command)


def test_a_card_that_removes_itself_without_an_answer_closes_unanswered(
    vpcd: FakeVpcd,
) -> None:
    card = _VanishingCard()
    seen: list[TraceRecord] = []
    client = VpcdClient(card, vpcd.port, on_exchange=seen.append)
    card.client = client
    client.start()
    try:
        vpcd.accept()
        assert vpcd.exchange(bytes.fromhex("00A4040C00")) == b"\x90\x00"
        vpcd.send(bytes.fromhex("00EE0000"))
        vpcd.assert_closed()  # no frame at all, not an empty one
        assert [r.event for r in seen] == ["insert", "", "remove"]
    finally:
        client.stop()


def test_a_latency_fault_is_a_timer_the_other_cards_are_served_meanwhile() -> None:
    from harness.faults import FaultyCard, Scenario

    slow_card = FaultyCard(
        EchoCard(),
        Scenario.from_mapping({"fault": [{"kind": "latency", "match": "00 CA", "seconds": 0.6}]}),
    )
    slow_fake, quick_fake = FakeVpcd(), FakeVpcd()
    slow = VpcdClient(slow_card, slow_fake.port).start()  # type: ignore[arg-type]
    quick = VpcdClient(EchoCard(), quick_fake.port).start()
    try:
        slow_fake.accept()
        quick_fake.accept()
        started = time.monotonic()
        slow_fake.send(bytes.fromhex("00CA000001AA"))  # answered 0.6 s later
        for _ in range(20):  # the same loop serves the other card meanwhile
            assert quick_fake.exchange(bytes.fromhex("00A4040000")) == b"\x90\x00"
        assert time.monotonic() - started < 0.4
        assert slow_fake.recv() == b"\xaa\x90\x00"
        assert time.monotonic() - started >= 0.55
        assert slow_fake.atr() == ECHO_ATR  # frames after the delayed one: in order
        assert slow_card.fired == [(1, "latency")]
    finally:
        slow.stop()
        quick.stop()
        slow_fake.close()
        quick_fake.close()
