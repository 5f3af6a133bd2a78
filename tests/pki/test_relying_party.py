"""What a relying party sees: OpenSSL and the validation helper against our served PKI.

Three personas made from the demo: one good, one whose certificates were revoked (the sign
certificate at personalization for a move, the auth certificate later by CLI for a lost card),
one whose auth certificate is on hold from the persona file. ``mynacard pki serve`` runs in a
subprocess on an ephemeral port with its clock frozen at :data:`AT`; ``openssl ocsp`` asks it,
``openssl verify -crl_check`` uses the CRL it serves, and :func:`jpki.validation.validate`
must agree with OpenSSL on every one.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from jpki.clock import FrozenClock
from jpki.names import Tree
from jpki.pki_store import PkiStore
from jpki.revocation import RevocationReason
from jpki.validation import Outcome, crl_url_of, ocsp_url_of, validate
from tests.pki.conftest import (
    AT,
    JST,
    CardCertificates,
    Served,
    cli,
    issue_card,
    openssl_verify_with_crl,
    persona_file,
    write_pem,
)

# (expected openssl ocsp status, reason, helper outcome) per persona, for the auth certificate
EXPECTED = {
    "rp-good": ("good", None, Outcome.VALID),
    "rp-revoked": ("revoked", "keyCompromise", Outcome.REVOKED),
    "rp-hold": ("revoked", "certificateHold", Outcome.HOLD),
}


@dataclass
class World:
    store: PkiStore
    server: Served
    cards: dict[str, CardCertificates]
    directory: Path


@pytest.fixture(scope="module")
def world(pki: PkiStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("rp")
    clock = FrozenClock(AT)
    cards = {
        "rp-good": issue_card(persona_file(directory, "rp-good"), clock),
        "rp-revoked": issue_card(
            persona_file(
                directory,
                "rp-revoked",
                sign_state="revoked",
                sign_reason="affiliationChanged",
                revoked_at=dt.datetime(2025, 9, 1, 10, 0, tzinfo=JST),
            ),
            clock,
        ),
        "rp-hold": issue_card(persona_file(directory, "rp-hold", auth_state="hold"), clock),
    }
    # the card is lost later: its auth certificate revoked through the CLI (another process)
    result = cli(
        "revoke",
        "--dir",
        str(pki.directory),
        "--persona",
        "rp-revoked",
        "--cert",
        "auth",
        "--reason",
        "keyCompromise",
        "--at",
        "2026-01-15",
    )
    assert "keyCompromise" in result.stdout
    server = Served(pki.directory, AT)
    try:
        yield World(pki, server, cards, directory)
    finally:
        assert server.stop() == 0


def _rebased(url: str | None, server: Served) -> str:
    assert url is not None and url.startswith("http://127.0.0.1:8714/")
    return server.url + url.removeprefix("http://127.0.0.1:8714")


def _openssl_ocsp(world: World, cert: x509.Certificate, issuer: x509.Certificate, name: str) -> str:
    leaf = write_pem(world.directory / f"{name}.pem", cert)
    issuer_pem = write_pem(world.directory / f"{name}-issuer.pem", issuer)
    roots = write_pem(world.directory / "roots.pem", *world.store.trust_roots())
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuer_pem),
            "-cert",
            str(leaf),
            "-url",
            _rebased(ocsp_url_of(cert), world.server),
            "-CAfile",
            str(roots),
            "-attime",
            str(int(AT.timestamp())),
            "-validity_period",
            "500000000",
            "-nonce",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    return result.stdout


def _openssl_verify_with_crl(
    world: World, cert: x509.Certificate, name: str
) -> subprocess.CompletedProcess[str]:
    with urllib.request.urlopen(_rebased(crl_url_of(cert), world.server), timeout=10) as reply:
        assert reply.headers["Content-Type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(reply.read())
    return openssl_verify_with_crl(
        world.directory, name, cert, crl, trust_roots=world.store.trust_roots(), at=AT
    )


@pytest.mark.parametrize("label", list(EXPECTED))
def test_openssl_ocsp_answers_and_helper_agrees(world: World, label: str) -> None:
    status, reason, outcome = EXPECTED[label]
    card = world.cards[label]
    output = _openssl_ocsp(world, card.auth, card.auth_ca, label)
    assert f"{label}.pem: {status}" in output
    if reason is not None:
        assert f"Reason: {reason}" in output
        assert "Revocation Time:" in output
    verdict = validate(
        card.auth,
        trust_roots=world.store.trust_roots(),
        moment=AT,
        method="ocsp",
        base_url=world.server.url,
    )
    assert verdict.outcome is outcome, verdict.message
    if reason is not None:
        assert verdict.reason is RevocationReason(reason)


@pytest.mark.parametrize("label", list(EXPECTED))
def test_openssl_crl_check_and_helper_agree(world: World, label: str) -> None:
    _, reason, outcome = EXPECTED[label]
    card = world.cards[label]
    result = _openssl_verify_with_crl(world, card.auth, label)
    if reason is None:
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{label}.pem: OK" in result.stdout
    else:
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr
    verdict = validate(
        card.auth,
        trust_roots=world.store.trust_roots(),
        moment=AT,
        method="crl",
        base_url=world.server.url,
    )
    assert verdict.outcome is outcome, verdict.message


def test_moved_persona_keeps_a_valid_auth_certificate(world: World) -> None:
    """The sign certificate revoked at personalization (affiliationChanged), auth untouched."""
    good, revoked = world.cards["rp-good"], world.cards["rp-revoked"]
    output = _openssl_ocsp(world, revoked.sign, revoked.sign_ca, "rp-revoked-sign")
    assert "rp-revoked-sign.pem: revoked" in output
    assert "Reason: affiliationChanged" in output
    assert "Revocation Time: Sep  1 01:00:00 2025 GMT" in output
    for method in ("ocsp", "crl"):
        verdict = validate(
            revoked.sign,
            trust_roots=world.store.trust_roots(),
            moment=AT,
            method=method,
            base_url=world.server.url,
        )
        assert verdict.outcome is Outcome.REVOKED
        assert verdict.reason is RevocationReason.AFFILIATION_CHANGED
    good_sign = _openssl_ocsp(world, good.sign, good.sign_ca, "rp-good-sign")
    assert "rp-good-sign.pem: good" in good_sign


def test_released_hold_is_good_again(world: World, tmp_path: Path) -> None:
    card = issue_card(persona_file(tmp_path, "rp-release", auth_state="hold"), FrozenClock(AT))
    assert "revoked" in _openssl_ocsp(world, card.auth, card.auth_ca, "rp-release")
    result = cli(
        "release",
        "--dir",
        str(world.store.directory),
        "--persona",
        "rp-release",
        "--cert",
        "auth",
        "--at",
        "2026-05-01",
    )
    assert "valid" in result.stdout
    assert "rp-release.pem: good" in _openssl_ocsp(world, card.auth, card.auth_ca, "rp-release")
    assert (
        validate(
            card.auth,
            trust_roots=world.store.trust_roots(),
            moment=AT,
            method="crl",
            base_url=world.server.url,
        ).outcome
        is Outcome.VALID
    )


def test_cards_carry_the_served_urls_and_the_real_profile_crl_dp(world: World) -> None:
    cert = world.cards["rp-good"].auth
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    names = [name for point in points for name in point.full_name or ()]
    assert isinstance(names[0], x509.DirectoryName)  # the per-municipality DirName comes first
    assert "CN=Chiyoda-ku CRLDP" in names[0].value.rfc4514_string()
    assert names[1] == x509.UniformResourceIdentifier("http://127.0.0.1:8714/crl/test-auth-g3.crl")
    assert ocsp_url_of(cert) == "http://127.0.0.1:8714/ocsp/test-auth"
    record = world.store.certificates(persona="rp-good", tree=Tree.AUTH)[-1]
    assert record.serial == cert.serial_number and record.generation == 3
