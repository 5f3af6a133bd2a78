"""Distinguished names of both trees in both name styles."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import date

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from jpki.names import (
    Municipality,
    NameStyle,
    Tree,
    ca_name,
    crl_distribution_point_name,
    make_subject_id,
    service_directory_name,
    subject_name,
    validate_subject_id,
)

CHIYODA = Municipality("Tokyo-to", "Chiyoda-ku", "13101")
AGENCY = "Japan Agency for Local Authority Information Systems"


def _pairs(name: x509.Name) -> list[tuple[str, str]]:
    """(short attribute name, value) in encoding order, one attribute per RDN."""
    out = []
    for rdn in name.rdns:
        (attr,) = list(rdn)
        out.append((attr.rfc4514_attribute_name, str(attr.value)))
    return out


@pytest.mark.parametrize(
    ("tree", "unit"),
    [(Tree.AUTH, "JPKI for user authentication"), (Tree.SIGN, "JPKI for digital signature")],
)
def test_ca_name(tree: Tree, unit: str) -> None:
    assert _pairs(ca_name(tree, NameStyle.PRODUCTION)) == [
        ("C", "JP"),
        ("O", "JPKI"),
        ("OU", unit),
        ("OU", AGENCY),
    ]
    assert _pairs(ca_name(tree, NameStyle.TEST)) == [
        ("C", "JP"),
        ("O", "JPKI-TEST"),
        ("OU", unit),
        ("OU", AGENCY),
    ]
    assert ca_name(tree) == ca_name(tree, NameStyle.TEST)  # test style is the default


@pytest.mark.parametrize(
    ("tree", "unit"),
    [(Tree.AUTH, "公的個人認証サービス利用者証明用"), (Tree.SIGN, "公的個人認証サービス署名用")],
)
def test_service_directory_name(tree: Tree, unit: str) -> None:
    assert _pairs(service_directory_name(tree, NameStyle.PRODUCTION)) == [
        ("C", "JP"),
        ("O", "公的個人認証サービス"),
        ("OU", unit),
        ("OU", "地方公共団体情報システム機構"),
    ]
    assert _pairs(service_directory_name(tree, NameStyle.TEST)) == [
        ("C", "JP"),
        ("O", "公的個人認証サービス（テスト）"),
        ("OU", unit),
        ("OU", "地方公共団体情報システム機構"),
    ]


@pytest.mark.parametrize("style", list(NameStyle))
@pytest.mark.parametrize("tree", list(Tree))
def test_string_types(tree: Tree, style: NameStyle) -> None:
    for name in (
        ca_name(tree, style),
        service_directory_name(tree, style),
        crl_distribution_point_name(tree, CHIYODA, style),
        subject_name("840444E37PAFHN08220003A"),
    ):
        for attr in name:
            expected = (
                _ASN1Type.PrintableString
                if attr.oid == NameOID.COUNTRY_NAME
                else _ASN1Type.UTF8String
            )
            assert attr._type == expected


def test_crl_distribution_point_name() -> None:
    assert _pairs(crl_distribution_point_name(Tree.AUTH, CHIYODA, NameStyle.PRODUCTION)) == [
        ("C", "JP"),
        ("O", "JPKI"),
        ("OU", "JPKI for user authentication"),
        ("OU", "CRL Distribution Points"),
        ("OU", "Tokyo-to"),
        ("CN", "Chiyoda-ku CRLDP"),
    ]
    tsukuba = Municipality("Ibaraki-ken", "Tsukuba-shi")
    assert crl_distribution_point_name(Tree.SIGN, tsukuba).rfc4514_string() == (
        "CN=Tsukuba-shi CRLDP,OU=Ibaraki-ken,OU=CRL Distribution Points,"
        "OU=JPKI for digital signature,O=JPKI-TEST,C=JP"
    )


@pytest.mark.parametrize("tree", list(Tree))
def test_test_and_production_names_differ_only_in_o(tree: Tree) -> None:
    builders: list[Callable[[NameStyle], x509.Name]] = [
        lambda s: ca_name(tree, s),
        lambda s: service_directory_name(tree, s),
        lambda s: crl_distribution_point_name(tree, CHIYODA, s),
    ]
    for build in builders:
        test, prod = _pairs(build(NameStyle.TEST)), _pairs(build(NameStyle.PRODUCTION))
        differing = [(t, p) for t, p in zip(test, prod, strict=True) if t != p]
        assert len(differing) == 1
        (t_attr, p_attr) = differing[0]
        assert t_attr[0] == p_attr[0] == "O"
        assert "TEST" in t_attr[1] or "テスト" in t_attr[1]


@pytest.mark.parametrize(
    ("prefecture", "city", "code"),
    [
        ("東京都", "Chiyoda-ku", None),
        ("Tokyo-to", "", None),
        ("Tokyo-to", "Chiyoda-ku", "1310"),
        ("Tokyo-to", "Chiyoda-ku", "131016"),
        ("Tokyo-to", "Chiyoda-ku", "1310a"),
    ],
)
def test_municipality_refuses(prefecture: str, city: str, code: str | None) -> None:
    with pytest.raises(ValueError, match="municipality"):
        Municipality(prefecture, city, code)


def test_subject_id() -> None:
    sid = make_subject_id(0x012D57CA, date(2019, 7, 25))
    assert len(sid) == 23
    assert validate_subject_id(sid) == sid
    assert make_subject_id(0x012D57CA, date(2019, 7, 25)) == sid  # deterministic
    assert make_subject_id(0x012D57CB, date(2019, 7, 25)) != sid
    assert make_subject_id(0x012D57CA, date(2019, 7, 26)) != sid
    ids = {make_subject_id(n, date(2020, 1, 1)) for n in range(500)}
    assert len(ids) == 500
    assert all(validate_subject_id(i) == i for i in ids)


def test_subject_name() -> None:
    name = subject_name("840444E37PAFHN08220003A")  # the real example
    assert _pairs(name) == [("C", "JP"), ("CN", "840444E37PAFHN08220003A")]


@pytest.mark.parametrize(
    "bad", ["840444e37pafhn08220003a", "840444E37PAFHN08220003", "840444E37PAFHN08220003AB", ""]
)
def test_subject_id_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="subject id"):
        subject_name(bad)


def test_jpki_imports_no_upper_layer() -> None:
    code = (
        "import sys, jpki, jpki.ca, jpki.era, jpki.holder, jpki.keys, jpki.names, jpki.profile\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('card_emulator', 'readers', 'harness')]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
