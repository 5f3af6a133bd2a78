"""A test PKI kept in a directory, so every process issues and verifies against the same roots.

Holds, per name style, the authentication and signature CAs (generation 1) and the two CV
hierarchies of the 券面 APs (root issuer, data-signing key, its CV certificate). Files are PEM
(keys, X.509) and raw bytes (CV certificates); they are created once, under a lock, the first
time a directory is used. The default directory is ``$MYNACARD_PKI`` or
``~/.local/share/mynacard/pki``.

These are TEST keys: they give no trust to anything outside tests.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.ca import CertificateAuthority
from jpki.card_data_signer import CardDataSigner
from jpki.cv_certificate import (
    EMULATOR_TEXT_AP_CA_KEY_ID,
    EMULATOR_TEXT_AP_KEY_ID,
    EMULATOR_VISUAL_AP_CA_KEY_ID,
    EMULATOR_VISUAL_AP_KEY_ID,
    CvCertificate,
    CvIssuer,
    KeyId,
)
from jpki.names import NameStyle, Tree

ENVIRONMENT_VARIABLE = "MYNACARD_PKI"
CA_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
CA_NOT_AFTER = dt.datetime(2045, 12, 31, 14, 59, 59, tzinfo=dt.UTC)
CV_IDS: dict[str, tuple[KeyId, KeyId]] = {
    "text": (EMULATOR_TEXT_AP_CA_KEY_ID, EMULATOR_TEXT_AP_KEY_ID),
    "kenmen": (EMULATOR_VISUAL_AP_CA_KEY_ID, EMULATOR_VISUAL_AP_KEY_ID),
}


def default_directory() -> Path:
    """``$MYNACARD_PKI`` or ``~/.local/share/mynacard/pki``."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "share" / "mynacard" / "pki"


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _read_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


@dataclass(frozen=True)
class PkiStore:
    """The CAs and CV hierarchies kept in one directory."""

    directory: Path

    @classmethod
    def open(cls, directory: str | Path | None = None) -> PkiStore:
        """The store at ``directory`` (default: :func:`default_directory`), created if new."""
        store = cls(Path(directory) if directory is not None else default_directory())
        store._ensure()
        return store

    def _ca_files(self, tree: Tree, style: NameStyle) -> tuple[Path, Path]:
        stem = f"{style.name.lower()}-{tree.name.lower()}-ca-g1"
        return self.directory / f"{stem}.key.pem", self.directory / f"{stem}.crt.pem"

    def _cv_files(self, application: str) -> tuple[Path, Path, Path]:
        stem = self.directory / f"cv-{application}"
        return (
            Path(f"{stem}-root.key.pem"),
            Path(f"{stem}-signer.key.pem"),
            Path(f"{stem}-signer.cvc"),
        )

    def _all_files(self) -> list[Path]:
        files: list[Path] = []
        for style in NameStyle:
            for tree in Tree:
                files.extend(self._ca_files(tree, style))
        for application in CV_IDS:
            files.extend(self._cv_files(application))
        return files

    def _ensure(self) -> None:
        if all(path.is_file() for path in self._all_files()):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be creating it right now
            for style in NameStyle:
                for tree in Tree:
                    key_file, cert_file = self._ca_files(tree, style)
                    if not cert_file.is_file():
                        ca = CertificateAuthority.create(
                            tree,
                            style=style,
                            generation=1,
                            not_before=CA_NOT_BEFORE,
                            not_after=CA_NOT_AFTER,
                        )
                        _write_key(key_file, ca.key)
                        cert_file.write_bytes(
                            ca.certificate.public_bytes(serialization.Encoding.PEM)
                        )
            for application, (root_id, signer_id) in CV_IDS.items():
                root_file, signer_file, cvc_file = self._cv_files(application)
                if not cvc_file.is_file():
                    signer = CardDataSigner.create(root_id, signer_id)
                    _write_key(root_file, signer.root.private_key)
                    _write_key(signer_file, signer.private_key)
                    cvc_file.write_bytes(signer.certificate.to_bytes())

    def certificate_authority(self, tree: Tree, style: NameStyle) -> CertificateAuthority:
        """The generation-1 CA of ``tree`` in name ``style``."""
        key_file, cert_file = self._ca_files(tree, style)
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return CertificateAuthority(tree, style, 1, _read_key(key_file), certificate)

    def cv_signer(self, application: str) -> CardDataSigner:
        """The data signer of ``"text"`` or ``"kenmen"``, with its CV root."""
        if application not in CV_IDS:
            raise KeyError(f"no CV hierarchy for {application!r} (known: {', '.join(CV_IDS)})")
        root_id, _ = CV_IDS[application]
        root_file, signer_file, cvc_file = self._cv_files(application)
        return CardDataSigner(
            CvIssuer(root_id, _read_key(root_file)),
            _read_key(signer_file),
            CvCertificate.parse(cvc_file.read_bytes()),
        )

    def cv_root_public_key(self, application: str) -> rsa.RSAPublicKey:
        """What a reader trusts to verify the 券面 data of ``application``."""
        root_file, _, _ = self._cv_files(application)
        return _read_key(root_file).public_key()
