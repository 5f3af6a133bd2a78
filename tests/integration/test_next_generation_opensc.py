"""OpenSC 0.23 against a next-generation card (provisional profile): what a relying party that
uses OpenSC today would meet. Its ``jpki`` driver still binds (the 認証AP keeps the JPKI-AP AID
and FIDs) and lists the four certificates, which parse as P-384; but its PKCS#15 emulation
declares both keys RSA-2048, and its RSA signature (pkcs15-crypt) carries the card's 96-byte
ECDSA answer, which no RSA verifier accepts. A relying party must move to ECDSA itself (docs: Card
generations)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from harness.personas import card_from_persona
from tests.conftest import ROOT
from tests.integration.conftest import AUTH_PIN, Served, ToolRunner
from tests.integration.test_opensc import LABELS

pytestmark = pytest.mark.pcsc

NEXT_GENERATION = ROOT / "vectors" / "personas" / "next-generation.toml"


def test_opensc_lists_p384_certificates_but_declares_rsa_keys(
    plug: Callable[..., Served], run_tool: ToolRunner, tmp_path: Path
) -> None:
    served = plug(card_from_persona(NEXT_GENERATION))
    reader = str(served.index)
    assert run_tool("opensc-tool", "-r", reader, "-n").stdout.strip() == "jpki"
    listed = run_tool("pkcs15-tool", "--reader", reader, "--list-certificates").stdout
    assert re.findall(r"^X\.509 Certificate \[(.+)\]$", listed, re.MULTILINE) == LABELS
    run_tool("pkcs15-tool", "--reader", reader, "--read-certificate", "1", "-o", "auth.pem")
    key = x509.load_pem_x509_certificate((tmp_path / "auth.pem").read_bytes()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    keys = run_tool("pkcs15-tool", "--reader", reader, "--list-keys").stdout
    assert keys.count("Private RSA Key") == 2 and "ModLength      : 2048" in keys


def test_opensc_rsa_signature_is_the_cards_ecdsa_answer(
    plug: Callable[..., Served], run_tool: ToolRunner, tmp_path: Path
) -> None:
    served = plug(card_from_persona(NEXT_GENERATION))
    (tmp_path / "digest").write_bytes(hashlib.sha256(b"data to sign\n").digest())
    signed = run_tool(
        "pkcs15-crypt",
        "--reader",
        str(served.index),
        "--sign",
        "--key",
        "01",
        "--pin",
        AUTH_PIN,
        "--sha-256",
        "--pkcs1",
        "-i",
        "digest",
        "-o",
        "sig",
        check=False,
    )
    # OpenSC sent its SHA-256 DigestInfo to key 0017; the card signed it ECDSA (raw r ‖ s)
    signs = [(c, r) for c, r in served.exchanges if c[:4] == bytes.fromhex("802A0080")]
    assert signs and signs[-1][0][4] == 0x33
    assert signs[-1][1][-2:] == b"\x90\x00" and len(signs[-1][1]) == 98
    assert signed.returncode == 0, signed.stderr
    # OpenSC writes a 256-byte "RSA-2048 signature" that holds the card's 96 bytes
    written = (tmp_path / "sig").read_bytes()
    assert len(written) == 256 and signs[-1][1][:-2] in written
