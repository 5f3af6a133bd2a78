"""The next-generation PKI (P-384 / SHA-384) seen by a relying party: OpenSSL and the validator.

Two next-generation cards issued while the P-384 generation is in force: one good, one whose
auth certificate was revoked (keyCompromise). ``mynacard pki serve`` answers at :data:`AT`;
``openssl ocsp`` must say good / revoked and verify the ECDSA-SHA384 response, and
:func:`jpki.validation.validate` (pyhanko-certvalidator) must agree over OCSP and over CRLs.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import SignatureAlgorithmOID

from jpki.clock import FrozenClock
from jpki.pki_store import PkiStore
from jpki.revocation import RevocationReason
from jpki.validation import Outcome, crl_url_of, ocsp_url_of, validate
from tests.conftest import ROOT
from tests.pki.conftest import AT, JST, CardCertificates, Served, issue_card, write_pem

NEXT_GENERATION = ROOT / "vectors" / "personas" / "next-generation.toml"
ISSUED = dt.date(2026, 3, 1)


def next_generation_persona(directory: Path, label: str, extra: str = "") -> Path:
    """The next-generation demo persona issued on :data:`ISSUED` under ``label``."""
    text = NEXT_GENERATION.read_text("utf-8")
    text = re.sub(r'^label = "[^"]*"', f'label = "{label}"', text, flags=re.M)
    text = re.sub(r"^issued = \S+", f"issued = {ISSUED.isoformat()}", text, flags=re.M)
    text = re.sub(r"^expiry = \S+", "expiry = 2036-02-17", text, flags=re.M)
    path = directory / f"{label}.toml"
    path.write_text(text.replace("[certificates]\n", "[certificates]\n" + extra), "utf-8")
    return path


@dataclass
class World:
    store: PkiStore
    server: Served
    cards: dict[str, CardCertificates]
    directory: Path


@pytest.fixture(scope="module")
def world(pki: PkiStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("ng")
    clock = FrozenClock(AT)
    revoked = (
        'auth_state = "revoked"\nauth_reason = "keyCompromise"\n'
        "revoked_at = 2026-04-01T10:00:00+09:00\n"
    )
    cards = {
        "ng-good": issue_card(next_generation_persona(directory, "ng-good"), clock),
        "ng-revoked": issue_card(next_generation_persona(directory, "ng-revoked", revoked), clock),
    }
    server = Served(pki.directory, AT)
    try:
        yield World(pki, server, cards, directory)
    finally:
        assert server.stop() == 0


def _rebased(url: str | None, server: Served) -> str:
    assert url is not None and url.startswith("http://127.0.0.1:8714/")
    return server.url + url.removeprefix("http://127.0.0.1:8714")


def test_certificates_are_p384_sha384_for_ten_years(world: World) -> None:
    card = world.cards["ng-good"]
    for cert, ca in ((card.auth, card.auth_ca), (card.sign, card.sign_ca)):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        assert ca.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        # the 10th birthday (02-17) after issuance, 23:59:59 JST
        assert cert.not_valid_after_utc == dt.datetime(2036, 2, 17, 23, 59, 59, tzinfo=JST)
    assert card.meta["auth_ca_generation"] == "5"


@pytest.mark.parametrize(
    ("label", "status", "outcome"),
    [("ng-good", "good", Outcome.VALID), ("ng-revoked", "revoked", Outcome.REVOKED)],
)
def test_openssl_ocsp_and_the_validator_agree(
    world: World, label: str, status: str, outcome: Outcome
) -> None:
    card = world.cards[label]
    leaf = write_pem(world.directory / f"{label}.pem", card.auth)
    issuer = write_pem(world.directory / f"{label}-issuer.pem", card.auth_ca)
    roots = write_pem(world.directory / "roots.pem", *world.store.trust_roots())
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuer),
            "-cert",
            str(leaf),
            "-url",
            _rebased(ocsp_url_of(card.auth), world.server),
            "-CAfile",
            str(roots),
            "-attime",
            str(int(AT.timestamp())),
            "-validity_period",
            "500000000",
            "-nonce",
            "-resp_text",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert f"{label}.pem: {status}" in result.stdout
    assert "Signature Algorithm: ecdsa-with-SHA384" in result.stdout
    if status == "revoked":
        assert "Reason: keyCompromise" in result.stdout
    for method in ("ocsp", "crl"):
        verdict = validate(
            card.auth,
            trust_roots=world.store.trust_roots(),
            moment=AT,
            method=method,
            base_url=world.server.url,
        )
        assert verdict.outcome is outcome, f"{method}: {verdict.message}"
        if outcome is Outcome.REVOKED:
            assert verdict.reason is RevocationReason.KEY_COMPROMISE


def test_the_crl_is_signed_ecdsa_sha384(world: World) -> None:
    card = world.cards["ng-revoked"]
    with urllib.request.urlopen(_rebased(crl_url_of(card.auth), world.server), timeout=10) as r:
        crl = x509.load_der_x509_crl(r.read())
    assert crl.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert crl.is_signature_valid(card.auth_ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(card.auth.serial_number) is not None
