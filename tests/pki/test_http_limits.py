"""The PKI server's limits, over real sockets to a real :class:`PkiServer` on 127.0.0.1.

A whole-request deadline against slowloris clients (and idle keep-alive connections), a cap on
open connections, strict Content-Length framing, and ``pki serve --port`` / ``--serial``
checked by argparse before anything starts. Timing bounds are deliberately loose (a noisy
two-core machine): they separate "bounded by the deadline" from "held for ever".
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509

from harness import cli
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiStore
from jpki.service import PkiServer

HOST = "127.0.0.1"
DEADLINE = 1.0
"""The ``request_timeout`` of the deadline tests, seconds."""
CRL_PATH = "/crl/test-auth-g3.crl"
TRICKLE_PREFIX = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _read_to_end(connection: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    connection.settimeout(seconds)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _fetch_crl(server: PkiServer, store: PkiStore) -> x509.CertificateRevocationList:
    """GET the generation-3 auth CRL; it must come back 200 and signed by its CA."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        connection.request("GET", CRL_PATH)
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 200, body[:200]
    crl = x509.load_der_x509_crl(body)
    issuer = store.authority(Tree.AUTH, NameStyle.TEST, 3).certificate
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    return crl


def _ocsp_status(body: bytes) -> str:
    return str(asn1_ocsp.OCSPResponse.load(body)["response_status"].native)


# --- the deadline ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Trickler:
    """One slowloris connection: sends a never-ending header a byte at a time."""

    connection: socket.socket
    opened: float
    sent: int = 0
    answer: bytes = b""
    closed: float | None = None

    def next_byte(self) -> bytes:
        index = self.sent
        return TRICKLE_PREFIX[index : index + 1] if index < len(TRICKLE_PREFIX) else b"a"


@dataclasses.dataclass
class _Attack:
    """What a slowloris run saw."""

    tricklers: list[_Trickler] = dataclasses.field(default_factory=list)
    peak_connections: int = 0
    peak_threads: int = 0


def _slowloris(
    server: PkiServer, attack: _Attack, *, count: int, sustain: float, give_up: float
) -> None:
    """Keep ``count`` trickling connections open for ``sustain`` s (replacing those the server
    closes), then wait for the server to close the rest, at most until ``give_up`` s."""
    selector = selectors.DefaultSelector()
    started = time.monotonic()

    def open_one() -> None:
        connection = socket.create_connection((HOST, server.port), timeout=5)
        connection.setblocking(False)
        trickler = _Trickler(connection, time.monotonic())
        attack.tricklers.append(trickler)
        selector.register(connection, selectors.EVENT_READ, trickler)

    def close(trickler: _Trickler) -> None:
        trickler.closed = time.monotonic()
        selector.unregister(trickler.connection)
        trickler.connection.close()

    for _ in range(count):
        open_one()
    next_trickle = time.monotonic()
    while selector.get_map():
        now = time.monotonic()
        if now - started > give_up:
            break
        if now >= next_trickle:  # one byte each, every 0.2 s
            next_trickle = now + 0.2
            for key in list(selector.get_map().values()):
                trickler = key.data
                with contextlib.suppress(OSError):  # closed by the server: seen when reading
                    trickler.sent += trickler.connection.send(trickler.next_byte())
        for key, _ in selector.select(timeout=0.05):
            trickler = key.data
            try:
                data = trickler.connection.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            trickler.answer += data
            if not data:
                close(trickler)
        if now - started < sustain:
            for _ in range(count - len(selector.get_map())):
                open_one()
        attack.peak_connections = max(attack.peak_connections, server.active_connections)
        attack.peak_threads = max(attack.peak_threads, threading.active_count())
    for key in list(selector.get_map().values()):  # left open by the server: not closed
        key.data.connection.close()
    selector.close()


def test_slowloris_connections_are_cut_at_the_deadline(pki: PkiStore) -> None:
    count = 100
    threads_before = threading.active_count()
    with PkiServer(pki, request_timeout=DEADLINE, max_connections=4 * count) as server:
        attack = _Attack()
        attacker = threading.Thread(
            target=_slowloris,
            args=(server, attack),
            kwargs={"count": count, "sustain": 2.5, "give_up": 2.5 + 8 * DEADLINE},
        )
        attacker.start()
        time.sleep(1.5)  # the first wave has been cut and replaced: a legitimate client now
        asked = time.monotonic()
        _fetch_crl(server, pki)
        connection = http.client.HTTPConnection(HOST, server.port, timeout=10)
        connection.request("POST", "/ocsp/test-auth", body=b"\x30\x00")
        reply = connection.getresponse()
        assert reply.status == 200
        assert _ocsp_status(reply.read()) == "malformed_request"
        connection.close()
        answered_in = time.monotonic() - asked
        attacker.join(timeout=30)
        assert not attacker.is_alive()

        tricklers = attack.tricklers
        assert len(tricklers) > count  # replaced after being cut: more than one wave
        still_open = [t for t in tricklers if t.closed is None]
        assert not still_open, f"{len(still_open)} slowloris connections never closed"
        lifetimes = [t.closed - t.opened for t in tricklers if t.closed is not None]
        assert max(lifetimes) < 5 * DEADLINE, f"longest lived {max(lifetimes):.2f} s"
        assert min(lifetimes) > 0.5 * DEADLINE  # cut by the deadline, not refused
        timed_out = [t for t in tricklers if t.answer.startswith(b"HTTP/1.1 408 ")]
        assert len(timed_out) > len(tricklers) // 2, f"{len(timed_out)} of {len(tricklers)}"
        assert all(t.answer.startswith(b"HTTP/1.1 408 ") for t in tricklers if t.answer)
        assert answered_in < 5 * DEADLINE, f"legitimate requests took {answered_in:.2f} s"
        assert attack.peak_connections <= count + 10, attack.peak_connections
        assert attack.peak_threads <= threads_before + count + 20, attack.peak_threads
        assert _wait_until(lambda: server.active_connections == 0, 5 * DEADLINE)
        assert server.timed_out_requests >= len(tricklers)
        assert server.refused_connections == 0
    assert _wait_until(lambda: threading.active_count() <= threads_before, 5 * DEADLINE)


def test_the_deadline_bounds_bodies_idle_keep_alive_and_silent_clients(pki: PkiStore) -> None:
    with PkiServer(pki, request_timeout=DEADLINE) as server:
        keep_alive = http.client.HTTPConnection(HOST, server.port, timeout=10)
        keep_alive.request("GET", "/")
        reply = keep_alive.getresponse()
        reply.read()
        assert reply.status == 200 and not reply.will_close
        assert keep_alive.sock is not None
        idle_from = time.monotonic()
        assert _read_to_end(keep_alive.sock, 10) == b""  # closed silently, no stray 408
        idle_for = time.monotonic() - idle_from
        keep_alive.close()
        assert 0.5 * DEADLINE < idle_for < 5 * DEADLINE, f"idle connection lived {idle_for:.2f} s"

        with socket.create_connection((HOST, server.port), timeout=10) as poster:
            poster.sendall(
                b"POST /ocsp/test-auth HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
            )
            posted_from = time.monotonic()
            answer = b""
            with contextlib.suppress(OSError):
                for _ in range(49):  # a byte of body every 0.2 s: each recv is quick, the whole not
                    poster.sendall(b"\x30")
                    poster.settimeout(0.2)
                    with contextlib.suppress(TimeoutError):
                        answer = poster.recv(4096)
                    if answer:
                        break
            posted_for = time.monotonic() - posted_from
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert posted_for < 5 * DEADLINE, f"trickled body lasted {posted_for:.2f} s"

        with socket.create_connection((HOST, server.port), timeout=10) as silent:
            silent_from = time.monotonic()
            answer = _read_to_end(silent, 10)
            silent_for = time.monotonic() - silent_from
        assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
        assert silent_for < 5 * DEADLINE, f"silent connection lived {silent_for:.2f} s"
        assert server.timed_out_requests == 3


# --- the connection cap ------------------------------------------------------------------------


def test_connections_beyond_the_cap_get_503_and_service_resumes(pki: PkiStore) -> None:
    cap = 3
    with PkiServer(pki, max_connections=cap, request_timeout=10) as server:
        holders = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(cap)]
        try:
            assert _wait_until(lambda: server.active_connections == cap, 5)
            threads_full = threading.active_count()
            refused_from = time.monotonic()
            answers = []
            for _ in range(20):
                with socket.create_connection((HOST, server.port), timeout=10) as extra:
                    answers.append(_read_to_end(extra, 10))
            refused_in = time.monotonic() - refused_from
            assert threading.active_count() <= threads_full  # no thread for a refused one
        finally:
            for holder in holders:
                holder.close()
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers[0][:100]
        assert all(b"\r\nConnection: close\r\n" in a for a in answers)
        assert refused_in < 5, f"20 refusals took {refused_in:.2f} s"  # not the 10 s deadline
        assert server.refused_connections == 20
        assert _wait_until(lambda: server.active_connections == 0, 5)
        _fetch_crl(server, pki)
        assert server.refused_connections == 20


# --- Content-Length ----------------------------------------------------------------------------


def _post_with_lengths(server: PkiServer, lengths: list[str], body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to the OCSP responder with these Content-Length fields, in order."""
    head = "POST /ocsp/test-auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"Content-Length: {value}\r\n" for value in lengths)
    with socket.create_connection((HOST, server.port), timeout=5) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\n" + body)
        reply = http.client.HTTPResponse(connection)
        reply.begin()
        return reply.status, reply.read()


def test_content_lengths_that_disagree_are_rejected(pki: PkiStore) -> None:
    with PkiServer(pki) as server:
        assert _post_with_lengths(server, ["2", "3"], b"\x30\x00\x00")[0] == 400
        assert _post_with_lengths(server, ["3", "2"], b"\x30\x00\x00")[0] == 400
        assert _post_with_lengths(server, ["2, 3"], b"\x30\x00\x00")[0] == 400
        for same in (["2", "2"], ["2, 2"], ["2", "02"]):  # one length, stated twice: accepted
            status, body = _post_with_lengths(server, same, b"\x30\x00")
            assert status == 200 and _ocsp_status(body) == "malformed_request", same


def test_malformed_content_lengths_are_rejected(pki: PkiStore) -> None:
    malformed = ["+2", "-2", "2 0", "2_0", "0x2", "2.0", "two", "", "2,", " , "]
    with PkiServer(pki) as server:
        for value in malformed:
            status, _ = _post_with_lengths(server, [value], b"\x30\x00")
            assert status == 400, f"Content-Length {value!r} → {status}"
        assert _post_with_lengths(server, [], b"")[0] == 411
        assert _post_with_lengths(server, [" 2\t"], b"\x30\x00")[0] == 200  # spaces around: fine
        assert _post_with_lengths(server, ["9" * 5000], b"")[0] == 413


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "65536"], "--port"),
        (["revoke", "--serial", "zz"], "--serial"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "pki"
    with pytest.raises(SystemExit) as exited:
        cli.main(["pki", *argv, "--dir", str(directory)])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"argument {named}:" in err and "Traceback" not in err
    assert not directory.exists()  # nothing was started (not even the PKI directory made)
