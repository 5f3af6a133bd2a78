"""Four demo cards in four readers answer four client threads at once: each thread reads the
auth certificate, verifies the PIN and has the card sign, through MynaClient over
PcscTransport."""

from __future__ import annotations

import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import PcscTransport
from tests.integration.conftest import AUTH_PIN, Served, der_object

pytestmark = pytest.mark.pcsc

ROUNDS = 20


def _session(served: Served, results: dict[str, int], errors: list[str]) -> None:
    expected = x509.load_der_x509_certificate(der_object(served.jpki_file(0x000A)))
    public_key = expected.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    try:
        with PcscTransport(served.name) as transport:
            client = MynaClient(transport)
            for round_ in range(ROUNDS):
                client.select_jpki()
                if client.certificate(0x000A) != expected:
                    errors.append(f"{served.name}: wrong certificate in round {round_}")
                    return
                client.verify(JpkiCredential.AUTH_PIN, AUTH_PIN)
                message = f"{served.name} round {round_}".encode()
                signature = client.sign(JpkiCredential.AUTH_PIN, message)
                public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                results[served.name] = round_ + 1
    except Exception as exc:
        errors.append(f"{served.name}: {exc!r}")


def test_four_cards_answer_four_threads_concurrently(demo_cards: list[Served]) -> None:
    assert len({served.name for served in demo_cards}) == 4
    results: dict[str, int] = {}
    errors: list[str] = []
    before = {served.name: len(served.exchanges) for served in demo_cards}
    threads = [
        threading.Thread(target=_session, args=(served, results, errors), name=served.name)
        for served in demo_cards
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert results == {served.name: ROUNDS for served in demo_cards}
    for served in demo_cards:
        signs = [c for c, _ in served.exchanges[before[served.name] :] if c[:2] == b"\x80\x2a"]
        assert len(signs) == ROUNDS  # every card did its own signing
        assert served.card.credential("jpki", 0x0018).remaining == 3  # type: ignore[attr-defined]
