"""OpenSC 0.23 (opensc-tool, pkcs15-tool, the PKCS#11 module) against demo cards in a private
pcscd, with no driver forced: card-facts §10 end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integration.conftest import (
    AUTH_PIN,
    PKCS11_MODULE,
    SIGN_PASSWORD,
    Served,
    ToolRunner,
    der_object,
)

pytestmark = pytest.mark.pcsc

LABELS = [
    "User Authentication Certificate",
    "Digital Signature Certificate",
    "User Authentication Certificate CA",
    "Digital Signature Certificate CA",
]
SLOT = re.compile(r"^Slot \d+ \((0x[0-9a-f]+)\): (.+?)\s*$", re.MULTILINE)


def pem_certificates(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode()) if "BEGIN CERTIFICATE" in text else []


def test_opensc_picks_the_jpki_driver_by_itself(
    demo_cards: list[Served], run_tool: ToolRunner
) -> None:
    card = demo_cards[0]
    listing = run_tool("opensc-tool", "--list-readers").stdout
    assert re.search(rf"^{card.index}\s+Yes\s+{re.escape(card.name)}$", listing, re.MULTILINE)
    assert run_tool("opensc-tool", "-r", str(card.index), "-n").stdout.strip() == "jpki"
    # the driver matched on the ATR, after the earlier drivers' probes were refused
    assert any(
        command[1] == 0xA4 and response == b"\x6a\x82" for command, response in card.exchanges
    )


def test_pkcs15_lists_the_four_certificates_with_opensc_labels(
    demo_cards: list[Served], run_tool: ToolRunner
) -> None:
    card = demo_cards[0]
    out = run_tool("pkcs15-tool", "--reader", str(card.index), "--list-certificates").stdout
    assert re.findall(r"^X\.509 Certificate \[(.+)\]$", out, re.MULTILINE) == LABELS
    paths = re.findall(r"^\s+Path\s+: (\w+)$", out, re.MULTILINE)
    assert paths == ["000a", "0001", "000b", "0002"]


def test_pkcs15_reads_the_auth_certificate_from_ef_000a(
    demo_cards: list[Served], run_tool: ToolRunner
) -> None:
    card = demo_cards[0]
    # 0.23 spells it --read-certificate (no -r short option: "-r 1" only prints the usage)
    out = run_tool("pkcs15-tool", "--reader", str(card.index), "--read-certificate", "1").stdout
    (certificate,) = pem_certificates(out)
    assert certificate.public_bytes(Encoding.DER) == der_object(card.jpki_file(0x000A))


def _slot_for(listing: str, reader: str, token: str) -> str:
    """The PKCS#11 slot id (hex) of ``token`` in ``reader`` from ``pkcs11-tool -L``."""
    for match in SLOT.finditer(listing):
        slot_id, description = match.groups()
        block = listing[match.end() :].split("\nSlot ", 1)[0]
        if description == reader and f"token label        : {token}" in block:
            return slot_id
    raise AssertionError(f"no slot for {token!r} in {reader!r}:\n{listing}")


def test_pkcs11_signs_with_the_auth_key_and_openssl_verifies(
    demo_cards: list[Served], run_tool: ToolRunner, tmp_path: Path
) -> None:
    card = demo_cards[0]
    listing = run_tool("pkcs11-tool", "--module", PKCS11_MODULE, "--list-slots").stdout
    slot = _slot_for(listing, card.name, "JPKI (User Authentication PIN)")
    _slot_for(listing, card.name, "JPKI (Digital Signature PIN)")  # one slot per PIN

    (tmp_path / "data").write_bytes("署名するデータ / data to sign\n".encode())
    run_tool(
        "pkcs15-tool", "--reader", str(card.index), "--read-certificate", "1", "-o", "auth.pem"
    )
    run_tool("openssl", "x509", "-in", "auth.pem", "-pubkey", "-noout", "-out", "pub.pem")
    run_tool(
        "pkcs11-tool",
        "--module",
        PKCS11_MODULE,
        "--slot",
        slot,
        "--login",
        "--pin",
        AUTH_PIN,
        "--sign",
        "--mechanism",
        "SHA256-RSA-PKCS",
        "--id",
        "01",
        "-i",
        "data",
        "-o",
        "sig",
    )
    assert (tmp_path / "sig").stat().st_size == 256
    verified = run_tool(
        "openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "data"
    )
    assert verified.stdout.strip() == "Verified OK"
    # OpenSC hashed in software and sent the 51-byte DigestInfo to key 0017 (card-facts §10.4)
    signs = [c for c, _ in card.exchanges if c[:4] == bytes.fromhex("802A0080")]
    assert signs and signs[-1][4] == 0x33


def test_the_signing_certificate_needs_the_signing_password(
    demo_cards: list[Served], run_tool: ToolRunner
) -> None:
    card = demo_cards[0]
    reader = str(card.index)
    denied = run_tool("pkcs15-tool", "--reader", reader, "--read-certificate", "2", check=False)
    assert denied.returncode != 0
    assert pem_certificates(denied.stdout) == []
    # 0.23 reports the card's 6982 as "EF offset too large" (jpki_select_file reads the header)
    assert "Certificate read failed" in denied.stderr
    assert (bytes.fromhex("00B0000004"), b"\x69\x82") in card.exchanges

    granted = run_tool(
        "pkcs15-tool",
        "--reader",
        reader,
        "--read-certificate",
        "2",
        "--auth-id",
        "2",
        "--verify-pin",
        "--pin",
        SIGN_PASSWORD,
    ).stdout
    (certificate,) = pem_certificates(granted)
    assert certificate.public_bytes(Encoding.DER) == der_object(card.jpki_file(0x0001))
    assert card.card.credential("jpki", 0x001B).remaining == 5  # type: ignore[attr-defined]
