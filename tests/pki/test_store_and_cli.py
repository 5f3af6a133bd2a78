"""The PKI state directory, its lists and responder, persona revocation fields, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from card_emulator import PersonaError
from card_emulator.persona import load, parse
from card_emulator.personalize import personalize
from harness.commands import pki as pki_cli
from jpki.clock import FrozenClock
from jpki.declaration import parse_declaration
from jpki.holder import HolderIdentity, Sex
from jpki.keys import generate_rsa_key
from jpki.names import Municipality, NameStyle, Tree
from jpki.pki_store import PkiError, PkiStore
from jpki.revocation import CertificateState, EventKind, RevocationEvent, RevocationReason
from tests.conftest import DEMO_PERSONA
from tests.pki.conftest import AT, JST, at_jst, cli, issue_card, persona_file

SMALL = """
[pki]
base_url = "http://127.0.0.1:9999/pki"
styles = ["test"]
crl_validity_hours = 6

[auth]
[[auth.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2040-01-01

[sign]
[[sign.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2040-01-01
"""
CHIYODA = Municipality("Tokyo-to", "Chiyoda-ku", "13101")
HOLDER = HolderIdentity("番号　花子", Sex.FEMALE, dt.date(1980, 2, 17), "東京都千代田区")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> PkiStore:
    return PkiStore.open(
        tmp_path_factory.mktemp("small"), declaration=parse_declaration(SMALL, "small.toml")
    )


def _issue(
    store: PkiStore, persona: str, start: dt.datetime, days: int = 365, tree: Tree = Tree.AUTH
) -> x509.Certificate:
    return store.issue_user_certificate(
        tree,
        NameStyle.TEST,
        generate_rsa_key().public_key(),
        persona=persona,
        not_before=start,
        not_after=start + dt.timedelta(days=days),
        holder=HOLDER if tree is Tree.SIGN else None,
        municipality=CHIYODA,
        clock=FrozenClock(start),
    ).certificate


# --- the directory ------------------------------------------------------------------------------


def test_directory_layout_and_the_old_api(small: PkiStore) -> None:
    directory = small.directory
    assert (directory / "pki.toml").is_file() and (directory / "certificates.sqlite").is_file()
    key = directory / "ca" / "test-auth-g1.key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    again = PkiStore.open(directory)
    assert again.declaration == small.declaration
    ca = again.certificate_authority(Tree.AUTH, NameStyle.TEST)
    assert ca.certificate == small.authority(Tree.AUTH, NameStyle.TEST, 1).certificate
    assert again.cv_signer("text").root_public_key == again.cv_root_public_key("text")
    with pytest.raises(PkiError, match="another declaration"):
        PkiStore.open(directory, base_url="http://127.0.0.1:1")
    with pytest.raises(PkiError, match="no 'production' hierarchy"):
        small.authority(Tree.AUTH, NameStyle.PRODUCTION, 1)
    with pytest.raises(PkiError, match="no generation 7"):
        small.authority(Tree.SIGN, NameStyle.TEST, 7)


def test_adding_a_generation_to_pki_toml_makes_its_keys(tmp_path: Path) -> None:
    store = PkiStore.open(tmp_path, declaration=parse_declaration(SMALL))
    declared = (tmp_path / "pki.toml").read_text("utf-8")
    extra = (
        "\n[[auth.generations]]\ngeneration = 2\n"
        "not_before = 2030-01-01T00:00:00+09:00\nnot_after = 2045-01-01T00:00:00+09:00\n"
    )
    (tmp_path / "pki.toml").write_text(declared.replace("\n[sign]", extra + "\n[sign]"), "utf-8")
    grown = PkiStore.open(tmp_path)
    second = grown.authority(Tree.AUTH, NameStyle.TEST, 2)
    assert second.certificate.subject == store.authority(Tree.AUTH, NameStyle.TEST, 1).name
    assert grown.authority_in_force(Tree.AUTH, NameStyle.TEST, at_jst(2031, 1, 1)).generation == 2


def test_ca_and_responder_certificates(small: PkiStore) -> None:
    ca = small.authority(Tree.SIGN, NameStyle.TEST, 1)
    points = ca.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    names = [name for point in points for name in point.full_name or ()]
    assert names == [
        x509.DirectoryName(ca.name),
        x509.UniformResourceIdentifier("http://127.0.0.1:9999/pki/arl/test-sign-g1.crl"),
    ]
    responder = small.responder(Tree.SIGN, NameStyle.TEST, 1).certificate
    responder.verify_directly_issued_by(ca.certificate)
    extensions = responder.extensions
    assert extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.OCSP_SIGNING]
    )
    extensions.get_extension_for_class(x509.OCSPNoCheck)
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert "CN=OCSP Responder" in responder.subject.rfc4514_string()
    assert "O=JPKI-TEST" in responder.subject.rfc4514_string()


# --- lists and answers --------------------------------------------------------------------------


def test_crl_entries_reasons_hold_and_expiry(small: PkiStore) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    plain = _issue(small, "crl-plain", start)
    moved = _issue(small, "crl-moved", start)
    held = _issue(small, "crl-held", start)
    short = _issue(small, "crl-short", start, days=30)
    _issue(small, "crl-good", start)
    at = start + dt.timedelta(days=2)
    small.revoke("crl-plain", [Tree.AUTH], RevocationReason.UNSPECIFIED, at=at)
    small.revoke("crl-moved", [Tree.AUTH], RevocationReason.AFFILIATION_CHANGED, at=at)
    small.hold("crl-held", [Tree.AUTH], at=at)
    small.revoke("crl-short", [Tree.AUTH], RevocationReason.KEY_COMPROMISE, at=at)
    moment = start + dt.timedelta(days=10)
    crl = small.crl(Tree.AUTH, NameStyle.TEST, 1, at=moment)
    ca = small.authority(Tree.AUTH, NameStyle.TEST, 1)
    assert crl.is_signature_valid(ca.key.public_key())
    assert crl.next_update_utc == moment + dt.timedelta(hours=6)
    entries = {entry.serial_number: entry for entry in crl}
    assert set(entries) == {c.serial_number for c in (plain, moved, held, short)}

    def reason(cert: x509.Certificate) -> x509.ReasonFlags | None:
        found = entries[cert.serial_number].extensions
        try:
            return found.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            return None

    assert reason(plain) is None  # RFC 5280: no reasonCode for unspecified
    assert reason(moved) is x509.ReasonFlags.affiliation_changed
    assert reason(held) is x509.ReasonFlags.certificate_hold
    assert entries[moved.serial_number].revocation_date_utc == at
    later = small.crl(Tree.AUTH, NameStyle.TEST, 1, at=start + dt.timedelta(days=40))
    assert short.serial_number not in {e.serial_number for e in later}  # expired: dropped
    before = small.crl(Tree.AUTH, NameStyle.TEST, 1, at=start + dt.timedelta(days=1))
    assert len(list(before)) == 0  # the revocations lie in that list's future


def _request(*pairs: tuple[x509.Certificate, x509.Certificate]) -> bytes:
    builder = ocsp.OCSPRequestBuilder()
    for cert, issuer in pairs:
        builder = builder.add_certificate(cert, issuer, hashes.SHA256())
    return builder.build().public_bytes(Encoding.DER)


def test_responder_answers(small: PkiStore) -> None:
    start = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    good = _issue(small, "ocsp-good", start)
    issuer = small.authority(Tree.AUTH, NameStyle.TEST, 1).certificate
    moment = start + dt.timedelta(days=1)
    answer = ocsp.load_der_ocsp_response(small.ocsp_response(_request((good, issuer)), at=moment))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.responder_key_hash == small.ocsp_issuers(Tree.AUTH)[0].responder_key_hash
    assert answer.produced_at_utc == moment
    assert answer.certificates == [small.responder(Tree.AUTH, NameStyle.TEST, 1).certificate]
    early = small.ocsp_response(_request((good, issuer)), at=start - dt.timedelta(days=1))
    assert ocsp.load_der_ocsp_response(early).certificate_status is ocsp.OCSPCertStatus.UNKNOWN

    # several CertIDs in one request: good, an unknown serial, and one of the sign tree
    other = _issue(small, "ocsp-sign", start, tree=Tree.SIGN)
    sign_issuer = small.authority(Tree.SIGN, NameStyle.TEST, 1).certificate
    unknown = (
        x509.CertificateBuilder()
        .subject_name(good.subject)
        .issuer_name(good.issuer)
        .public_key(good.public_key())
        .serial_number(12345)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .sign(small.authority(Tree.AUTH, NameStyle.TEST, 1).key, hashes.SHA256())
    )
    parts = [
        asn1_ocsp.OCSPRequest.load(_request(pair))["tbs_request"]["request_list"][0]
        for pair in ((good, issuer), (unknown, issuer), (other, sign_issuer))
    ]
    combined = asn1_ocsp.OCSPRequest(
        {"tbs_request": {"request_list": parts, "requestor_name": None}}
    ).dump()
    response = asn1_ocsp.OCSPResponse.load(small.ocsp_response(combined, tree=Tree.AUTH, at=moment))
    statuses = [
        single["cert_status"].name
        for single in response["response_bytes"]["response"].parsed["tbs_response_data"][
            "responses"
        ]
    ]
    assert statuses == ["good", "unknown", "unknown"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r[:-3],
        lambda r: r + b"\x00",
        lambda r: b"\x30\x80" + r[2:],
    ],
)
def test_malformed_requests(small: PkiStore, mangle: object) -> None:
    start = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    cert = _issue(small, "ocsp-malformed", start)
    issuer = small.authority(Tree.AUTH, NameStyle.TEST, 1).certificate
    assert callable(mangle)
    body = mangle(_request((cert, issuer)))
    response = asn1_ocsp.OCSPResponse.load(small.ocsp_response(body, at=start))
    assert response["response_status"].native == "malformed_request"


def test_nonce_limits_and_critical_extensions(small: PkiStore) -> None:
    start = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    cert = _issue(small, "ocsp-nonce", start)
    issuer = small.authority(Tree.AUTH, NameStyle.TEST, 1).certificate

    def status(extension: x509.ExtensionType, critical: bool = False) -> str:
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA1())
            .add_extension(extension, critical=critical)
            .build()
        )
        answer = small.ocsp_response(request.public_bytes(Encoding.DER), at=start)
        return str(asn1_ocsp.OCSPResponse.load(answer)["response_status"].native)

    assert status(x509.OCSPNonce(b"x" * 32)) == "successful"
    assert status(x509.OCSPNonce(b"x" * 129)) == "malformed_request"
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")
    assert status(unknown, critical=True) == "malformed_request"
    assert status(unknown) == "successful"


# --- personas -----------------------------------------------------------------------------------

DEMO = DEMO_PERSONA.read_text("utf-8")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'auth_state = "expired"',
            "certificates.auth_state: expected 'valid', 'revoked' or 'hold'",
        ),
        ('sign_state = "gone"', "certificates.sign_state"),
        ('auth_state = "revoked"\nauth_reason = "lost"', "certificates.auth_reason: unknown"),
        (
            'auth_reason = "keyCompromise"',
            'certificates.auth_reason: only with auth_state = "revoked"',
        ),
        ('auth_state = "revoked"\nauth_reason = "certificateHold"', "certificates.auth_reason"),
        ("revoked_at = 2026-01-01", "certificates.revoked_at: only with"),
        (
            'auth_state = "hold"\nrevoked_at = 2020-01-01',
            "certificates.revoked_at: 2020-01-01 is before",
        ),
        (
            'auth_state = "hold"\nrevoked_at = "soon"',
            "certificates.revoked_at: 'soon' is not a date",
        ),
        ('auth_state = "hold"\nrevoked_at = 2026-01-01T00:00:00', "needs an offset"),
    ],
)
def test_persona_revocation_fields_are_validated(extra: str, message: str) -> None:
    raw = DEMO.replace("[certificates]\n", f"[certificates]\n{extra}\n")
    with pytest.raises(PersonaError) as info:
        parse(raw.encode(), "bad.toml")
    assert message in str(info.value)


def test_persona_revocation_fields_parse() -> None:
    extra = 'sign_state = "revoked"\nsign_reason = "記載内容変更"\nauth_state = "hold"\n'
    extra += "revoked_at = 2026-04-01T10:00:00+09:00\n"
    settings = parse(DEMO.replace("[certificates]\n", f"[certificates]\n{extra}").encode())
    certificates = settings.certificates
    assert certificates.sign_reason is RevocationReason.AFFILIATION_CHANGED
    assert (certificates.auth_state, certificates.auth_reason) == ("hold", None)
    assert certificates.revoked_at == dt.datetime(2026, 4, 1, 10, tzinfo=JST)


def test_personalization_records_every_certificate(pki: PkiStore, tmp_path: Path) -> None:
    card = issue_card(persona_file(tmp_path, "recorded", auth_state="hold"), FrozenClock(AT))
    records = {r.tree: r for r in pki.certificates(persona="recorded")}
    assert set(records) == {Tree.AUTH, Tree.SIGN}
    assert records[Tree.AUTH].serial_hex == card.meta["auth_certificate_serial"]
    assert records[Tree.SIGN].serial_hex == card.meta["sign_certificate_serial"]
    assert records[Tree.AUTH].not_after == card.auth.not_valid_after_utc
    assert records[Tree.AUTH].recorded_at == AT
    assert records[Tree.AUTH].status(AT).state is CertificateState.HOLD
    assert records[Tree.AUTH].events == (
        RevocationEvent(EventKind.HOLD, dt.datetime(2025, 3, 3, tzinfo=JST)),
    )
    assert records[Tree.SIGN].status(AT).state is CertificateState.VALID


# --- CLI ----------------------------------------------------------------------------------------


def test_register_adds_pki_to_a_command_line() -> None:
    parser = argparse.ArgumentParser(prog="mynacard")
    pki_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["pki", "revoke", "--persona", "demo", "--cert", "sign", "--reason", "affiliationChanged"]
    )
    assert (args.command, args.pki_command, args.cert) == ("pki", "revoke", "sign")
    assert callable(args.func)


def test_cli_moved_revokes_sign_only(pki: PkiStore, tmp_path: Path) -> None:
    persona = persona_file(tmp_path, "cli-moved")
    issue_card(persona, FrozenClock(AT))
    moved = cli("moved", "--persona", str(persona), "--at", "2026-05-10")
    assert re.search(
        r"cli-moved\s+sign .*revoked \(affiliationChanged 記載内容変更\)", moved.stdout
    )
    status = cli("status", "--persona", "cli-moved", "--at", "2026-06-01").stdout
    assert re.search(r"cli-moved\s+auth .* valid$", status, flags=re.MULTILINE)
    again = cli("moved", "--persona", "cli-moved", "--at", "2026-06-02", check=False)
    assert again.returncode == 1 and "already revoked" in again.stdout
    hold = cli("hold", "--persona", "cli-moved", "--cert", "auth", "--at", "2026-06-03")
    assert "hold (一時保留)" in hold.stdout
    early = cli(
        "release", "--persona", "cli-moved", "--cert", "auth", "--at", "2026-06-01", check=False
    )
    assert early.returncode == 1 and "before the certificate's last recorded change" in early.stdout
    serial = pki.certificates(persona="cli-moved", tree=Tree.AUTH)[0].serial_hex
    released = cli("release", "--serial", serial, "--cert", "auth", "--at", "2026-06-04")
    assert re.search(r"auth .* valid$", released.stdout, flags=re.MULTILINE)


def test_cli_errors_and_crl_output(pki: PkiStore, tmp_path: Path) -> None:
    unknown = cli("revoke", "--persona", "nobody-at-all", check=False)
    assert unknown.returncode == 2
    assert "no auth or sign certificates recorded for persona 'nobody-at-all'" in unknown.stderr
    bad_reason = cli("revoke", "--persona", "demo", "--reason", "lost", check=False)
    assert bad_reason.returncode == 2 and "unknown revocation reason 'lost'" in bad_reason.stderr
    bad_time = cli("status", "--at", "someday", check=False)
    assert bad_time.returncode == 2 and "'someday' is not a date" in bad_time.stderr
    out = tmp_path / "auth.crl"
    written = cli(
        "crl", "--cert", "auth", "--generation", "3", "--at", "2026-06-01", "--out", str(out)
    )
    assert "CRL of test-auth-g3" in written.stdout
    crl = x509.load_der_x509_crl(out.read_bytes())
    assert crl.last_update_utc == dt.datetime(2026, 6, 1, tzinfo=JST)
    arl = cli("crl", "--cert", "sign", "--arl", "--pem", "--at", "2026-06-01", "--out", str(out))
    assert "ARL of test-sign-g3" in arl.stdout
    assert x509.load_pem_x509_crl(out.read_bytes()).extensions.get_extension_for_class(
        x509.IssuingDistributionPoint
    )


def test_cli_init_from_a_declaration(tmp_path: Path) -> None:
    declaration = tmp_path / "mine.toml"
    declaration.write_text(SMALL, "utf-8")
    target = tmp_path / "state"
    result = cli(
        "init",
        *("--dir", str(target), "--declaration", str(declaration)),
        *("--base-url", "http://127.0.0.1:7777"),
    )
    assert "certificates name http://127.0.0.1:7777" in result.stdout
    assert "test-auth-g1  2020-01-01 .. 2040-01-01" in result.stdout
    assert PkiStore.open(target).ocsp_url(Tree.AUTH, NameStyle.TEST) == (
        "http://127.0.0.1:7777/ocsp/test-auth"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("generation = 1", "generation = one", 1), "utf-8")
    refused = cli("init", "--dir", str(tmp_path / "other"), "--declaration", str(bad), check=False)
    assert refused.returncode == 2 and "bad.toml" in refused.stderr
    assert os.environ["MYNACARD_PKI"] != str(target)


def test_unissuable_personas_record_nothing(pki: PkiStore, tmp_path: Path) -> None:
    too_long = persona_file(tmp_path, "too-long", sign_not_after=dt.date(2034, 1, 1))
    with pytest.raises(PersonaError, match=r"after its CA generation g3 \(2033-07-15\)"):
        personalize(load(too_long), store=pki)
    late = persona_file(
        tmp_path, "revoked-late", auth_state="revoked", revoked_at=dt.date(2031, 1, 1)
    )
    with pytest.raises(PersonaError, match=r"certificates\.revoked_at: .* after the auth"):
        personalize(load(late), store=pki)
    assert pki.certificates(persona="too-long") == []
    assert pki.certificates(persona="revoked-late") == []
