"""The 券面事項入力補助AP, 券面AP, common AP and 住基AP (card-facts §4, §6-§8)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from PIL import Image

from apdu import builders, tlv
from card_emulator import Card, PersonaError
from card_emulator.card import throwaway_pki
from jpki.cv_certificate import decode_rsa_public_key
from readers.host_side.client import MynaClient
from readers.host_side.kenmen_ap import KenmenReader, parse_face, verify_face
from readers.host_side.text_ap import TextApReader, VerificationError, verify_text_ap
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA, Transmit, exchange

TEXT = "D3921000310001010408"
KENMEN = "D3921000310001010402"
COMMON = "D3921000310001010100"
JUKI = "D3921000310001010401"
MY_NUMBER = b"314159265352"
CHECK_B = b"55021720352285"
BIRTH_KEY = b"550217"


def select(tx: Transmit, aid: str) -> None:
    assert tx("00A4040C0A" + aid) == (b"", 0x9000)


def verify(tx: Transmit, fid: int, secret: bytes) -> int:
    assert tx(f"00A4020C02{fid:04X}") == (b"", 0x9000)
    return tx(f"00200080{len(secret):02X}" + secret.hex())[1]


def read_sw(tx: Transmit, fid: int) -> int:
    tx(f"00A4020C02{fid:04X}")
    return tx("00B0000001")[1]


TEXT_CREDENTIALS = {
    "none": None,
    "pin": (0x11, b"1234"),
    "A": (0x14, MY_NUMBER),
    "B": (0x15, CHECK_B),
}
# card-facts §4 / §6.1: the text AP, cell by cell (9000 = opens, 6982 = refused).
TEXT_MATRIX = {
    0x0001: {"none": 0x6982, "pin": 0x9000, "A": 0x9000, "B": 0x6982},
    0x0002: {"none": 0x6982, "pin": 0x9000, "A": 0x6982, "B": 0x9000},
    0x0003: {"none": 0x6982, "pin": 0x9000, "A": 0x9000, "B": 0x9000},
    0x0004: {"none": 0x9000, "pin": 0x9000, "A": 0x9000, "B": 0x9000},
    0x0005: {"none": 0x9000, "pin": 0x9000, "A": 0x9000, "B": 0x9000},
    0x0006: {"none": 0x6982, "pin": 0x9000, "A": 0x9000, "B": 0x9000},
    0x0007: {"none": 0x6982, "pin": 0x9000, "A": 0x9000, "B": 0x9000},
    0x0008: {"none": 0x6982, "pin": 0x9000, "A": 0x6982, "B": 0x6982},
}
KENMEN_CREDENTIALS = {
    "none": None,
    "birth": (0x11, BIRTH_KEY),
    "B": (0x12, CHECK_B),
    "A": (0x13, MY_NUMBER),
}
# card-facts §4 / §7.1: the 券面AP, cell by cell.
KENMEN_MATRIX = {
    0x0001: {"none": 0x6982, "birth": 0x9000, "B": 0x6982, "A": 0x6982},
    0x0002: {"none": 0x6982, "birth": 0x6982, "B": 0x9000, "A": 0x9000},
    0x0003: {"none": 0x9000, "birth": 0x9000, "B": 0x9000, "A": 0x9000},
    0x0004: {"none": 0x9000, "birth": 0x9000, "B": 0x9000, "A": 0x9000},
    0x0005: {"none": 0x6982, "birth": 0x6982, "B": 0x6982, "A": 0x9000},
    0x0006: {"none": 0x6982, "birth": 0x6982, "B": 0x9000, "A": 0x9000},
}


@pytest.mark.parametrize("credential", list(TEXT_CREDENTIALS))
def test_text_ap_access_matrix(tx: Transmit, credential: str) -> None:
    select(tx, TEXT)
    given = TEXT_CREDENTIALS[credential]
    if given is not None:
        assert verify(tx, *given) == 0x9000
    assert {fid: read_sw(tx, fid) for fid in TEXT_MATRIX} == {
        fid: row[credential] for fid, row in TEXT_MATRIX.items()
    }


@pytest.mark.parametrize("credential", list(KENMEN_CREDENTIALS))
def test_kenmen_access_matrix(tx: Transmit, credential: str) -> None:
    select(tx, KENMEN)
    given = KENMEN_CREDENTIALS[credential]
    if given is not None:
        assert verify(tx, *given) == 0x9000
    assert {fid: read_sw(tx, fid) for fid in KENMEN_MATRIX} == {
        fid: row[credential] for fid, row in KENMEN_MATRIX.items()
    }


def test_check_code_b_counts_down_only_its_own_counter(card: Card, tx: Transmit) -> None:
    select(tx, TEXT)
    assert verify(tx, 0x15, b"55021720359999") == 0x63C9
    assert tx("00200095")[1] == 0x63C9
    assert tx("00200094")[1] == 0x63CA  # 照合番号A untouched
    assert tx("00200091")[1] == 0x63C3  # PIN untouched
    select(tx, KENMEN)
    assert tx("00200092")[1] == 0x63CA  # the 券面AP's 照合番号B is a separate IEF
    select(tx, TEXT)
    assert verify(tx, 0x15, CHECK_B) == 0x9000
    assert card.credential("text", 0x15).remaining == 10


def test_blocked_from_issue_reference(tx: Transmit) -> None:
    select(tx, TEXT)
    assert tx("00200092")[1] == 0x63C0
    assert tx("002000920431323334")[1] == 0x6984


def text_files(tx: Transmit) -> dict[int, bytes]:
    select(tx, TEXT)
    verify(tx, 0x11, b"1234")
    files = {}
    for fid in (1, 2, 3, 4):
        tx(f"00A4020C02{fid:04X}")
        files[fid] = tx("00B00000000000")[0]
    return files


def test_text_ap_layout_and_integrity(tx: Transmit) -> None:
    files = text_files(tx)
    assert files[1] == bytes.fromhex("FF100C") + MY_NUMBER + b"\xff\xff"
    assert len(files[3]) == 336
    assert files[3][:5] == bytes.fromhex("FF3082014B")
    assert len(files[4]) == 568
    assert files[2][:2] == b"\xff\x20"
    root = throwaway_pki().cv_signer("text").root_public_key
    verify_text_ap(files[1], files[2], files[3], files[4], root)
    name_at = files[2].index("花子".encode())
    tampered = bytearray(files[2])
    tampered[name_at] ^= 0x01
    with pytest.raises(VerificationError, match="DF32"):
        verify_text_ap(files[1], bytes(tampered), files[3], files[4], root)
    with pytest.raises(VerificationError, match="DF31"):
        verify_text_ap(files[1][:-1] + b"\x00", files[2], files[3], files[4], root)
    wrong_root = throwaway_pki().cv_signer("kenmen").root_public_key
    with pytest.raises(VerificationError, match="EF 0004"):
        verify_text_ap(files[1], files[2], files[3], files[4], wrong_root)


def test_text_reader_over_a_transport(card: Card) -> None:
    reader = TextApReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_pin("1234")
    number, attributes = reader.verify(throwaway_pki().cv_signer("text").root_public_key)
    assert number == "314159265352"
    assert attributes.name == "番号\u3000花子"
    assert attributes.address == "東京都千代田区霞が関二丁目１番２号"
    assert attributes.birth_date.isoformat() == "1980-02-17"
    assert attributes.sex == 2
    reader.unlock_with_check_code_b(CHECK_B.decode())
    assert reader.attributes() == attributes


def test_long_address_uses_long_form_length(tmp_path: Path) -> None:
    address = (
        "北海道札幌市中央区北一条西二丁目一番地"
        + "あいうえおかきくけこさしすせそ" * 2
        + "一二三四五六七八九十一"
    )
    assert len(address) == 60
    persona = tmp_path / "long.toml"
    persona.write_text(
        DEMO_PERSONA.read_text("utf-8").replace("東京都千代田区霞が関二丁目１番２号", address),
        "utf-8",
    )
    card = Card.from_persona(persona)
    reader = TextApReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_pin("1234")
    _, attributes = reader.verify(throwaway_pki().cv_signer("text").root_public_key)
    assert attributes.address == address
    raw = reader.raw(0x0002)
    assert raw[2] == 0x81  # FF 20 81 LL: the body exceeds 127 bytes
    offsets = tlv.decode_one(raw).child(0xDF21).value
    assert int.from_bytes(offsets[:2], "big") == 4 + 11  # DF22 starts after FF20 81 LL + DF21
    assert raw[int.from_bytes(offsets[:2], "big") :][:2] == b"\xdf\x22"
    face = KenmenReader(MynaClient(InProcessTransport(card)))
    face.unlock_with_check_code_a("314159265352")
    assert (
        face.face(throwaway_pki().cv_signer("kenmen").root_public_key).images()["address"].mode
        == "1"
    )


def test_kenmen_face_signature_and_images(card: Card) -> None:
    reader = KenmenReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_check_code_b(CHECK_B.decode())
    root = throwaway_pki().cv_signer("kenmen").root_public_key
    face = reader.face(root)
    assert face.birth_date.isoformat() == "1980-02-17"
    assert face.expiry.isoformat() == "2035-02-17"
    assert face.sex == 2
    images = face.images()
    assert images["name"].mode == "1" and images["name"].format == "PNG"
    assert images["address"].mode == "1"
    assert images["security_code"].mode == "1" and images["security_code"].size == (24, 12)
    assert images["photo"].format == "JPEG2000" and images["photo"].mode == "L"
    # the card key in the face is the key that answers the card-presence challenge
    challenge = bytes(range(16))

    transport = InProcessTransport(card)

    digest_info = (
        bytes.fromhex("3031300D060960864801650304020105000420") + hashlib.sha256(challenge).digest()
    )
    response = transport.transmit(builders.compute_signature(digest_info, key_sfi=0).to_bytes())
    assert response[-2:] == b"\x90\x00"
    face.card_key.verify(
        response[:-2],
        hashlib.sha256(challenge).digest(),
        padding.PKCS1v15(),
        utils.Prehashed(hashes.SHA256()),
    )


def test_kenmen_face_tamper_is_detected(card: Card) -> None:
    reader = KenmenReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_check_code_a(MY_NUMBER.decode())
    raw = reader.client.read_ef(0x0002)
    signer = reader.signer_key(throwaway_pki().cv_signer("kenmen").root_public_key)
    verify_face(parse_face(raw), signer)
    name_png_at = raw.index(b"\x89PNG")  # DF25, the name image (signed, group 2)
    tampered = bytearray(raw)
    tampered[name_png_at + 40] ^= 0xFF
    with pytest.raises(VerificationError, match="DF28"):
        verify_face(parse_face(bytes(tampered)), signer)
    expiry_at = raw.index(b"20350217")  # DF29 is outside the signature
    untouched = bytearray(raw)
    untouched[expiry_at : expiry_at + 8] = b"20990101"
    verify_face(parse_face(bytes(untouched)), signer)


def test_kenmen_age_record_and_my_number_image(card: Card) -> None:
    reader = KenmenReader(MynaClient(InProcessTransport(card)))
    root = throwaway_pki().cv_signer("kenmen").root_public_key
    reader.unlock_with_birth_date(BIRTH_KEY.decode())
    assert reader.birth_date(root).isoformat() == "1980-02-17"
    reader.unlock_with_check_code_a(MY_NUMBER.decode())
    image = reader.my_number_image(root)
    assert (image.format, image.mode, image.size) == ("PNG", "1", (72, 12))


def test_common_ap_record_and_internal_authenticate(card: Card, tx: Transmit) -> None:
    select(tx, COMMON)
    record, sw = tx("00B2010C00")
    assert sw == 0x9000
    assert record == b"\x01\x1c" + b"400000012719843" + b"13101" + b"20350217"
    tx("00A4020C020001")
    assert tx("00B2010400") == (record, 0x9000)
    assert tx("00B2020400")[1] == 0x6A83
    assert tx("00B2010500")[1] == 0x6A81
    assert tx("00B0000001")[1] == 0x6981  # READ BINARY on a record EF
    challenge = bytes(range(32))
    signature, sw = tx("0088009920" + challenge.hex() + "00")
    assert sw == 0x9000
    key = card.content.application("common").keys[0x19].public_key
    key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
    assert tx("0088009920" + challenge.hex() + "00")[0] == signature  # deterministic
    select(tx, "D392F000260100000001")
    assert tx("0088009720" + challenge.hex() + "00")[1] == 0x6982  # JPKI key: behind a PIN
    select(tx, KENMEN)
    assert tx("008800" + "9A20" + challenge.hex() + "00")[1] == 0x6985  # 券面 signing key


def test_common_pin_change_key(tx: Transmit) -> None:
    select(tx, COMMON)
    tx("00A4020C02001C")
    assert tx("803200800435363738")[1] == 0x6982
    assert tx("002000800431323334")[1] == 0x9000
    assert tx("002401800435363738")[1] == 0x6985  # 001C is changed with CHANGE KEY
    assert tx("803200800435363738")[1] == 0x9000
    select(tx, COMMON)
    assert verify(tx, 0x1C, b"5678") == 0x9000


@pytest.mark.parametrize("layout", ["record", "binary"])
def test_juki_resident_code(tmp_path: Path, layout: str) -> None:
    persona = tmp_path / "p.toml"
    persona.write_text(
        DEMO_PERSONA.read_text("utf-8").replace(
            'atr = "classic"', f'atr = "classic"\njuki_layout = "{layout}"'
        ),
        "utf-8",
    )
    card = Card.from_persona(persona)

    def tx(command: str) -> tuple[bytes, int]:
        return exchange(card, command)

    select(tx, JUKI)
    read = "00B2010C00" if layout == "record" else "00B0810000"
    assert tx(read) == (b"", 0x6982)
    assert verify(tx, 0x1C, b"1234") == 0x9000
    data, sw = tx(read)
    assert sw == 0x9000
    assert data.endswith(b"12345678901")
    assert len(data) == (13 if layout == "record" else 11)


def test_get_data_at_issuer_security_domain(tx: Transmit) -> None:
    assert tx("00CA00F000") == (b"13101", 0x9000)
    assert tx("00CA00F200") == (b"20350217", 0x9000)
    assert tx("00CA5F5100") == (bytes.fromhex("E000FF8131FE4514"), 0x9000)
    assert tx("00CA00F100")[1] == 0x6A88
    assert tx("00CA00F204")[1] == 0x6700
    select(tx, TEXT)
    assert tx("00CA00F000")[1] == 0x6A88  # only while no AP is selected
    tx("00A4040C07A0000001510000")
    assert tx("00CA00F000")[1] == 0x9000


def test_cv_certificate_holds_the_certified_key(tx: Transmit) -> None:
    select(tx, KENMEN)
    tx("00A4020C020004")
    cv, _ = tx("00B00000000000")
    body = tlv.decode_one(cv).child(0x5F4E).value
    assert body[:7] == b"6900023"
    key = decode_rsa_public_key(body[32:])
    assert (
        key.public_numbers()
        == throwaway_pki().cv_signer("kenmen").certificate.public_key.public_numbers()
    )


def test_images_decode(card: Card) -> None:
    reader = KenmenReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_check_code_a(MY_NUMBER.decode())
    face = reader.face()
    for raw in (face.name_png, face.address_png, face.photo_jp2, face.security_code_png):
        Image.open(io.BytesIO(raw)).load()


def test_persona_named_image_files_are_used(tmp_path: Path) -> None:
    from card_emulator import render

    name_png = render.render_text_png("画像　太郎", width=200, height=40)
    (tmp_path / "name.png").write_bytes(name_png)
    persona = tmp_path / "with-images.toml"
    persona.write_text(DEMO_PERSONA.read_text("utf-8") + '\n[images]\nname = "name.png"\n', "utf-8")
    card = Card.from_persona(persona)
    reader = KenmenReader(MynaClient(InProcessTransport(card)))
    reader.unlock_with_check_code_a(MY_NUMBER.decode())
    face = reader.face(throwaway_pki().cv_signer("kenmen").root_public_key)
    assert face.name_png == name_png
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO_PERSONA.read_text("utf-8") + '\n[images]\nphoto = "name.png"\n', "utf-8")
    with pytest.raises(PersonaError, match=r"images\.photo: "):
        Card.from_persona(bad)
