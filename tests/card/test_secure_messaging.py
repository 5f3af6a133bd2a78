"""Secure messaging in the 券面事項入力補助AP, byte for byte as myna-card ``src/sm.rs`` sends it.

The host side here is written independently of the emulator (and of ``apdu.secure_messaging``):
cryptography's RSA-OAEP and AES primitives, the IV, padding and data objects spelled out in
the test, so a bug shared by both ends of our own code cannot hide.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from card_emulator import Card
from readers.host_side.client import MynaClient
from readers.host_side.secure_messaging import SessionBrokenError, TextApSession
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA, Transmit, exchange

TEXT = "D3921000310001010408"
SEED = bytes(range(0x40, 0x60))  # a fixed seed keeps every cryptogram reproducible
KEY = SEED[:16]
MY_NUMBER = b"314159265352"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


# --- an independent host --------------------------------------------------------------------


def iv(counter: int, key: bytes = KEY) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(counter.to_bytes(16, "big")) + encryptor.finalize()


def seal(plaintext: bytes, counter: int) -> bytes:
    padded = plaintext + b"\x80" + b"\x00" * (15 - len(plaintext) % 16)
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv(counter))).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def unseal(ciphertext: bytes, counter: int) -> bytes:
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv(counter))).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    body = padded.rstrip(b"\x00")
    assert body.endswith(b"\x80"), padded.hex()
    return body[:-1]


def do86(ciphertext: bytes) -> bytes:
    return bytes([0x86, len(ciphertext) + 1, 0x01]) + ciphertext


def sm_verify(fid: int, secret: bytes, counter: int) -> str:
    data = do86(seal(secret, counter))
    return f"0820 00{0x80 | fid:02X} {len(data):02X}" + data.hex()


def sm_select(fid: int, counter: int) -> str:
    data = do86(seal(fid.to_bytes(2, "big"), counter))
    return f"08A4 020C {len(data):02X}" + data.hex()


def sm_read(length: int = 0, offset: int = 0) -> str:
    # extended Lc (5) and extended Le (65536), as the crate's Command::with_data_le(.., 65536)
    return f"08B0 {offset:04X} 000005 9603 00{length:04X} 0000"


def response_plaintext(data: bytes, counter: int) -> bytes:
    assert data[0] == 0x86
    if data[1] == 0x81:
        length, start = data[2], 3
    elif data[1] == 0x82:
        length, start = int.from_bytes(data[2:4], "big"), 4
    else:
        length, start = data[1], 2
    assert len(data) == start + length and data[start] == 0x01
    return unseal(data[start + 1 :], counter)


def session_public_key(tx: Transmit) -> rsa.RSAPublicKey:
    assert tx("00A4020C020006")[1] == 0x9000
    raw, sw = tx("00B00000000000")
    assert sw == 0x9000
    # A1 82 01 09 { 90 03 01 00 01, 91 82 01 00 <256> }
    assert raw[:4] == bytes.fromhex("A1820109") and raw[4:9] == bytes.fromhex("9003010001")
    assert raw[9:13] == bytes.fromhex("91820100")
    return rsa.RSAPublicNumbers(65537, int.from_bytes(raw[13:269], "big")).public_key()


def delivery(public: rsa.RSAPublicKey, message: bytes | None = None) -> str:
    plain = bytes.fromhex("A0228020") + SEED if message is None else message
    return "80AE0000 000100" + public.encrypt(plain, OAEP).hex()


def open_session(tx: Transmit) -> None:
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    assert tx("00A4020C020011")[1] == 0x9000
    assert tx("002000800431323334")[1] == 0x9000  # the PIN, in the clear: unavoidable
    assert tx(delivery(session_public_key(tx))) == (b"", 0x9000)


@pytest.fixture
def tx(card: Card) -> Transmit:
    return lambda command: exchange(card, command.replace(" ", ""))


# --- the session ----------------------------------------------------------------------------


def test_a_session_reads_the_same_bytes_as_a_plain_read(card: Card, tx: Transmit) -> None:
    open_session(tx)
    assert tx(sm_verify(0x14, MY_NUMBER, 1)) == (b"", 0x9000)  # 照合番号A, encrypted
    assert tx(sm_select(0x0001, 2)) == (b"", 0x9000)
    data, sw = tx(sm_read())
    assert sw == 0x9000
    my_number_ef = response_plaintext(data, 3)
    assert my_number_ef == bytes.fromhex("FF100C") + MY_NUMBER + b"\xff\xff"
    assert my_number_ef == card.content.application("text").files[0x0001]
    # the plain read of the same file, outside the session's counter
    assert tx("00A4020C020001")[1] == 0x9000
    assert tx("00B0000011") == (my_number_ef, 0x9000)
    # 基本4情報 as well, with a length and an offset
    assert tx(sm_select(0x0002, 4)) == (b"", 0x9000)
    data, sw = tx(sm_read(length=9, offset=2))
    assert sw == 0x9000
    assert response_plaintext(data, 5) == card.content.application("text").files[0x0002][2:11]


def test_every_sm_command_advances_the_counter_even_when_refused(tx: Transmit) -> None:
    open_session(tx)
    assert tx(sm_verify(0x12, b"0000", 1)) == (b"", 0x6984)  # blocked at issue: refused
    assert tx(sm_select(0x0009, 2)) == (b"", 0x6A82)  # no such EF: refused
    assert tx(sm_select(0x0008, 3)) == (b"", 0x9000)
    data, sw = tx(sm_read())
    assert sw == 0x9000
    assert response_plaintext(data, 4) == b"\xff" * 16  # EF 0008: sixteen FF after the PIN


def test_plain_commands_between_do_not_advance_the_counter(tx: Transmit) -> None:
    open_session(tx)
    assert tx(sm_select(0x0005, 1)) == (b"", 0x9000)
    assert tx("00A4020C020004")[1] == 0x9000
    assert tx("00B0000004")[1] == 0x9000
    assert tx(sm_select(0x0001, 2)) == (b"", 0x9000)


def test_a_replayed_counter_ends_the_session_until_the_ap_is_selected(tx: Transmit) -> None:
    open_session(tx)
    assert tx(sm_verify(0x14, MY_NUMBER, 1)) == (b"", 0x9000)
    assert tx(sm_verify(0x14, MY_NUMBER, 1)) == (b"", 0x6988)  # counter replay
    assert tx(sm_verify(0x14, MY_NUMBER, 2)) == (b"", 0x69FC)  # session destroyed
    assert tx(sm_select(0x0001, 3)) == (b"", 0x69FC)
    assert tx(sm_read()) == (b"", 0x69FC)
    assert tx("00A4020C020001")[1] == 0x9000  # plain commands still answer
    assert tx("00B0000001")[1] == 0x9000  # and the PIN is still verified
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000  # selecting the AP ends it all
    assert tx(sm_read()) == (b"", 0x69FC)  # no session: SM refused
    assert tx(sm_select(0x0001, 1)) == (b"", 0x6882)


def test_sm_objects_are_strict(tx: Transmit) -> None:
    def fresh() -> None:
        open_session(tx)

    fresh()  # 86 on READ BINARY instead of 96
    assert tx("08B0 0000 000005 8603 000000 0000")[1] == 0x6988
    fresh()  # 96 on VERIFY instead of 86
    assert tx("0820 0094 05 9603 000010")[1] == 0x6988
    fresh()  # a second object beside a correct one
    data = do86(seal(MY_NUMBER, 1)) + bytes.fromhex("9603000000")
    assert tx(f"08200094{len(data):02X}" + data.hex())[1] == 0x6988
    fresh()  # padding indicator 02
    data = bytes([0x86, 0x11, 0x02]) + seal(MY_NUMBER, 1)
    assert tx(f"08200094{len(data):02X}" + data.hex())[1] == 0x6988
    fresh()  # no data object at all
    assert tx("08200094")[1] == 0x6988
    fresh()  # the long length form is accepted
    data = bytes([0x86, 0x81, 0x11, 0x01]) + seal(MY_NUMBER, 1)
    assert tx(f"08200094{len(data):02X}" + data.hex()) == (b"", 0x9000)
    assert tx("0CB0 0000 000005 9603 000000 0000")[1] == 0x6987  # header authentication
    assert tx(sm_select(0x0001, 2))[1] == 0x69FC


def test_set_session_key_needs_the_pin_and_the_encryption_key_form(tx: Transmit) -> None:
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    assert tx("00B0860001")[1] == 0x6982  # EF 0006 needs a credential
    assert tx("00A4020C020014")[1] == 0x9000
    assert tx("00200080" + "0C" + MY_NUMBER.hex())[1] == 0x9000  # 照合番号A opens EF 0006 ...
    public = session_public_key(tx)
    assert tx(delivery(public))[1] == 0x6982  # ... but not key delivery
    assert tx("00A4020C020015")[1] == 0x9000
    assert tx("002000800E" + b"55021720352285".hex())[1] == 0x9000
    assert tx(delivery(public))[1] == 0x6982  # nor does 照合番号B
    assert tx("00A4020C020011")[1] == 0x9000
    assert tx("002000800431323334")[1] == 0x9000
    mac_only = bytes.fromhex("A0228120") + SEED
    both = bytes.fromhex("A0248020") + SEED[:16] + bytes.fromhex("8010") + SEED[16:]
    assert tx(delivery(public, mac_only))[1] == 0x6A80
    assert tx(delivery(public, both))[1] == 0x6A80
    assert tx(delivery(public, bytes.fromhex("A0228020") + SEED[:31]))[1] == 0x6A80
    n = public.public_numbers().n
    assert tx("80AE0000000100" + (n + 1).to_bytes(256, "big").hex())[1] == 0x6F00
    assert tx("80AE0000000100" + (n - 1).to_bytes(256, "big").hex())[1] == 0x6A80
    assert tx("80AE000080" + "00" * 128)[1] == 0x6700
    assert tx("80AE0100000100" + "00" * 256)[1] == 0x6A86
    assert tx(delivery(public)) == (b"", 0x9000)


@pytest.mark.parametrize(
    ("aid", "credential", "expected"),
    [
        ("D392F000260100000001", ("0018", b"1234"), 0x6982),  # JPKI-AP, even after the PIN
        ("D392F000260100000001", ("001B", b"ABC123"), 0x6982),
        ("D3921000310001010401", ("001C", b"1234"), 0x6982),  # 住基AP
        ("D3921000310001010402", ("0013", MY_NUMBER), 0x66F1),  # 券面AP
        ("D3921000310001010100", ("001C", b"1234"), 0x66F1),  # common AP
    ],
)
def test_set_session_key_is_known_card_wide(
    tx: Transmit, aid: str, credential: tuple[str, bytes], expected: int
) -> None:
    assert tx("00A4040C0A" + aid)[1] == 0x9000
    cryptogram = "80AE0000000100" + "11" * 256
    assert tx(cryptogram)[1] == expected
    fid, value = credential
    assert tx("00A4020C02" + fid)[1] == 0x9000
    assert tx(f"00200080{len(value):02X}" + value.hex())[1] == 0x9000
    assert tx(cryptogram)[1] == expected  # credentials change nothing
    assert tx(cryptogram)[1] != 0x6D00


@pytest.mark.parametrize("aid", ["D392F000260100000001", TEXT, "D3921000310001010402"])
def test_sm_classes_outside_a_session(tx: Transmit, aid: str) -> None:
    assert tx("00A4040C0A" + aid)[1] == 0x9000
    for cla in ("08", "0C"):
        assert tx(cla + "B0000001")[1] == 0x69FC  # READ BINARY: not 6882
        assert tx(cla + "200080")[1] == 0x69FC  # VERIFY
        assert tx(cla + "A4020C020001")[1] == 0x6882  # SELECT FILE


def test_last_command_indicator_and_set_public_ic_key(tx: Transmit) -> None:
    assert tx("80FC0000")[1] == 0x6700
    assert tx("00A4040C0AD392F000260100000001")[1] == 0x9000
    assert tx("80FC0000")[1] == 0x6700
    for p1p2 in ("0000", "00AE", "8000", "00B6"):
        assert tx(f"80A2{p1p2}000100" + "00" * 256)[1] == 0x6A86
    assert tx("80A200C1000100" + "00" * 256)[1] == 0x6700


def test_reselecting_the_text_ap_ends_the_session(tx: Transmit) -> None:
    open_session(tx)
    assert tx(sm_select(0x0001, 1))[1] == 0x9000
    assert tx("00A4040C0A" + TEXT)[1] == 0x9000
    assert tx(sm_select(0x0001, 2))[1] == 0x6882


# --- the host side and the card image ---------------------------------------------------------


def test_host_session_reads_through_our_client(card: Card) -> None:
    client = MynaClient(InProcessTransport(card))
    session = TextApSession.open(client, "1234", seed=SEED)
    session.verify_check_code_a(MY_NUMBER.decode())
    assert session.my_number() == MY_NUMBER.decode()
    attributes = session.attributes()
    assert (attributes.name, attributes.sex) == ("番号　花子", 2)
    assert session.counter == 6
    session.counter = 3  # out of step with the card
    with pytest.raises(SessionBrokenError, match="6988"):
        session.verify_check_code_a(MY_NUMBER.decode())
    with pytest.raises(SessionBrokenError):
        session.my_number()


def test_the_key_delivery_key_lives_in_the_image_and_stays_there(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    first = Card.from_persona(DEMO_PERSONA, image=image)
    key = first.content.application("text").session_key
    assert key is not None
    private = key.private_key.private_numbers()
    first.close()
    with Card.open(image) as card:
        reopened = card.content.application("text").session_key
        assert reopened is not None
        assert reopened.private_key.private_numbers() == private
        session = TextApSession.open(MynaClient(InProcessTransport(card)), "1234")
        assert session.my_number() == MY_NUMBER.decode()
    # the public half is what EF 0006 publishes; the private half is in no EF
    with Card.open(image) as card:
        text = card.content.application("text")
        d = private.d.to_bytes(256, "big")
        assert all(d[:32] not in content for content in text.files.values())
        assert hashlib.sha256(d).digest() not in b"".join(text.files.values())
