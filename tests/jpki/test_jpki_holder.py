"""The 基本4情報 in the 署名用 subjectAltName: encoding, decoding, substitute maps."""

from __future__ import annotations

from datetime import date

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from jpki.holder import (
    OID_ADDRESS,
    OID_ADDRESS_SUBSTITUTES,
    OID_BIRTH_DATE,
    OID_NAME,
    OID_NAME_SUBSTITUTES,
    OID_SEX,
    HolderIdentity,
    Sex,
    holder_from_general_names,
    holder_general_names,
)

DEMO = HolderIdentity(
    name="番号　花子",
    sex=Sex.FEMALE,
    birth_date=date(1980, 2, 17),
    address="東京都千代田区霞が関二丁目１番２号",
)


def _utf8(value: str) -> bytes:
    return bytes(core.UTF8String(value).dump())


def test_encoding_order_and_values() -> None:
    names = holder_general_names(DEMO)
    assert all(isinstance(n, x509.OtherName) for n in names)
    others = [n for n in names if isinstance(n, x509.OtherName)]
    assert [n.type_id.dotted_string for n in others] == [
        "1.2.392.200149.8.5.5.1",
        "1.2.392.200149.8.5.5.4",
        "1.2.392.200149.8.5.5.3",
        "1.2.392.200149.8.5.5.5",
        "1.2.392.200149.8.5.5.2",
        "1.2.392.200149.8.5.5.6",
    ]
    assert [n.value for n in others] == [
        _utf8("番号　花子"),
        _utf8("319800217"),
        _utf8("2"),
        _utf8("東京都千代田区霞が関二丁目１番２号"),
        _utf8("00000"),
        _utf8("0" * 17),
    ]
    assert others[0].value[0] == 0x0C  # UTF8String tag


def test_round_trip_through_der_and_asn1crypto() -> None:
    der = x509.SubjectAlternativeName(holder_general_names(DEMO)).public_bytes()
    parsed = asn1_x509.GeneralNames.load(der)
    texts = {g.chosen["type_id"].dotted: g.chosen["value"].parsed for g in parsed}
    assert all(isinstance(v, core.UTF8String) for v in texts.values())
    assert texts["1.2.392.200149.8.5.5.1"].native == "番号　花子"
    assert texts["1.2.392.200149.8.5.5.5"].native == DEMO.address
    assert (
        holder_from_general_names(x509.SubjectAlternativeName(holder_general_names(DEMO))) == DEMO
    )


def test_maps_normalised_and_explicit() -> None:
    assert DEMO.name_substitutes == "00000"
    assert DEMO.address_substitutes == "0" * len(DEMO.address)
    # 髙 (outside JIS X 0208) recorded as the substitute 高 at position 0; a non-BMP character
    # in the address counts as one character.
    holder = HolderIdentity(
        name="高橋　𠮷郎",
        sex=Sex.MALE,
        birth_date=date(2019, 5, 1),
        address="𠮷野市一丁目",
        name_substitutes="10000",
        address_substitutes="100000",
    )
    decoded = holder_from_general_names(x509.SubjectAlternativeName(holder_general_names(holder)))
    assert decoded == holder
    assert decoded.name_substitutes == "10000"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": " 番号　花子"}, "name"),
        ({"address": ""}, "address"),
        ({"address": "あ" * 201}, "at most 200"),
        ({"sex": "2"}, "Sex"),
        ({"birth_date": date(1868, 1, 24)}, "before 明治"),
        ({"name_substitutes": "0000"}, "one '0'/'1' per character"),
        ({"name_substitutes": "00200"}, "one '0'/'1' per character"),
        ({"address_substitutes": "0" * 18}, "one '0'/'1' per character"),
    ],
)
def test_holder_refuses(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "name": DEMO.name,
        "sex": DEMO.sex,
        "birth_date": DEMO.birth_date,
        "address": DEMO.address,
    }
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        HolderIdentity(**fields)  # type: ignore[arg-type]


def test_address_of_200_characters_is_accepted() -> None:
    holder = HolderIdentity("番号　花子", Sex.UNKNOWN, date(1980, 2, 17), "あ" * 200)
    assert len(holder.address_substitutes) == 200


def _san(entries: list[tuple[x509.ObjectIdentifier, bytes]]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.OtherName(oid, value) for oid, value in entries])


BASE = [
    (OID_NAME, _utf8("番号　花子")),
    (OID_SEX, _utf8("2")),
    (OID_BIRTH_DATE, _utf8("319800217")),
    (OID_ADDRESS, _utf8("東京都千代田区霞が関二丁目１番２号")),
]


def test_decode_any_order_without_maps_and_ignoring_foreign_entries() -> None:
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("example.jp"),
            *(x509.OtherName(oid, value) for oid, value in reversed(BASE)),
            x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"),
        ]
    )
    assert holder_from_general_names(san) == DEMO


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (BASE[1:], "lacks JPKI entry 1.2.392.200149.8.5.5.1"),
        ([*BASE, (OID_SEX, _utf8("1"))], "repeats"),
        ([(OID_NAME, b"\x13\x02AB"), *BASE[1:]], "not a DER UTF8String"),
        ([(OID_NAME, b"\x0c\x05AB"), *BASE[1:]], "not a DER UTF8String"),
        ([*BASE[:1], (OID_SEX, _utf8("4")), *BASE[2:]], "not 1, 2 or 3"),
        ([*BASE[:2], (OID_BIRTH_DATE, _utf8("419800217")), *BASE[3:]], "does not match"),
        ([*BASE, (OID_NAME_SUBSTITUTES, _utf8("0"))], "substitute map"),
        ([*BASE, (OID_ADDRESS_SUBSTITUTES, _utf8("x" * 17))], "substitute map"),
    ],
)
def test_decode_refuses(entries: list[tuple[x509.ObjectIdentifier, bytes]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        holder_from_general_names(_san(entries))
