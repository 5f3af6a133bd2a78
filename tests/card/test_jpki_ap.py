"""JPKI-AP end to end, in-process: the sequences real readers send (card-facts §5, §10.4)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apdu import builders
from card_emulator import Card
from tests.conftest import DEMO_PERSONA, Transmit, exchange

JPKI = "D392F000260100000001"
SELECT_JPKI = "00A4040C0A" + JPKI
SHA256_DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420")


def read_like_opensc(tx: Transmit, fid: str) -> bytes:
    """OpenSC's jpki driver: SELECT EF, READ 4 bytes, size = LL+4, 256-byte chunks from 0."""
    assert tx("00A4020C02" + fid) == (b"", 0x9000)
    head, sw = tx("00B0000004")
    assert sw == 0x9000
    assert head[:2] == b"\x30\x82"
    size = int.from_bytes(head[2:4], "big") + 4
    data = b""
    while len(data) < size:
        chunk = min(256, size - len(data))
        offset = len(data)
        part, sw = tx(f"00B0{offset:04X}{chunk % 256:02X}")
        assert sw == 0x9000
        data += part
    return data


def certificate(tx: Transmit, fid: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(read_like_opensc(tx, fid))


def test_opensc_bind_and_certificate_read(tx: Transmit) -> None:
    assert tx(SELECT_JPKI) == (b"", 0x9000)
    assert tx("00A4020C020018") == (b"", 0x9000)
    assert tx("00200080") == (b"", 0x63C3)
    assert tx("00A4020C02001B") == (b"", 0x9000)
    assert tx("00200080") == (b"", 0x63C5)
    auth = certificate(tx, "000A")
    auth_ca = certificate(tx, "000B")
    sign_ca = certificate(tx, "0002")
    assert auth.issuer == auth_ca.subject
    assert "JPKI-TEST" in auth.issuer.rfc4514_string()
    auth_ca.public_key().verify(  # type: ignore[union-attr]
        auth.signature, auth.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256()
    )
    assert sign_ca.subject != auth_ca.subject


def test_sign_with_auth_key_after_pin(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    auth = certificate(tx, "000A")
    assert tx("00A4020C020018") == (b"", 0x9000)
    assert tx("002000800431323334") == (b"", 0x9000)
    assert tx("00A4020C020017") == (b"", 0x9000)
    digest = hashlib.sha256(b"kiosk challenge").digest()
    data = SHA256_DIGEST_INFO + digest
    signature, sw = tx(builders.compute_signature(data).to_bytes())
    assert sw == 0x9000
    assert len(signature) == 256
    public = auth.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"kiosk challenge", padding.PKCS1v15(), hashes.SHA256())
    # The verified state survives several signatures (card-facts §4).
    assert tx(builders.compute_signature(data).to_bytes())[1] == 0x9000


def test_sign_without_pin_is_refused(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020017")
    data = SHA256_DIGEST_INFO + bytes(32)
    assert tx(builders.compute_signature(data).to_bytes()) == (b"", 0x6982)
    # the auth PIN does not enable the signing key (card-facts §4, GUESS: no)
    assert tx("00200098" + "0431323334") == (b"", 0x9000)
    assert tx(builders.compute_signature(data, key_sfi=0x1A).to_bytes()) == (b"", 0x6982)
    assert tx(builders.compute_signature(data, key_sfi=0x17).to_bytes())[1] == 0x9000


def test_sign_certificate_needs_password(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020001")
    assert tx("00B0000004") == (b"", 0x6982)
    tx("00A4020C020018")
    tx("002000800431323334")  # the auth PIN does not open 0001
    tx("00A4020C020001")
    assert tx("00B0000004") == (b"", 0x6982)
    assert tx("0020009B06" + b"ABC123".hex()) == (b"", 0x9000)
    cert = certificate(tx, "0001")
    assert cert.subject.rfc4514_string().startswith("CN=")
    sign_key = cert.public_key()
    assert isinstance(sign_key, rsa.RSAPublicKey)
    tx("00A4020C02001A")
    signature, sw = tx(builders.compute_signature(SHA256_DIGEST_INFO + bytes(32)).to_bytes())
    assert sw == 0x9000
    sign_key.verify(signature, bytes(32), padding.PKCS1v15(), _prehashed())


def _prehashed() -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives.asymmetric import utils

    return utils.Prehashed(hashes.SHA256())  # type: ignore[return-value]


def test_password_is_compared_byte_for_byte(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C02001B")
    assert tx("0020008006" + b"abc123".hex()) == (b"", 0x63C4)
    assert tx("0020008006" + b"ABC123".hex()) == (b"", 0x9000)
    assert tx("00200080") == (b"", 0x63C5)  # success restored the counter


def test_three_wrong_pins_lock(card: Card, tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020018")
    assert [tx("002000800439393939")[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert tx("002000800431323334") == (b"", 0x6984)  # even the right PIN
    assert tx("00200080") == (b"", 0x63C0)  # empty VERIFY on a blocked IEF
    tx("00A4020C020017")
    assert tx(builders.compute_signature(SHA256_DIGEST_INFO + bytes(32)).to_bytes())[1] == 0x6982
    assert card.credential("jpki", 0x18).blocked


def test_empty_verify_after_success_still_reports_counter(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020018")
    tx("002000800431323334")
    assert tx("00200080") == (b"", 0x63C3)  # never 9000 (OpenSC depends on it)


def test_wrong_length_pin_counts_as_wrong(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    assert tx("002000980531323334 35".replace(" ", "")) == (b"", 0x63C2)
    assert tx("0020009803313233") == (b"", 0x63C1)


@pytest.mark.parametrize("clear", ["reselect", "other_ap", "reset", "power"])
def test_security_state_is_cleared(card: Card, tx: Transmit, clear: str) -> None:
    tx(SELECT_JPKI)
    tx("0020009B06" + b"ABC123".hex())
    tx("00A4020C020001")
    assert tx("00B0000004")[1] == 0x9000
    tx("00A4020C02000A")  # selecting another EF keeps the state
    tx("00A4020C020001")
    assert tx("00B0000004")[1] == 0x9000
    if clear == "reselect":
        tx(SELECT_JPKI)
    elif clear == "other_ap":
        tx("00A4040C07A0000001510000")
        tx(SELECT_JPKI)
    elif clear == "reset":
        card.reset()
        tx(SELECT_JPKI)
    else:
        card.power_off()
        card.power_on()
        tx(SELECT_JPKI)
    tx("00A4020C020001")
    assert tx("00B0000004") == (b"", 0x6982)


def test_change_pin(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020018")
    assert tx("002401800435363738") == (b"", 0x6982)  # not verified yet
    tx("002000800431323334")
    assert tx("0024018003353637") == (b"", 0x6A80)  # not 4 digits
    assert tx("002401800435363738") == (b"", 0x9000)
    tx(SELECT_JPKI)
    tx("00A4020C020018")
    assert tx("002000800431323334") == (b"", 0x63C2)
    assert tx("002000800435363738") == (b"", 0x9000)


def test_change_password_enforces_format(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C02001B")
    tx("0020008006" + b"ABC123".hex())
    assert tx("0024018006" + b"abc999".hex()) == (b"", 0x6A80)
    assert tx("0024018006" + b"ABCDEF".hex()) == (b"", 0x6A80)  # needs a digit
    assert tx("0024018008" + b"NEWPASS1".hex()) == (b"", 0x9000)


def test_read_binary_forms(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C020006")
    token, sw = tx("00B0000000")  # Le 00 = 256, file has 160
    assert (len(token), sw) == (160, 0x9000)
    assert token[:32].rstrip(b" ") == b"JPKIAPICCTOKEN2"
    assert tx("00B0009F01") == (token[159:], 0x9000)
    assert tx("00B000A001") == (b"", 0x6B00)  # offset == size
    assert tx("00B0800000") == (b"", 0x6A86)  # SFI 0 is not a short EF identifier
    flags, sw = tx("00B0880000")  # SFI 8: EF 0008
    assert (flags, sw) == (bytes.fromhex("8F8F00"), 0x9000)
    whole, sw = tx("00B08A00000000")  # SFI 0A, extended Le 65536: the whole certificate
    assert sw == 0x9000
    x509.load_der_x509_certificate(whole)
    assert tx("00B0810000") == (b"", 0x6982)  # SFI 1: sign certificate, protected
    assert tx("00B0850000") == (b"", 0x6A82)  # no EF 0005 in this AP
    assert tx("00B0980000") == (b"", 0x6981)  # SFI 18 is the PIN IEF


def test_exactly_256_byte_chunk(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00A4020C02000A")
    data, sw = tx("00B0000000")
    assert (len(data), sw) == (256, 0x9000)


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        ("00A4040C0AD392F000260100000002", 0x6A82),  # unknown AID
        ("00A4040C05D392F00026", 0x6A82),  # a prefix is not selected by default
        ("00A4020C02001F", 0x6A82),
        ("00A4020C023F00", 0x6A82),
        ("00A40900023F00", 0x6A86),
        ("00A4000000", 0x6A86),  # select MF right after reset
        ("00B0000004", 0x6986),  # no AP, no EF
        ("00EE000000", 0x6D00),
        ("802A008000", 0x6986),
        ("80B0000004", 0x6E00),  # known INS in the wrong class
        ("A0A4040C0AD392F000260100000001", 0x6E00),
        ("01A4040C0AD392F000260100000001", 0x6881),
        ("45A4040C0AD392F000260100000001", 0x6881),
        ("0CA4040C0AD392F000260100000001", 0x6882),
        ("10A4040C0AD392F000260100000001", 0x6884),
        ("00A4040C0AD392F0002601", 0x6700),  # Lc does not match
        ("00", 0x6700),
    ],
)
def test_error_status_words(tx: Transmit, command: str, sw: int) -> None:
    assert tx(command) == (b"", sw)


def test_select_with_fci_and_mf_after_ap(tx: Transmit) -> None:
    data, sw = tx("00A4040010"[:8] + "0A" + JPKI + "00")
    assert sw == 0x9000
    assert data == bytes.fromhex("6F0C840A" + JPKI)
    assert tx("00A4000000") == (b"", 0x9000)
    tx("00A4020C020006")
    assert tx("00B0000001") == (b"J", 0x9000)  # MF select did not change the current DF


def test_get_challenge(tx: Transmit) -> None:
    a, sw = tx("0084000008")
    b, _ = tx("0084000008")
    assert (len(a), sw) == (8, 0x9000)
    assert a != b
    assert len(tx("0084000000")[0]) == 256
    assert tx("00840000000100") == (b"", 0x6985)  # extended Le refused
    assert tx("0084010008") == (b"", 0x6A86)


@pytest.mark.parametrize("scheme", [0, 1, 2, 3, 4, 5])
def test_signature_schemes(tx: Transmit, scheme: int) -> None:
    tx(SELECT_JPKI)
    auth = certificate(tx, "000A").public_key()
    assert isinstance(auth, rsa.RSAPublicKey)
    tx("00200098" + "0431323334")
    message = b"message to sign"
    digest = hashlib.sha256(message).digest()
    data = {
        0: SHA256_DIGEST_INFO + digest,
        1: message,
        2: digest,
        3: message,
        4: digest,
        5: message,
    }
    signature, sw = tx(
        builders.compute_signature(data[scheme], scheme=scheme, key_sfi=0x17).to_bytes()
    )
    assert sw == 0x9000
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    if scheme in (0, 2, 3):
        auth.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    elif scheme == 1:  # bare hash, no DigestInfo: recover with raw RSA
        n, e = auth.public_numbers().n, auth.public_numbers().e
        em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(256, "big")
        assert em == b"\x00\x01" + b"\xff" * (256 - 3 - 32) + b"\x00" + digest
    else:
        auth.verify(signature, message, pss, hashes.SHA256())


def test_signature_scheme_errors(tx: Transmit) -> None:
    tx(SELECT_JPKI)
    tx("00200098" + "0431323334")
    assert tx(builders.compute_signature(bytes(31), scheme=2, key_sfi=0x17).to_bytes())[1] == 0x6700
    assert (
        tx(builders.compute_signature(bytes(246), scheme=0, key_sfi=0x17).to_bytes())[1] == 0x6700
    )
    assert tx(builders.compute_signature(bytes(32), scheme=6, key_sfi=0x17).to_bytes())[1] == 0x6A86
    assert tx(builders.compute_signature(bytes(32), key_sfi=0x0A).to_bytes())[1] == 0x6A88
    tx("00A4020C02000A")
    assert tx(builders.compute_signature(bytes(32)).to_bytes())[1] == 0x6981  # cur EF not a key
    # raw PKCS#1 over non-DigestInfo data works (the card pads what it is given)
    assert tx(builders.compute_signature(b"\x01\x02", key_sfi=0x17).to_bytes())[1] == 0x9000


def test_private_key_never_in_any_response(card: Card, tx: Transmit) -> None:
    key = card.content.application("jpki").keys[0x17].private_key
    d = key.private_numbers().d.to_bytes(256, "big")
    p = key.private_numbers().p.to_bytes(128, "big")
    tx(SELECT_JPKI)
    tx("00200098" + "0431323334")
    seen = b""
    for fid in ("0017", "0018", "001A", "001B"):
        tx("00A4020C02" + fid)
        seen += tx("00B0000000")[0] + tx("00B00000000000")[0]
    assert d[:16] not in seen and p[:16] not in seen
    assert seen == b""


def test_smartphone_token_gates_the_auth_certificate(tmp_path: Path) -> None:
    persona = tmp_path / "phone.toml"
    persona.write_text(
        DEMO_PERSONA.read_text("utf-8").replace('"JPKIAPICCTOKEN2"', '"JPKIAPGPSETOKEN"'), "utf-8"
    )
    card = Card.from_persona(persona, strict=True)

    def tx(command: str) -> tuple[bytes, int]:
        return exchange(card, command)

    tx(SELECT_JPKI)
    tx("00A4020C020006")
    assert tx("00B0000020")[0].rstrip(b" ") == b"JPKIAPGPSETOKEN"
    tx("00A4020C02000A")
    assert tx("00B0000004") == (b"", 0x6982)
    tx("00A4020C02000B")
    assert tx("00B0000004")[1] == 0x9000  # the CA certificate stays free
    assert tx("00200098" + "0431323334") == (b"", 0x9000)
    assert certificate(tx, "000A").subject.rfc4514_string().startswith("CN=")
