"""Fixtures of the PKI tests: a private test PKI, personas made from the demo, a served PKI.

Each module gets its own PKI directory (the ``test`` name style only, to keep key generation
short) and points ``$MYNACARD_PKI`` at it, so personalization in this process and every
subprocess (``python -m harness.commands.pki pki …``, the server) share it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.default_pki import pki_store
from jpki.clock import FrozenClock
from jpki.declaration import default_declaration
from jpki.names import NameStyle
from jpki.pki_store import PkiStore
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.transport import InProcessTransport
from tests.conftest import DEMO_PERSONA, ROOT

JST = dt.timezone(dt.timedelta(hours=9), "JST")
AT = dt.datetime(2026, 6, 1, 12, 0, tzinfo=JST)
"""The moment most PKI tests happen at: the demo card (issued 2025-03-03) is valid then."""


def at_jst(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, 0, tzinfo=JST)


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``mynacard pki …`` in a subprocess (stand-alone entry point)."""
    result = subprocess.run(
        [sys.executable, "-m", "harness.commands.pki", "pki", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pki {' '.join(args)} → {result.returncode}\n{result.stderr}")
    return result


@dataclasses.dataclass
class CardCertificates:
    """What a kiosk reads from a card: both certificates and their issuing CA certificates."""

    auth: x509.Certificate
    auth_ca: x509.Certificate
    sign: x509.Certificate
    sign_ca: x509.Certificate
    meta: dict[str, str]


def persona_file(directory: Path, label: str, **certificates: str | dt.date) -> Path:
    """The demo persona with another label and extra / changed ``[certificates]`` fields."""
    text = DEMO_PERSONA.read_text("utf-8")
    text, count = re.subn(r'^label = "demo"', f'label = "{label}"', text, flags=re.MULTILINE)
    assert count == 1
    issued = certificates.pop("issued", None)
    if issued is not None:  # the card and its certificates issued the same day
        assert isinstance(issued, dt.date)
        text = re.sub(r"^issued = \S+", f"issued = {issued.isoformat()}", text, flags=re.M)
    extra = "".join(
        f"{key} = {value.isoformat() if isinstance(value, dt.date) else repr(value)}\n"
        for key, value in certificates.items()
    )
    text = text.replace("[certificates]\n", "[certificates]\n" + extra)
    path = directory / f"{label}.toml"
    path.write_text(text, "utf-8")
    return path


def issue_card(path: Path, clock: FrozenClock | None = None) -> CardCertificates:
    """Personalize a card from ``path`` and read its certificates through the card itself."""
    content = personalize(persona_module.load(path), store=pki_store(), clock=clock)
    card = Card(content)
    client = MynaClient(InProcessTransport(card))
    client.select_jpki()
    auth, auth_ca = client.certificate(0x000A), client.certificate(0x000B)
    client.verify(JpkiCredential.SIGN_PASSWORD, "ABC123")
    sign, sign_ca = client.certificate(0x0001), client.certificate(0x0002)
    return CardCertificates(auth, auth_ca, sign, sign_ca, dict(content.meta))


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certificates))
    return path


def openssl_verify_with_crl(
    directory: Path,
    name: str,
    cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    *,
    trust_roots: list[x509.Certificate],
    at: dt.datetime,
) -> subprocess.CompletedProcess[str]:
    """``openssl verify -crl_check`` of ``cert`` at ``at`` (files written under ``directory``)."""
    crl_pem = directory / f"{name}.crl.pem"
    crl_pem.write_bytes(crl.public_bytes(Encoding.PEM))
    leaf = write_pem(directory / f"{name}.pem", cert)
    roots = write_pem(directory / "roots.pem", *trust_roots)
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(at.timestamp())),
            "-CAfile",
            str(roots),
            "-crl_check",
            "-CRLfile",
            str(crl_pem),
            str(leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PkiStore]:
    """A fresh test PKI (the default declaration, ``test`` style only) as $MYNACARD_PKI."""
    directory = tmp_path_factory.mktemp("pki")
    declaration = dataclasses.replace(default_declaration(), styles=(NameStyle.TEST,))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MYNACARD_PKI", str(directory))
        yield PkiStore.open(directory, declaration=declaration)


class Served:
    """``mynacard pki serve`` running in a subprocess on an ephemeral port."""

    def __init__(self, directory: Path, at: dt.datetime) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.commands.pki",
                "pki",
                "serve",
                "--dir",
                str(directory),
                "--port",
                "0",
                "--at",
                at.isoformat(),
                "--frozen",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=dict(os.environ),
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        found = re.fullmatch(r"serving (http://127\.0\.0\.1:(\d+))\n", first)
        if found is None:
            self.stop()
            raise AssertionError(f"server did not start: {first!r}")
        self.url = found.group(1)
        self.port = int(found.group(2))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return int(self.process.returncode)
