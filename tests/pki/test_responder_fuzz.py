"""The OCSP responder survives 10,000 requests of random bytes and keeps answering valid ones.

``mynacard pki serve`` runs in a subprocess; four client threads on keep-alive connections send
random POST bodies, mutated valid requests, random GET paths and DER-looking junk. Every answer
must be an HTTP 200 OCSP response with status malformedRequest, unauthorized or successful —
never internalError, never a dropped connection — and every 250th request per thread is a
valid one that must come back ``good`` with its nonce. Then raw non-HTTP junk on fresh sockets,
and the responder must still answer.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from jpki.clock import FrozenClock
from jpki.pki_store import PkiStore
from tests.pki.conftest import AT, CardCertificates, Served, issue_card, persona_file

TOTAL = 10_000
THREADS = 4
VALID_EVERY = 250
ALLOWED = {"malformed_request", "unauthorized", "successful"}


@pytest.fixture(scope="module")
def served(
    pki: PkiStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, CardCertificates]]:
    card = issue_card(persona_file(tmp_path_factory.mktemp("fuzz"), "fuzz"), FrozenClock(AT))
    server = Served(pki.directory, AT)
    try:
        yield server, card
    finally:
        assert server.stop() == 0


def _valid_request(card: CardCertificates) -> tuple[bytes, bytes]:
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(card.auth, card.auth_ca, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return request.public_bytes(Encoding.DER), nonce


def _junk(rng: random.Random, valid: bytes) -> tuple[str, str, bytes]:
    """(method, path, body) of one random request."""
    kind = rng.random()
    if kind < 0.4:
        return "POST", "/ocsp/test-auth", rng.randbytes(rng.randrange(0, 600))
    if kind < 0.7:
        body = bytearray(valid)
        for _ in range(rng.randrange(1, 5)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(body))]
        if rng.random() < 0.2:
            body += rng.randbytes(rng.randrange(1, 40))
        return "POST", "/ocsp/test-auth", bytes(body)
    if kind < 0.85:
        raw = rng.randbytes(rng.randrange(0, 200))
        text = base64.b64encode(raw).decode() if rng.random() < 0.7 else raw.decode("latin-1")
        return "GET", "/ocsp/test-auth/" + quote(text, safe=""), b""
    length = rng.randrange(0, 300)
    return (
        "POST",
        "/ocsp/test-sign",
        b"\x30\x82" + length.to_bytes(2, "big") + rng.randbytes(length),
    )


def _status(body: bytes) -> str:
    return str(asn1_ocsp.OCSPResponse.load(body)["response_status"].native)


def _client(
    port: int, card: CardCertificates, seed: int, *, tally: Counter[str], errors: list[str]
) -> None:
    rng = random.Random(seed)
    valid, _ = _valid_request(card)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for index in range(TOTAL // THREADS):
            if index % VALID_EVERY == VALID_EVERY - 1:
                body, nonce = _valid_request(card)
                method, path = "POST", "/ocsp/test-auth"
            else:
                method, path, body = _junk(rng, valid)
                nonce = None
            headers = {"Content-Type": "application/ocsp-request"} if method == "POST" else {}
            connection.request(
                method, path, body=body if method == "POST" else None, headers=headers
            )
            reply = connection.getresponse()
            data = reply.read()
            if reply.status != 200:
                errors.append(f"HTTP {reply.status} for {method} {path[:60]}")
                continue
            status = _status(data)
            tally[status] += 1
            if status not in ALLOWED:
                errors.append(f"{status} for {method} {path[:60]} {body[:40].hex()}")
            if nonce is not None:
                answer = ocsp.load_der_ocsp_response(data)
                good = answer.certificate_status is ocsp.OCSPCertStatus.GOOD
                echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                if not good or echoed != nonce:
                    errors.append("a valid request was not answered good with its nonce")
                tally["valid-good"] += 1
    except Exception as exc:  # reported by the test thread
        errors.append(f"client {seed}: {exc!r}")
    finally:
        connection.close()


def test_ten_thousand_random_requests(served: tuple[Served, CardCertificates]) -> None:
    server, card = served
    tally: Counter[str] = Counter()
    errors: list[str] = []
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_client,
            args=(server.port, card, seed),
            kwargs={"tally": tally, "errors": errors},
        )
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not errors, errors[:5]
    answered = sum(tally[s] for s in ALLOWED)
    assert answered == TOTAL, tally
    assert tally["valid-good"] == THREADS * (TOTAL // THREADS // VALID_EVERY)
    assert tally["malformed_request"] > TOTAL // 2, tally
    assert elapsed < 60, f"{elapsed:.1f} s"

    rng = random.Random(99)
    for _ in range(50):  # not HTTP at all, then hang up
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(rng.randbytes(rng.randrange(1, 2000)) + b"\r\n\r\n")
            with contextlib.suppress(TimeoutError):
                raw.recv(4096)
    assert server.process.poll() is None
    body, nonce = _valid_request(card)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/ocsp/test-auth", body=body)
    answer = ocsp.load_der_ocsp_response(connection.getresponse().read())
    connection.close()
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_http_edges(served: tuple[Served, CardCertificates]) -> None:
    server, card = served

    def ask(method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.putrequest(method, path)
            for name, value in headers.items():
                connection.putheader(name.replace("_", "-"), value)
            if body is not None and "Content_Length" not in headers:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()

    assert ask("GET", "/nope")[0] == 404
    assert ask("GET", "/crl/test-auth-g9.crl")[0] == 404
    assert ask("GET", "/crl/production-auth-g3.crl")[0] == 404  # style not declared here
    assert ask("POST", "/crl/test-auth-g3.crl", b"x")[0] == 405
    assert ask("GET", "/ocsp/test-auth")[0] == 405
    assert ask("POST", "/ocsp/test-auth", Content_Length=str(10**9))[0] == 413
    assert ask("POST", "/ocsp/test-auth")[0] == 411
    assert ask("POST", "/ocsp/test-auth", b"", Content_Length="-5")[0] == 400
    status, body = ask("POST", "/ocsp/test-auth", b"\x30\x00")
    assert status == 200 and _status(body) == "malformed_request"
    request, nonce = _valid_request(card)
    status, body = ask("POST", "/ocsp/test-sign", request)  # the auth issuer, asked of sign
    assert status == 200 and _status(body) == "unauthorized"
    encoded = quote(base64.b64encode(request).decode(), safe="")
    status, body = ask("GET", f"/ocsp/test-auth/{encoded}")
    answer = ocsp.load_der_ocsp_response(body)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    status, body = ask("GET", "/ca/test-auth-g3.crt")
    assert x509.load_der_x509_certificate(body) == card.auth_ca
    status, body = ask("GET", "/arl/test-auth-g3.crl")
    arl = x509.load_der_x509_crl(body)
    scope = arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert scope.only_contains_ca_certs and len(list(arl)) == 0
    assert arl.is_signature_valid(card.auth_ca.public_key())  # type: ignore[arg-type]
    status, body = ask("GET", "/")
    assert b"POST /ocsp/test-auth" in body
