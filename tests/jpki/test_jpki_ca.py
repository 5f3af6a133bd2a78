"""CA and user certificates of both trees: every extension, parsed twice, verified by openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from jpki.ca import CertificateAuthority
from jpki.holder import HolderIdentity, Sex, holder_from_certificate
from jpki.keys import generate_rsa_key
from jpki.names import (
    Municipality,
    NameStyle,
    Tree,
    ca_name,
    crl_distribution_point_name,
    make_subject_id,
    service_directory_name,
)
from jpki.profile import CPS_URI, certificate_policy_oid, validity_end

CA_START = datetime(2019, 1, 1, tzinfo=UTC)
CA_END = datetime(2029, 1, 1, 14, 59, 59, tzinfo=UTC)
ISSUED = datetime(2019, 7, 25, 15, 28, 6, tzinfo=UTC)
DEMO = HolderIdentity(
    name="番号　花子",
    sex=Sex.FEMALE,
    birth_date=date(1980, 2, 17),
    address="東京都千代田区霞が関二丁目１番２号",
)
CHIYODA = Municipality("Tokyo-to", "Chiyoda-ku", "13101")
OCSP = "http://127.0.0.1:8080/ocsp"
PEM = Encoding.PEM
E = TypeVar("E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class Issued:
    ca: CertificateAuthority
    user: x509.Certificate


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    """Three RSA-2048 keys for the whole module: auth CA, sign CA, card."""
    return {name: generate_rsa_key() for name in ("auth", "sign", "card")}


@pytest.fixture(scope="module")
def cas(keys: dict[str, rsa.RSAPrivateKey]) -> dict[tuple[Tree, NameStyle], CertificateAuthority]:
    return {
        (tree, style): CertificateAuthority.create(
            tree,
            style=style,
            generation=2,
            not_before=CA_START,
            not_after=CA_END,
            key=keys[tree.value],
        )
        for tree in Tree
        for style in NameStyle
    }


def _issue(ca: CertificateAuthority, key: rsa.RSAPrivateKey, **extra: object) -> x509.Certificate:
    kwargs: dict[str, object] = {
        "subject_id": make_subject_id(0x012D57CA, ISSUED.date()),
        "not_before": ISSUED,
        "not_after": validity_end(ISSUED, DEMO.birth_date),
        "holder": DEMO if ca.tree is Tree.SIGN else None,
        "municipality": CHIYODA,
        "serial_number": 0x012D57CA,
        "ocsp_url": OCSP,
    }
    kwargs.update(extra)
    return ca.issue_user_certificate(key.public_key(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def issued(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> dict[tuple[Tree, NameStyle], Issued]:
    return {ts: Issued(ca, _issue(ca, keys["card"])) for ts, ca in cas.items()}


TREE_STYLES = [(tree, style) for tree in Tree for style in NameStyle]
IDS = [f"{tree.value}-{style.value}" for tree, style in TREE_STYLES]


def _ext_list(cert: x509.Certificate) -> list[tuple[x509.ObjectIdentifier, bool]]:
    return [(ext.oid, ext.critical) for ext in cert.extensions]


def _value(cert: x509.Certificate, cls: type[E]) -> E:
    return cert.extensions.get_extension_for_class(cls).value


# ---------------------------------------------------------------- CA certificate, cryptography


@pytest.mark.parametrize(("tree", "style"), TREE_STYLES, ids=IDS)
def test_ca_certificate(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], tree: Tree, style: NameStyle
) -> None:
    ca = cas[tree, style]
    cert = ca.certificate
    assert (ca.tree, ca.style, ca.generation) == (tree, style, 2)
    assert cert.subject == cert.issuer == ca.name == ca_name(tree, style)
    assert cert.version is x509.Version.v3
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    cert.verify_directly_issued_by(cert)
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 2048
    assert public_key.public_numbers().e == 65537
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (CA_START, CA_END)
    assert 0 < cert.serial_number < 2**64

    assert _ext_list(cert) == [
        (ExtensionOID.KEY_USAGE, True),
        (ExtensionOID.SUBJECT_ALTERNATIVE_NAME, False),
        (ExtensionOID.BASIC_CONSTRAINTS, True),
        (ExtensionOID.CRL_DISTRIBUTION_POINTS, False),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False),
    ]
    ku = _value(cert, x509.KeyUsage)
    assert isinstance(ku, x509.KeyUsage)
    assert (ku.key_cert_sign, ku.crl_sign) == (True, True)
    assert not any(
        (ku.digital_signature, ku.content_commitment, ku.key_encipherment, ku.data_encipherment)
    )
    assert _value(cert, x509.BasicConstraints) == x509.BasicConstraints(ca=True, path_length=None)
    assert _value(cert, x509.SubjectAlternativeName) == x509.SubjectAlternativeName(
        [x509.DirectoryName(service_directory_name(tree, style))]
    )
    (point,) = list(_value(cert, x509.CRLDistributionPoints))
    assert point.full_name == [x509.DirectoryName(ca.name)]
    assert (point.relative_name, point.reasons, point.crl_issuer) == (None, None, None)
    assert _value(cert, x509.SubjectKeyIdentifier) == x509.SubjectKeyIdentifier.from_public_key(
        public_key
    )


def test_ca_serial_and_fresh_key() -> None:
    ca = CertificateAuthority.create(
        Tree.AUTH, not_before=CA_START, not_after=CA_END, serial_number=1
    )
    assert ca.certificate.serial_number == 1
    assert ca.style is NameStyle.TEST
    assert ca.generation == 1
    assert "key=" not in repr(ca)


# ---------------------------------------------------------------- user certificates, cryptography


@pytest.mark.parametrize(("tree", "style"), TREE_STYLES, ids=IDS)
def test_user_certificate(
    issued: dict[tuple[Tree, NameStyle], Issued],
    keys: dict[str, rsa.RSAPrivateKey],
    tree: Tree,
    style: NameStyle,
) -> None:
    ca, cert = issued[tree, style].ca, issued[tree, style].user
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.issuer == ca.name
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.COMMON_NAME, make_subject_id(0x012D57CA, ISSUED.date())),
    ]
    assert cert.serial_number == 0x012D57CA
    assert cert.public_key() == keys["card"].public_key()
    assert cert.not_valid_before_utc == ISSUED
    assert cert.not_valid_after_utc == datetime(2024, 2, 17, 14, 59, 59, tzinfo=UTC)

    expected = [(ExtensionOID.KEY_USAGE, True)]
    if tree is Tree.AUTH:
        expected.append((ExtensionOID.EXTENDED_KEY_USAGE, False))
    expected.append((ExtensionOID.CERTIFICATE_POLICIES, True))
    if tree is Tree.SIGN:
        expected.append((ExtensionOID.SUBJECT_ALTERNATIVE_NAME, False))
    expected += [
        (ExtensionOID.ISSUER_ALTERNATIVE_NAME, False),
        (ExtensionOID.CRL_DISTRIBUTION_POINTS, False),
        (ExtensionOID.AUTHORITY_INFORMATION_ACCESS, False),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False),
    ]
    assert _ext_list(cert) == expected

    ku = _value(cert, x509.KeyUsage)
    assert isinstance(ku, x509.KeyUsage)
    assert ku.digital_signature
    assert ku.content_commitment is (tree is Tree.SIGN)
    assert not any(
        (ku.key_encipherment, ku.data_encipherment, ku.key_agreement, ku.key_cert_sign, ku.crl_sign)
    )
    if tree is Tree.AUTH:
        assert list(_value(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert holder_from_certificate_raises(cert)
    else:
        assert holder_from_certificate(cert) == DEMO

    assert _value(cert, x509.CertificatePolicies) == x509.CertificatePolicies(
        [x509.PolicyInformation(certificate_policy_oid(tree, style), [CPS_URI])]
    )
    assert _value(cert, x509.IssuerAlternativeName) == x509.IssuerAlternativeName(
        [x509.DirectoryName(service_directory_name(tree, style))]
    )
    (point,) = list(_value(cert, x509.CRLDistributionPoints))
    assert point.full_name == [
        x509.DirectoryName(crl_distribution_point_name(tree, CHIYODA, style))
    ]
    assert _value(cert, x509.AuthorityInformationAccess) == x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP)
            )
        ]
    )
    aki = _value(cert, x509.AuthorityKeyIdentifier)
    ca_ski = _value(ca.certificate, x509.SubjectKeyIdentifier)
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    assert aki.authority_cert_issuer == [x509.DirectoryName(ca.name)]
    assert aki.authority_cert_serial_number == ca.certificate.serial_number
    assert _value(cert, x509.SubjectKeyIdentifier) == x509.SubjectKeyIdentifier.from_public_key(
        keys["card"].public_key()
    )


def holder_from_certificate_raises(cert: x509.Certificate) -> bool:
    with pytest.raises(ValueError, match="no subjectAltName"):
        holder_from_certificate(cert)
    return True


def test_policy_oids_in_certificates(issued: dict[tuple[Tree, NameStyle], Issued]) -> None:
    def oid(tree: Tree, style: NameStyle) -> str:
        policies = _value(issued[tree, style].user, x509.CertificatePolicies)
        (info,) = list(policies)
        return str(info.policy_identifier.dotted_string)

    assert oid(Tree.AUTH, NameStyle.PRODUCTION) == "1.2.392.200149.8.5.1.3.30"
    assert oid(Tree.AUTH, NameStyle.TEST) == "1.2.392.200149.8.5.1.3.30"
    assert oid(Tree.SIGN, NameStyle.PRODUCTION) == "1.2.392.200149.8.5.1.1.20"
    assert oid(Tree.SIGN, NameStyle.TEST) == "1.2.392.200149.8.5.1.0.20"


def test_test_and_production_certificates_differ_in_names(
    issued: dict[tuple[Tree, NameStyle], Issued],
) -> None:
    for tree in Tree:
        test, prod = issued[tree, NameStyle.TEST].user, issued[tree, NameStyle.PRODUCTION].user
        test_o = test.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        prod_o = prod.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert (test_o, prod_o) == ("JPKI-TEST", "JPKI")
        test_ian = _value(test, x509.IssuerAlternativeName)
        prod_ian = _value(prod, x509.IssuerAlternativeName)
        assert test_ian != prod_ian
        assert test.subject == prod.subject


def test_optional_fields(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    ca = cas[Tree.AUTH, NameStyle.TEST]
    cert = _issue(ca, keys["card"], ocsp_url=None, serial_number=None)
    assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS not in [e.oid for e in cert.extensions]
    assert 0 < cert.serial_number < 2**64


def test_user_key_signs_like_the_card(
    issued: dict[tuple[Tree, NameStyle], Issued], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    from cryptography.hazmat.primitives import hashes

    signature = keys["card"].sign(b"challenge", padding.PKCS1v15(), hashes.SHA256())
    public_key = issued[Tree.AUTH, NameStyle.TEST].user.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------- the same, parsed by asn1crypto


def _string_types(name: asn1_x509.Name) -> list[tuple[str, str, str]]:
    out = []
    for rdn in name.chosen:
        (attr,) = list(rdn)
        value = attr["value"]
        out.append((attr["type"].native, type(value.chosen).__name__, value.native))
    return out


@pytest.mark.parametrize(("tree", "style"), TREE_STYLES, ids=IDS)
def test_asn1crypto_parses_ca(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], tree: Tree, style: NameStyle
) -> None:
    cert = asn1_x509.Certificate.load(cas[tree, style].certificate.public_bytes(Encoding.DER))
    assert cert.signature_algo == "rsassa_pkcs1v15"
    assert cert.hash_algo == "sha256"
    assert cert.self_signed == "maybe"
    assert cert.ca is True
    assert cert.max_path_length is None
    assert cert.key_usage_value.native == {"key_cert_sign", "crl_sign"}
    exts = [
        (e["extn_id"].native, e["critical"].native) for e in cert["tbs_certificate"]["extensions"]
    ]
    assert exts == [
        ("key_usage", True),
        ("subject_alt_name", False),
        ("basic_constraints", True),
        ("crl_distribution_points", False),
        ("key_identifier", False),
    ]
    (general_name,) = list(cert.subject_alt_name_value)
    assert general_name.name == "directory_name"
    organization = {
        NameStyle.PRODUCTION: "公的個人認証サービス",
        NameStyle.TEST: "公的個人認証サービス（テスト）",
    }[style]
    unit = {Tree.AUTH: "公的個人認証サービス利用者証明用", Tree.SIGN: "公的個人認証サービス署名用"}[
        tree
    ]
    assert _string_types(general_name.chosen) == [
        ("country_name", "PrintableString", "JP"),
        ("organization_name", "UTF8String", organization),
        ("organizational_unit_name", "UTF8String", unit),
        ("organizational_unit_name", "UTF8String", "地方公共団体情報システム機構"),
    ]
    (point,) = list(cert.crl_distribution_points_value)
    (dp_name,) = list(point["distribution_point"].chosen)
    assert dp_name.chosen == cert.subject


@pytest.mark.parametrize(("tree", "style"), TREE_STYLES, ids=IDS)
def test_asn1crypto_parses_user_certificate(
    issued: dict[tuple[Tree, NameStyle], Issued], tree: Tree, style: NameStyle
) -> None:
    ca_der = issued[tree, style].ca.certificate.public_bytes(Encoding.DER)
    ca = asn1_x509.Certificate.load(ca_der)
    cert = asn1_x509.Certificate.load(issued[tree, style].user.public_bytes(Encoding.DER))
    tbs = cert["tbs_certificate"]
    assert tbs["version"].native == "v3"
    assert cert.hash_algo == "sha256"
    assert cert.issuer == ca.subject
    assert _string_types(cert.subject) == [
        ("country_name", "PrintableString", "JP"),
        ("common_name", "UTF8String", make_subject_id(0x012D57CA, ISSUED.date())),
    ]
    assert _string_types(cert.issuer)[1] == (
        "organization_name",
        "UTF8String",
        "JPKI" if style is NameStyle.PRODUCTION else "JPKI-TEST",
    )
    assert tbs["validity"]["not_after"].name == "utc_time"
    assert tbs["validity"]["not_after"].native == datetime(2024, 2, 17, 14, 59, 59, tzinfo=UTC)
    assert cert.public_key.algorithm == "rsa"
    assert cert.public_key.bit_size == 2048

    exts = {e["extn_id"].native: e["critical"].native for e in tbs["extensions"]}
    assert exts["key_usage"] is True
    assert exts["certificate_policies"] is True
    assert not any(v for k, v in exts.items() if k not in ("key_usage", "certificate_policies"))
    if tree is Tree.AUTH:
        assert cert.key_usage_value.native == {"digital_signature"}
        assert cert.extended_key_usage_value.native == ["client_auth"]
        assert "subject_alt_name" not in exts
    else:
        assert cert.key_usage_value.native == {"digital_signature", "non_repudiation"}
        assert "extended_key_usage" not in exts
    (policy,) = list(cert.certificate_policies_value)
    assert policy["policy_identifier"].dotted == certificate_policy_oid(tree, style).dotted_string
    (qualifier,) = list(policy["policy_qualifiers"])
    assert qualifier["policy_qualifier_id"].native == "certification_practice_statement"
    assert qualifier["qualifier"].native == CPS_URI
    (ian,) = list(cert.issuer_alt_name_value)
    assert ian.name == "directory_name"
    assert [t for _, t, _ in _string_types(ian.chosen)] == ["PrintableString"] + ["UTF8String"] * 3
    (point,) = list(cert.crl_distribution_points_value)
    (dp_name,) = list(point["distribution_point"].chosen)
    assert _string_types(dp_name.chosen)[-2:] == [
        ("organizational_unit_name", "UTF8String", "Tokyo-to"),
        ("common_name", "UTF8String", "Chiyoda-ku CRLDP"),
    ]
    assert cert.ocsp_urls == [OCSP]
    assert cert.authority_key_identifier == ca.key_identifier
    aki = cert.authority_key_identifier_value
    assert aki["authority_cert_serial_number"].native == ca.serial_number
    (issuer_name,) = list(aki["authority_cert_issuer"])
    assert issuer_name.chosen == ca.subject


def test_asn1crypto_reads_the_holder(issued: dict[tuple[Tree, NameStyle], Issued]) -> None:
    cert = asn1_x509.Certificate.load(
        issued[Tree.SIGN, NameStyle.TEST].user.public_bytes(Encoding.DER)
    )
    entries = []
    for general_name in cert.subject_alt_name_value:
        assert general_name.name == "other_name"
        value = general_name.chosen["value"].parsed
        assert isinstance(value, core.UTF8String)
        entries.append((general_name.chosen["type_id"].dotted, value.native))
    assert entries == [
        ("1.2.392.200149.8.5.5.1", "番号　花子"),
        ("1.2.392.200149.8.5.5.4", "319800217"),
        ("1.2.392.200149.8.5.5.3", "2"),
        ("1.2.392.200149.8.5.5.5", "東京都千代田区霞が関二丁目１番２号"),
        ("1.2.392.200149.8.5.5.2", "00000"),
        ("1.2.392.200149.8.5.5.6", "00000000000000000"),
    ]


def test_holder_round_trip_through_der(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    holder = HolderIdentity(
        name="髙橋　𠮷郎",
        sex=Sex.MALE,
        birth_date=date(1912, 7, 30),
        address="大阪府大阪市北区中之島一丁目３番２０号　ＡＢＣマンション１０１",
        name_substitutes="10010",
    )
    cert = _issue(cas[Tree.SIGN, NameStyle.PRODUCTION], keys["card"], holder=holder)
    reloaded = x509.load_der_x509_certificate(cert.public_bytes(Encoding.DER))
    assert holder_from_certificate(reloaded) == holder


# ---------------------------------------------------------------- openssl verify


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _openssl_verify(
    tmp_path: Path, issued_pair: Issued, at: datetime
) -> subprocess.CompletedProcess[str]:
    ca_pem, user_pem = tmp_path / "ca.pem", tmp_path / "user.pem"
    ca_pem.write_bytes(issued_pair.ca.certificate.public_bytes(PEM))
    user_pem.write_bytes(issued_pair.user.public_bytes(PEM))
    return subprocess.run(
        [
            "openssl", "verify", "-x509_strict", "-attime", _epoch(at),
            "-CAfile", str(ca_pem), str(user_pem),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(("tree", "style"), TREE_STYLES, ids=IDS)
def test_openssl_verify(
    issued: dict[tuple[Tree, NameStyle], Issued], tmp_path: Path, tree: Tree, style: NameStyle
) -> None:
    result = _openssl_verify(tmp_path, issued[tree, style], datetime(2021, 6, 1, tzinfo=UTC))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_openssl_honours_attime(
    issued: dict[tuple[Tree, NameStyle], Issued], tmp_path: Path
) -> None:
    pair = issued[Tree.AUTH, NameStyle.TEST]
    expired = _openssl_verify(tmp_path, pair, datetime(2024, 2, 17, 15, 0, tzinfo=UTC))
    assert expired.returncode != 0
    assert "expired" in expired.stdout + expired.stderr
    last_second = _openssl_verify(tmp_path, pair, datetime(2024, 2, 17, 14, 59, 0, tzinfo=UTC))
    assert last_second.returncode == 0, last_second.stdout + last_second.stderr


def test_openssl_rejects_the_other_tree(
    issued: dict[tuple[Tree, NameStyle], Issued], tmp_path: Path
) -> None:
    mixed = Issued(issued[Tree.SIGN, NameStyle.TEST].ca, issued[Tree.AUTH, NameStyle.TEST].user)
    result = _openssl_verify(tmp_path, mixed, datetime(2021, 6, 1, tzinfo=UTC))
    assert result.returncode != 0


# ---------------------------------------------------------------- refusals


def test_sign_certificate_needs_holder(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    with pytest.raises(ValueError, match="needs the holder identity"):
        _issue(cas[Tree.SIGN, NameStyle.TEST], keys["card"], holder=None)


def test_auth_certificate_refuses_holder(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    with pytest.raises(ValueError, match="carries no holder identity"):
        _issue(cas[Tree.AUTH, NameStyle.TEST], keys["card"], holder=DEMO)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"subject_id": "not-an-id"}, "subject id"),
        ({"not_before": datetime(2019, 7, 25)}, "timezone-aware"),
        ({"not_after": ISSUED}, "not before"),
        ({"serial_number": 0}, "positive"),
        ({"serial_number": -5}, "positive"),
        ({"serial_number": 2**160}, "20 octets"),
    ],
)
def test_issue_refuses(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority],
    keys: dict[str, rsa.RSAPrivateKey],
    extra: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        _issue(cas[Tree.AUTH, NameStyle.TEST], keys["card"], **extra)


def test_issue_refuses_non_rsa_2048_keys(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority],
) -> None:
    ca = cas[Tree.AUTH, NameStyle.TEST]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="RSA-2048"):
        ca.issue_user_certificate(
            ec_key.public_key(),  # type: ignore[arg-type]
            subject_id=make_subject_id(1, ISSUED.date()),
            not_before=ISSUED,
            not_after=CA_END,
            holder=None,
            municipality=CHIYODA,
        )
    with pytest.raises(ValueError, match="RSA-2048"):
        CertificateAuthority.create(
            Tree.AUTH,
            not_before=CA_START,
            not_after=CA_END,
            key=ec_key,  # type: ignore[arg-type]
        )


def test_ca_consistency_checks(
    cas: dict[tuple[Tree, NameStyle], CertificateAuthority], keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    auth = cas[Tree.AUTH, NameStyle.TEST]
    with pytest.raises(ValueError, match="subject does not match"):
        CertificateAuthority(Tree.SIGN, NameStyle.TEST, 1, auth.key, auth.certificate)
    with pytest.raises(ValueError, match="subject does not match"):
        CertificateAuthority(Tree.AUTH, NameStyle.PRODUCTION, 1, auth.key, auth.certificate)
    with pytest.raises(ValueError, match="public key"):
        CertificateAuthority(Tree.AUTH, NameStyle.TEST, 1, keys["card"], auth.certificate)
    with pytest.raises(ValueError, match="generation"):
        CertificateAuthority(Tree.AUTH, NameStyle.TEST, 0, auth.key, auth.certificate)
    with pytest.raises(ValueError, match="not before"):
        CertificateAuthority.create(
            Tree.AUTH, not_before=CA_END, not_after=CA_START, key=keys["auth"]
        )
    assert CertificateAuthority(Tree.AUTH, NameStyle.TEST, 1, auth.key, auth.certificate).name == (
        auth.name
    )
