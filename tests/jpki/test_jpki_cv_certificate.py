"""Card-verifiable (7F21) certificates of the 券面 APs (card-facts §6.4)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import tlv
from jpki.cv_certificate import (
    BODY_LENGTH,
    CERTIFICATE_LENGTH,
    EMULATOR_TEXT_AP_CA_KEY_ID,
    EMULATOR_TEXT_AP_KEY_ID,
    EMULATOR_VISUAL_AP_CA_KEY_ID,
    EMULATOR_VISUAL_AP_KEY_ID,
    RSA_PUBLIC_KEY_LENGTH,
    CvCertificate,
    CvIssuer,
    KeyId,
    decode_rsa_public_key,
    encode_rsa_public_key,
)
from jpki.keys import generate_rsa_key

# The production J-LIS text-AP CA key ID as published (card-facts §6.4).
PRODUCTION_TEXT_CA_ID = bytes.fromhex("35303030303333080530303100000000")


@pytest.fixture(scope="module")
def issuer() -> CvIssuer:
    return CvIssuer.create(EMULATOR_TEXT_AP_CA_KEY_ID)


@pytest.fixture(scope="module")
def ap_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def cert(issuer: CvIssuer, ap_key: rsa.RSAPrivateKey) -> CvCertificate:
    return issuer.issue(ap_key.public_key(), EMULATOR_TEXT_AP_KEY_ID)


@pytest.fixture(scope="module")
def cert_bytes(cert: CvCertificate) -> bytes:
    return cert.to_bytes()


# --- KeyId -------------------------------------------------------------------------------------


def test_key_id_from_parts_layout() -> None:
    key_id = KeyId.from_parts("5000033")
    assert key_id.raw == PRODUCTION_TEXT_CA_ID
    assert bytes(key_id) == PRODUCTION_TEXT_CA_ID
    assert (key_id.authority, key_id.serial, key_id.padding) == ("5000033", "001", bytes(4))
    assert str(key_id) == "5000033-001"


def test_key_id_padding_shows_in_str() -> None:
    key_id = KeyId.from_parts("5000020", padding=bytes.fromhex("000000A8"))
    assert key_id.raw[-1] == 0xA8
    assert str(key_id) == "5000020-001/000000A8"
    assert KeyId.parse(bytearray(key_id.raw)) == key_id


def test_emulator_ids_are_ours() -> None:
    ids = (
        EMULATOR_TEXT_AP_CA_KEY_ID,
        EMULATOR_VISUAL_AP_CA_KEY_ID,
        EMULATOR_TEXT_AP_KEY_ID,
        EMULATOR_VISUAL_AP_KEY_ID,
    )
    assert [key_id.authority for key_id in ids] == ["6900033", "6900023", "6900034", "6900024"]
    assert all(key_id.authority.startswith("69") for key_id in ids)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        PRODUCTION_TEXT_CA_ID[:15],
        PRODUCTION_TEXT_CA_ID + b"\x00",
        b"500003X" + PRODUCTION_TEXT_CA_ID[7:],
        PRODUCTION_TEXT_CA_ID[:7] + b"\x08\x06" + PRODUCTION_TEXT_CA_ID[9:],
        PRODUCTION_TEXT_CA_ID[:9] + b"0 1" + PRODUCTION_TEXT_CA_ID[12:],
    ],
)
def test_key_id_parse_rejects(raw: bytes) -> None:
    with pytest.raises(ValueError, match="key ID"):
        KeyId.parse(raw)


@pytest.mark.parametrize(
    ("authority", "serial", "pad"),
    [
        ("500003", "001", bytes(4)),
        ("５000033", "001", bytes(4)),
        ("5000033", "1", bytes(4)),
        ("5000033", "001", bytes(3)),
    ],
)
def test_key_id_from_parts_rejects(authority: str, serial: str, pad: bytes) -> None:
    with pytest.raises(ValueError, match="key ID"):
        KeyId.from_parts(authority, serial, pad)


# --- 90/91 public key ----------------------------------------------------------------------------


def test_public_key_encoding_layout(ap_key: rsa.RSAPrivateKey) -> None:
    public = ap_key.public_key()
    raw = encode_rsa_public_key(public)
    assert len(raw) == RSA_PUBLIC_KEY_LENGTH == 265
    assert raw[:9] == bytes.fromhex("90 03 01 00 01 91 82 01 00")
    assert raw[9:] == public.public_numbers().n.to_bytes(256, "big")
    assert decode_rsa_public_key(raw) == public
    # usable inside other card files, e.g. DF12 / DF24 with a 82 01 09 length
    assert tlv.encode(0xDF24, raw)[:5] == bytes.fromhex("DF 24 82 01 09")


def test_public_key_other_size_when_asked() -> None:
    small = rsa.generate_private_key(public_exponent=3, key_size=1024).public_key()
    raw = encode_rsa_public_key(small)
    assert raw[:3] == bytes.fromhex("90 01 03")
    assert decode_rsa_public_key(raw, key_size=None) == small
    with pytest.raises(ValueError, match="1024 bits, expected 2048"):
        decode_rsa_public_key(raw)


def _key_tlvs(exponent: bytes, modulus: bytes) -> bytes:
    return tlv.encode(0x90, exponent) + tlv.encode(0x91, modulus)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "truncated|no length"),
        (lambda raw: raw[5:] + raw[:5], "expected tags 90 then 91"),
        (lambda raw: raw[5:], "expected tags 90 then 91"),
        (lambda raw: b"", "got nothing"),
        (lambda raw: _key_tlvs(b"", raw[9:]), "empty exponent"),
        (lambda raw: _key_tlvs(b"\x00\x01\x00\x01", raw[9:]), "leading zero"),
        (lambda raw: _key_tlvs(b"\x01\x00\x01", b"\x00" + raw[9:]), "leading zero"),
        (lambda raw: _key_tlvs(b"\x01\x00\x00", raw[9:]), "exponent"),
        (lambda raw: _key_tlvs(b"\x01", raw[9:]), "exponent"),
        (lambda raw: raw[:-1] + bytes([raw[-1] & 0xFE]), "even"),
    ],
)
def test_public_key_decode_rejects(
    mutate: Callable[[bytes], bytes], message: str, ap_key: rsa.RSAPrivateKey
) -> None:
    raw = encode_rsa_public_key(ap_key.public_key())
    with pytest.raises(ValueError, match=message):
        decode_rsa_public_key(mutate(raw))


# --- CvCertificate -------------------------------------------------------------------------------


def test_sizes(cert: CvCertificate, cert_bytes: bytes) -> None:
    assert len(cert_bytes) == CERTIFICATE_LENGTH == 568
    assert len(cert.body) == BODY_LENGTH == 297
    assert len(cert.signature) == 256


def test_byte_layout(cert: CvCertificate, cert_bytes: bytes, ap_key: rsa.RSAPrivateKey) -> None:
    assert cert_bytes[:5] == bytes.fromhex("7F 21 82 02 33")
    assert cert_bytes[5:10] == bytes.fromhex("5F 4E 82 01 29")
    body = cert_bytes[10 : 10 + 297]
    assert body == cert.body
    assert body[:16] == b"6900033\x08\x05001\x00\x00\x00\x00"
    assert body[16:32] == b"6900034\x08\x05001\x00\x00\x00\x00"
    assert body[32:] == encode_rsa_public_key(ap_key.public_key())
    assert cert_bytes[307:312] == bytes.fromhex("5F 37 82 01 00")
    assert cert_bytes[312:] == cert.signature


def test_signature_is_pkcs1v15_sha256_over_body(cert: CvCertificate, issuer: CvIssuer) -> None:
    issuer.public_key.verify(cert.signature, cert.body, padding.PKCS1v15(), hashes.SHA256())


def test_round_trip(cert: CvCertificate, cert_bytes: bytes, ap_key: rsa.RSAPrivateKey) -> None:
    parsed = CvCertificate.parse(cert_bytes)
    assert parsed == cert
    assert hash(parsed) == hash(cert)
    assert parsed.to_bytes() == cert_bytes
    assert parsed.issuer_key_id == EMULATOR_TEXT_AP_CA_KEY_ID
    assert parsed.subject_key_id == EMULATOR_TEXT_AP_KEY_ID
    assert parsed.public_key == ap_key.public_key()
    assert "6900033-001" in repr(parsed)


def test_parse_accepts_filler_and_buffers(cert: CvCertificate, cert_bytes: bytes) -> None:
    assert CvCertificate.parse(cert_bytes + b"\xff" * 64) == cert
    assert CvCertificate.parse(bytearray(cert_bytes)) == cert
    assert CvCertificate.parse(memoryview(cert_bytes)) == cert


def test_issue_is_deterministic(issuer: CvIssuer, ap_key: rsa.RSAPrivateKey) -> None:
    first = issuer.issue(ap_key.public_key(), EMULATOR_TEXT_AP_KEY_ID).to_bytes()
    second = issuer.issue(ap_key.public_key(), EMULATOR_TEXT_AP_KEY_ID).to_bytes()
    assert first == second


def test_issuer_create_with_given_key(ap_key: rsa.RSAPrivateKey) -> None:
    visual = CvIssuer.create(EMULATOR_VISUAL_AP_CA_KEY_ID, ap_key)
    assert visual.public_key == ap_key.public_key()
    assert "private_key" not in repr(visual)
    with pytest.raises(ValueError, match="RSA-2048"):
        CvIssuer.create(EMULATOR_VISUAL_AP_CA_KEY_ID, rsa.generate_private_key(65537, 1024))


def test_issue_refuses_other_key_sizes(issuer: CvIssuer) -> None:
    small = rsa.generate_private_key(65537, 1024).public_key()
    with pytest.raises(ValueError, match="RSA-2048"):
        issuer.issue(small, EMULATOR_TEXT_AP_KEY_ID)


def test_verify_then_data_signature(
    cert_bytes: bytes, issuer: CvIssuer, ap_key: rsa.RSAPrivateKey
) -> None:
    """The reader's chain: CA key → CV certificate → the AP's data signature."""
    parsed = CvCertificate.parse(cert_bytes)
    parsed.verify(issuer.public_key)
    data = b"DF31 || DF32"
    signature = ap_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    parsed.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_verify_wrong_issuer_fails(cert: CvCertificate) -> None:
    stranger = CvIssuer.create(EMULATOR_TEXT_AP_CA_KEY_ID)
    with pytest.raises(InvalidSignature):
        cert.verify(stranger.public_key)


@pytest.mark.parametrize(
    "offset",
    [
        10,  # 証明者鍵ID, first digit
        10 + 12,  # 証明者鍵ID padding
        10 + 16,  # 被証明者鍵ID, first digit
        10 + 32 + 9 + 50,  # modulus
        10 + 296,  # last modulus byte
        312,  # first signature byte
        567,  # last signature byte
    ],
)
def test_one_flipped_byte_fails(cert_bytes: bytes, issuer: CvIssuer, offset: int) -> None:
    """A flip in the IDs, the key or the signature keeps the structure but breaks verification."""
    tampered = bytearray(cert_bytes)
    tampered[offset] ^= 0x02
    parsed = CvCertificate.parse(bytes(tampered))
    with pytest.raises(InvalidSignature):
        parsed.verify(issuer.public_key)


def _rebuild(body: bytes, signature: bytes, *, outer_tag: int = 0x7F21) -> bytes:
    return tlv.encode(outer_tag, tlv.encode(0x5F4E, body) + tlv.encode(0x5F37, signature))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: c[:-1], "truncated"),
        (lambda c: c[:4], "truncated"),
        (lambda c: b"", "no tag"),
        (lambda c: b"\x7f\x21\x80" + c[5:], "indefinite"),
        (lambda c: b"\x7f\x22" + c[2:], "expected tag 7F21"),
        (lambda c: _rebuild(c[10:307], c[312:], outer_tag=0x7F4E), "expected tag 7F21"),
        (lambda c: tlv.encode(0x7F21, c[307:] + c[5:307]), "expected 5F4E then 5F37"),
        (lambda c: tlv.encode(0x7F21, c[5:307]), "expected 5F4E then 5F37"),
        (lambda c: tlv.encode(0x7F21, b""), "got nothing"),
        (lambda c: tlv.encode(0x7F21, c[5:] + b"\x00"), "inside 7F21"),
        (lambda c: _rebuild(c[10:306], c[312:]), "body .* 296 bytes"),
        (lambda c: _rebuild(c[10:307], c[312:-1]), "signature .* 255 bytes"),
        (lambda c: _rebuild(b"X" + c[11:307], c[312:]), "証明者鍵ID"),
        (lambda c: _rebuild(c[10:26] + b"\x00" * 16 + c[42:307], c[312:]), "被証明者鍵ID"),
        (lambda c: _rebuild(c[10:42] + b"\x91" + c[43:307], c[312:]), "RSA public key"),
    ],
)
def test_parse_rejects(make: Callable[[bytes], bytes], message: str, cert_bytes: bytes) -> None:
    with pytest.raises(ValueError, match=message):
        CvCertificate.parse(make(cert_bytes))


def test_constructor_checks_signature_length(cert: CvCertificate) -> None:
    with pytest.raises(ValueError, match="256 bytes"):
        CvCertificate(cert.issuer_key_id, cert.subject_key_id, cert.public_key, b"\x00" * 10)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_parse_random_bytes_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        CvCertificate.parse(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=567), st.integers(min_value=1, max_value=255)),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=0, max_value=568),
)
def test_parse_mutated_certificate_only_value_error(
    cert_bytes: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(cert_bytes)
    for offset, xor in edits:
        data[offset] ^= xor
    try:
        parsed = CvCertificate.parse(bytes(data[:cut]))
    except ValueError:
        return
    assert len(parsed.to_bytes()) == CERTIFICATE_LENGTH


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_key_random_bytes_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_rsa_public_key(data, key_size=None)
