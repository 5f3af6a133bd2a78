"""The material of a test PKI — its keys and certificates — and how it is laid out in a vault.

A :class:`~jpki.vault.Vault` (a directory, or memory) holds, under these names::

    pki.toml                          the declaration in force (a normalised copy; edit it to add
                                      a generation — missing keys are made on the next open)
    certificates.sqlite               issued user certificates and their revocation events
    ca/<style>-<tree>-g<n>.key.pem    each CA generation's key and self-signed certificate
    ca/<style>-<tree>-g<n>.crt.pem
    ocsp/<style>-<tree>.key.pem       each tree's delegated OCSP responder key, and its
    ocsp/<style>-<tree>-g<n>.crt.pem  certificate from every generation
    cv-<app>-root.key.pem, …          the CV hierarchies of the 券面 APs (text, kenmen, mf)

Keys are PEM PKCS#8 (mode 0600 on disk), certificates PEM, CV certificates raw bytes. These are
TEST keys: they give no trust to anything outside tests.

A directory is made complete when it is opened, under its lock (another process may be making it
at the same moment). An in-memory PKI is *lazy*: each CA generation, responder and CV hierarchy
is made the first time it is used (RSA key generation is what costs).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apdu.errors import MynacardError
from jpki.ca import CertificateAuthority
from jpki.card_data_signer import CardDataSigner
from jpki.cv_certificate import (
    EMULATOR_MF_CA_KEY_ID,
    EMULATOR_MF_INTERMEDIATE_KEY_ID,
    EMULATOR_TEXT_AP_CA_KEY_ID,
    EMULATOR_TEXT_AP_SIGNER_KEY_ID,
    EMULATOR_VISUAL_AP_CA_KEY_ID,
    EMULATOR_VISUAL_AP_SIGNER_KEY_ID,
    CvCertificate,
    CvIssuer,
    KeyId,
)
from jpki.database import authority_id
from jpki.declaration import DeclarationError, PkiDeclaration, default_declaration, load_declaration
from jpki.keys import KeyAlgorithm, PrivateKey, generate_key
from jpki.names import NameStyle, Tree, ocsp_responder_name
from jpki.vault import DirectoryVault, MemoryVault, Vault

__all__ = [
    "CV_IDS",
    "DECLARATION_FILE",
    "ENVIRONMENT_VARIABLE",
    "OcspResponder",
    "PkiError",
    "PkiMaterial",
    "arl_url",
    "default_directory",
    "requested_declaration",
]

ENVIRONMENT_VARIABLE = "MYNACARD_PKI"
DECLARATION_FILE = "pki.toml"
CV_IDS: dict[str, tuple[KeyId, KeyId]] = {
    "text": (EMULATOR_TEXT_AP_CA_KEY_ID, EMULATOR_TEXT_AP_SIGNER_KEY_ID),
    "kenmen": (EMULATOR_VISUAL_AP_CA_KEY_ID, EMULATOR_VISUAL_AP_SIGNER_KEY_ID),
    "mf": (EMULATOR_MF_CA_KEY_ID, EMULATOR_MF_INTERMEDIATE_KEY_ID),
}
"""CV hierarchies: root key ID and the ID of the key it certifies (a data signer, or for ``mf``
the intermediate of the MF-level chain)."""

_T = TypeVar("_T")


class PkiError(MynacardError, ValueError):
    """A PKI operation that cannot be done (the message says why)."""


def default_directory() -> Path:
    """``$MYNACARD_PKI`` or ``~/.local/share/mynacard/pki``."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "share" / "mynacard" / "pki"


def arl_url(declaration: PkiDeclaration, tree: Tree, style: NameStyle, generation: int) -> str:
    """The HTTP ARL distribution point of one generation (in its CA certificate)."""
    return f"{declaration.base_url}/arl/{authority_id(style, tree, generation)}.crl"


@dataclass(frozen=True)
class OcspResponder:
    """A tree's delegated OCSP responder key and its certificate from one CA generation."""

    style: NameStyle
    tree: Tree
    generation: int
    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate


# --- names and encodings ------------------------------------------------------------------------


def _ca_names(style: NameStyle, tree: Tree, generation: int) -> tuple[str, str]:
    stem = f"ca/{authority_id(style, tree, generation)}"
    return f"{stem}.key.pem", f"{stem}.crt.pem"


def _responder_key_name(
    style: NameStyle, tree: Tree, algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048
) -> str:
    suffix = "" if algorithm is KeyAlgorithm.RSA_2048 else f"-{algorithm.value}"
    return f"ocsp/{style.value}-{tree.value}{suffix}.key.pem"


def _responder_certificate_name(style: NameStyle, tree: Tree, generation: int) -> str:
    return f"ocsp/{authority_id(style, tree, generation)}.crt.pem"


def _cv_names(application: str) -> tuple[str, str, str]:
    stem = f"cv-{application}"
    return f"{stem}-root.key.pem", f"{stem}-signer.key.pem", f"{stem}-signer.cvc"


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def requested_declaration(
    declaration: PkiDeclaration | str | Path | None, base_url: str | None
) -> PkiDeclaration:
    """``declaration`` (a TOML file is read; None: the package's), served at ``base_url``."""
    if isinstance(declaration, str | Path):
        declaration = load_declaration(declaration)
    wanted = declaration or default_declaration()
    if base_url is not None:
        try:
            wanted = wanted.with_base_url(base_url)
        except DeclarationError as exc:
            raise PkiError(str(exc)) from None
    return wanted


# --- the material -------------------------------------------------------------------------------


class PkiMaterial:
    """The CA, responder and CV keys and certificates of one PKI, kept in ``vault``.

    ``lazy``: make missing material when first used (else it must be complete: see
    :meth:`create_missing`). Loaded material is cached; the cache and lazy making are guarded
    by one lock, so threads may share the object.
    """

    def __init__(self, vault: Vault, declaration: PkiDeclaration, *, lazy: bool) -> None:
        self.vault = vault
        self.declaration = declaration
        self.lazy = lazy
        self._cache: dict[tuple[str, ...], object] = {}
        self._lock = threading.RLock()

    @classmethod
    def open_directory(
        cls, path: Path, declaration: PkiDeclaration | None, base_url: str | None
    ) -> PkiMaterial:
        """The complete material of directory ``path``, made from ``declaration`` if new.

        An existing directory keeps its own declaration; asking for a different one (or base
        URL) is a :class:`PkiError`. Missing material is made under the directory's lock.
        """
        vault = DirectoryVault(path)
        declared_file = path / DECLARATION_FILE
        if vault.exists(DECLARATION_FILE) and declaration is None and base_url is None:
            material = cls(vault, load_declaration(declared_file), lazy=False)
            if material.complete():
                return material
        with vault.exclusive():
            wanted = requested_declaration(declaration, base_url)
            if vault.exists(DECLARATION_FILE):
                existing = load_declaration(declared_file)
                if (declaration is not None or base_url is not None) and existing != wanted:
                    raise PkiError(
                        f"{path} already holds a PKI with another declaration "
                        f"(base URL {existing.base_url}); use a new directory or edit "
                        f"{declared_file}"
                    )
                wanted = existing
            else:
                vault.write(DECLARATION_FILE, wanted.to_toml().encode("utf-8"))
            material = cls(vault, wanted, lazy=False)
            material.create_missing()
        return material

    @classmethod
    def in_memory(cls, declaration: PkiDeclaration) -> PkiMaterial:
        """Lazy material of ``declaration`` in a new :class:`~jpki.vault.MemoryVault`."""
        vault = MemoryVault()
        vault.write(DECLARATION_FILE, declaration.to_toml().encode("utf-8"))
        return cls(vault, declaration, lazy=True)

    # --- completeness -----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every blob the declaration calls for (the database and lock aside)."""
        names: list[str] = []
        for style in self.declaration.styles:
            for tree in Tree:
                algorithms = {g.algorithm for g in self.declaration.trees[tree].generations}
                names.extend(
                    _responder_key_name(style, tree, a) for a in KeyAlgorithm if a in algorithms
                )
                for generation in self.declaration.trees[tree].generations:
                    names.extend(_ca_names(style, tree, generation.generation))
                    names.append(_responder_certificate_name(style, tree, generation.generation))
        for application in CV_IDS:
            names.extend(_cv_names(application))
        return names

    def complete(self) -> bool:
        """True if every blob of :meth:`names` is there."""
        return all(self.vault.exists(name) for name in self.names())

    def create_missing(self) -> None:
        """Make every missing key and certificate the declaration calls for."""
        with self._lock:
            for style in self.declaration.styles:
                for tree in Tree:
                    for generation in self.declaration.trees[tree].generations:
                        self._ensure_responder(style, tree, generation.generation)
            for application in CV_IDS:
                self._ensure_cv(application)

    def has_authority(self, tree: Tree, style: NameStyle, generation: int) -> bool:
        """True if the generation's CA has been made (always, once a directory is open)."""
        return self.vault.exists(_ca_names(style, tree, generation)[1])

    def _ensure_authority(self, style: NameStyle, tree: Tree, generation: int) -> None:
        key_name, certificate_name = _ca_names(style, tree, generation)
        if self.vault.exists(certificate_name):
            return
        declared = self.declaration.trees[tree].generation(generation)
        ca = CertificateAuthority.create(
            tree,
            style=style,
            generation=generation,
            not_before=declared.not_before,
            not_after=declared.not_after,
            serial_number=declared.serial,
            arl_url=arl_url(self.declaration, tree, style, generation),
            algorithm=declared.algorithm,
        )
        self.vault.write(key_name, _key_pem(ca.key), private=True)
        self.vault.write(certificate_name, _certificate_pem(ca.certificate))

    def _responder_key_name(self, style: NameStyle, tree: Tree, generation: int) -> str:
        algorithm = self.declaration.trees[tree].generation(generation).algorithm
        return _responder_key_name(style, tree, algorithm)

    def _ensure_responder(self, style: NameStyle, tree: Tree, generation: int) -> None:
        key_name = self._responder_key_name(style, tree, generation)
        if not self.vault.exists(key_name):
            algorithm = self.declaration.trees[tree].generation(generation).algorithm
            self.vault.write(key_name, _key_pem(generate_key(algorithm)), private=True)
        self._ensure_authority(style, tree, generation)
        certificate_name = _responder_certificate_name(style, tree, generation)
        if self.vault.exists(certificate_name):
            return
        declared_tree = self.declaration.trees[tree]
        declared = declared_tree.generation(generation)
        authority = self._load_authority(style, tree, generation)
        certificate = authority.issue_ocsp_responder_certificate(
            self._key(key_name).public_key(),
            subject=ocsp_responder_name(tree, style, declared_tree.responder_common_name),
            not_before=declared.not_before,
            not_after=declared.not_after,
        )
        self.vault.write(certificate_name, _certificate_pem(certificate))

    def _ensure_cv(self, application: str) -> None:
        root_name, signer_name, cvc_name = _cv_names(application)
        if self.vault.exists(cvc_name):
            return
        root_id, signer_id = CV_IDS[application]
        signer = CardDataSigner.create(root_id, signer_id)
        self.vault.write(root_name, _key_pem(signer.root.private_key), private=True)
        self.vault.write(signer_name, _key_pem(signer.private_key), private=True)
        self.vault.write(cvc_name, signer.certificate.to_bytes())

    # --- loading ----------------------------------------------------------------------------

    def cached(self, key: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """``make()``, once per ``key`` (under the lock, so made once even across threads)."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return cast(_T, self._cache[key])

    def _key(self, name: str) -> PrivateKey:
        # Skipping OpenSSL's RSA consistency check (~10-40 ms a key, paid at every start) is
        # safe here: the vault holds only keys this package generated and wrote itself (0600
        # files in the PKI directory, or memory), and they sign test certificates only; a key
        # edited behind our back would give bad signatures, which every verifier rejects.
        key = serialization.load_pem_private_key(
            self.vault.read(name), password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.vault.describe(name)} is not an RSA or EC private key")
        return key

    def _rsa_key(self, name: str) -> rsa.RSAPrivateKey:
        key = self._key(name)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PkiError(f"{self.vault.describe(name)} is not an RSA private key")
        return key

    def _certificate(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.vault.read(name))

    def check_declared(self, style: NameStyle, tree: Tree, generation: int | None) -> None:
        """PkiError unless ``style`` (and generation ``generation`` of ``tree``) is declared."""
        if style not in self.declaration.styles:
            styles = ", ".join(s.value for s in self.declaration.styles)
            raise PkiError(f"this PKI has no {style.value!r} hierarchy (declared: {styles})")
        if generation is not None:
            try:
                self.declaration.trees[tree].generation(generation)
            except KeyError:
                numbers = [g.generation for g in self.declaration.trees[tree].generations]
                raise PkiError(
                    f"the {tree.value} tree has no generation {generation} (declared: {numbers})"
                ) from None

    def _load_authority(
        self, style: NameStyle, tree: Tree, generation: int
    ) -> CertificateAuthority:
        key_name, certificate_name = _ca_names(style, tree, generation)
        return CertificateAuthority(
            tree, style, generation, self._key(key_name), self._certificate(certificate_name)
        )

    def authority(self, tree: Tree, style: NameStyle, generation: int) -> CertificateAuthority:
        """CA generation ``generation`` of ``tree`` in name ``style`` (a declared one)."""
        self.check_declared(style, tree, generation)

        def load() -> CertificateAuthority:
            if self.lazy:
                self._ensure_authority(style, tree, generation)
            return self._load_authority(style, tree, generation)

        return self.cached(("ca", style.value, tree.value, str(generation)), load)

    def responder(self, tree: Tree, style: NameStyle, generation: int) -> OcspResponder:
        """The delegated OCSP responder of ``tree`` as certified by ``generation``."""
        self.check_declared(style, tree, generation)

        def load() -> OcspResponder:
            if self.lazy:
                self._ensure_responder(style, tree, generation)
            return OcspResponder(
                style,
                tree,
                generation,
                self._key(self._responder_key_name(style, tree, generation)),
                self._certificate(_responder_certificate_name(style, tree, generation)),
            )

        return self.cached(("ocsp", style.value, tree.value, str(generation)), load)

    def cv_signer(self, application: str) -> CardDataSigner:
        """The data signer of ``"text"``, ``"kenmen"`` or ``"mf"``, with its CV root."""
        if application not in CV_IDS:
            raise KeyError(f"no CV hierarchy for {application!r} (known: {', '.join(CV_IDS)})")

        def load() -> CardDataSigner:
            if self.lazy:
                self._ensure_cv(application)
            root_id, signer_id = CV_IDS[application]
            root_name, signer_name, cvc_name = _cv_names(application)
            root = CvIssuer(root_id, self._rsa_key(root_name))
            signer_key = self._rsa_key(signer_name)
            certificate = CvCertificate.parse(self.vault.read(cvc_name))
            if certificate.subject_key_id != signer_id:
                # a store written before the signer IDs changed: certify the same key anew
                certificate = root.issue(signer_key.public_key(), signer_id)
            return CardDataSigner(root, signer_key, certificate)

        return self.cached(("cv", application), load)
