"""Time travel: CA generations in force at issuance, rollover, expiry on the fifth birthday.

One frozen clock drives the served PKI (in-process server, real HTTP on an ephemeral port),
the validation helper, OpenSSL (``-attime``) and the CLI (``--at``).
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from card_emulator import PersonaError
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from jpki.clock import FrozenClock
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiStore
from jpki.revocation import CertificateState
from jpki.service import PkiServer
from jpki.validation import Outcome, crl_url_of, validate
from tests.pki.conftest import (
    CardCertificates,
    at_jst,
    cli,
    issue_card,
    openssl_verify_with_crl,
    persona_file,
)

OLD_ISSUED = dt.date(2021, 4, 1)  # generation 2 (2019-09-14 ..) is in force; g3 starts 2023-07-16
NEW_ISSUED = dt.date(2024, 1, 10)  # generation 3
FIFTH_BIRTHDAY_END = dt.datetime(2026, 2, 17, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=9)))


@dataclass
class Travel:
    store: PkiStore
    clock: FrozenClock
    server: PkiServer
    old: CardCertificates
    new: CardCertificates
    directory: Path


@pytest.fixture(scope="module")
def travel(pki: PkiStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Travel]:
    directory = tmp_path_factory.mktemp("travel")
    clock = FrozenClock(at_jst(2024, 1, 10))
    old = issue_card(persona_file(directory, "tt-old", issued=OLD_ISSUED), clock)
    new = issue_card(persona_file(directory, "tt-new", issued=NEW_ISSUED), clock)
    with PkiServer(pki, clock=clock) as server:
        yield Travel(pki, clock, server, old, new, directory)


def _helper(travel: Travel, cert: x509.Certificate, method: str) -> Outcome:
    verdict = validate(
        cert,
        trust_roots=travel.store.trust_roots(),
        moment=travel.clock.now(),
        method=method,  # type: ignore[arg-type]
        base_url=travel.server.url,
    )
    return verdict.outcome


def _openssl_verify(travel: Travel, cert: x509.Certificate, name: str) -> str:
    url = crl_url_of(cert)
    assert url is not None
    rebased = travel.server.url + url.removeprefix(travel.store.declaration.base_url)
    with urllib.request.urlopen(rebased, timeout=10) as reply:
        crl = x509.load_der_x509_crl(reply.read())
    result = openssl_verify_with_crl(
        travel.directory,
        name,
        cert,
        crl,
        trust_roots=travel.store.trust_roots(),
        at=travel.clock.now(),
    )
    return result.stdout + result.stderr


def test_cards_chain_to_the_generation_in_force_at_issuance(travel: Travel) -> None:
    assert travel.old.meta["auth_ca_generation"] == "2"
    assert travel.old.meta["sign_ca_generation"] == "2"
    assert travel.new.meta["auth_ca_generation"] == "3"
    old_ca, new_ca = travel.old.auth_ca, travel.new.auth_ca
    assert old_ca.subject == new_ca.subject  # generations share the DN ...
    assert old_ca.public_key() != new_ca.public_key()  # ... and differ by key
    travel.old.auth.verify_directly_issued_by(old_ca)
    travel.new.auth.verify_directly_issued_by(new_ca)
    store = travel.store
    assert store.authority_in_force(Tree.AUTH, NameStyle.TEST, at_jst(2019, 9, 13)).generation == 1
    assert store.authority_in_force(Tree.AUTH, NameStyle.TEST, at_jst(2019, 9, 14)).generation == 2


def test_an_older_generation_card_validates_while_its_generation_is_valid(travel: Travel) -> None:
    for moment in (at_jst(2024, 1, 10), at_jst(2025, 11, 1)):  # g3 in force; g1 already gone
        travel.clock.set(moment)
        for card in (travel.old, travel.new):
            for cert in (card.auth, card.sign):
                assert _helper(travel, cert, "ocsp") is Outcome.VALID
                assert _helper(travel, cert, "crl") is Outcome.VALID
        assert "tt-old-auth.pem: OK" in _openssl_verify(travel, travel.old.auth, "tt-old-auth")


def test_past_the_fifth_birthday_everyone_says_expired(travel: Travel) -> None:
    assert travel.old.auth.not_valid_after_utc == FIFTH_BIRTHDAY_END
    travel.clock.set(FIFTH_BIRTHDAY_END - dt.timedelta(minutes=1))
    assert _helper(travel, travel.old.auth, "ocsp") is Outcome.VALID
    travel.clock.set(FIFTH_BIRTHDAY_END + dt.timedelta(minutes=1))
    for cert in (travel.old.auth, travel.old.sign):
        for method in ("ocsp", "crl", "none"):
            assert _helper(travel, cert, method) is Outcome.EXPIRED
    assert "certificate has expired" in _openssl_verify(travel, travel.old.auth, "tt-old-auth")
    records = travel.store.certificates(persona="tt-old")
    assert {r.status(travel.clock.now()).state for r in records} == {CertificateState.EXPIRED}
    status = cli("status", "--persona", "tt-old", "--at", "2026-02-18")
    assert status.stdout.count("expired") == 2
    # the newer card, issued later, is still valid then
    assert _helper(travel, travel.new.auth, "ocsp") is Outcome.VALID


def test_lists_and_responses_take_their_times_from_the_clock(travel: Travel) -> None:
    moment = at_jst(2031, 1, 1, 9)
    travel.clock.set(moment)
    with urllib.request.urlopen(travel.server.url + "/crl/test-auth-g3.crl", timeout=10) as reply:
        crl = x509.load_der_x509_crl(reply.read())
    assert crl.last_update_utc == moment
    assert crl.next_update_utc == moment + dt.timedelta(hours=24)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == int(moment.timestamp())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(travel.new.auth, travel.new.auth_ca, hashes.SHA1())
        .build()
    )
    http = urllib.request.Request(
        travel.server.url + "/ocsp/test-auth",
        data=request.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(http, timeout=10) as reply:
        response = ocsp.load_der_ocsp_response(reply.read())
    assert response.produced_at_utc == moment
    assert response.this_update_utc == moment
    assert response.next_update_utc == moment + dt.timedelta(hours=24)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_persona_issued_before_any_generation_is_refused(tmp_path: Path, pki: PkiStore) -> None:
    path = persona_file(tmp_path, "tt-ancient", issued=dt.date(2014, 5, 1))
    with pytest.raises(PersonaError, match=r"certificates\.issued: no auth CA generation"):
        personalize(persona_module.load(path), store=pki)
