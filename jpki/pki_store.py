"""A test PKI made from a declaration: its CAs, issuance, revocation, CRLs, OCSP and CV signers.

:meth:`PkiStore.open` keeps the PKI in a directory shared by every process that opens it
(``$MYNACARD_PKI`` or ``~/.local/share/mynacard/pki`` by default; its layout is described in
:mod:`jpki.pki_material`). :meth:`PkiStore.in_memory` keeps it in this process only and writes
nothing to disk: its CAs are made on first use, its database is SQLite on ``:memory:``.

Issuance picks the CA generation *in force* on the issue date (the newest generation valid
then), writes the AIA OCSP URL of the tree's responder and an HTTP CRL distribution point of the
generation into the certificate, and records it, with the persona label, in the database, so it
can be revoked, held or released later by label. Every time-dependent answer takes the moment
from a :class:`~jpki.clock.Clock` (default :func:`~jpki.clock.default_clock`).
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.ca import CertificateAuthority
from jpki.card_data_signer import CardDataSigner
from jpki.clock import JST, Clock, default_clock
from jpki.database import CertificateRecord, DuplicateSerialError, authority_id
from jpki.declaration import PkiDeclaration, load_declaration
from jpki.holder import HolderIdentity
from jpki.keys import KeyAlgorithm, PublicKey, algorithm_of
from jpki.names import Municipality, NameStyle, Tree, make_subject_id
from jpki.pki_material import (
    DECLARATION_FILE,
    ENVIRONMENT_VARIABLE,
    OcspResponder,
    PkiError,
    PkiMaterial,
    arl_url,
    default_directory,
    requested_declaration,
)
from jpki.pki_status import PkiStatus
from jpki.profile import random_serial_number

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "IssuedCertificate",
    "OcspResponder",
    "PkiError",
    "PkiStore",
    "default_directory",
]

_SERIAL_ATTEMPTS = 8
"""Random serials drawn before giving up (a second collision in 64 bits means a broken RNG)."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A user certificate just issued, the CA generation that issued it, and its record."""

    certificate: x509.Certificate
    authority: CertificateAuthority
    record: CertificateRecord


class PkiStore(PkiStatus):
    """The CAs, responders, issued-certificate database and CV hierarchies of one PKI."""

    def __init__(self, material: PkiMaterial) -> None:
        """Use :meth:`open` or :meth:`in_memory`; this wraps material they have made."""
        self.material = material
        self.declaration = material.declaration
        self.database = material.vault.open_database()

    # --- creation ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | Path | None = None,
        *,
        declaration: PkiDeclaration | str | Path | None = None,
        base_url: str | None = None,
    ) -> PkiStore:
        """The store at ``directory`` (default :func:`default_directory`), created if new.

        A new directory is made from ``declaration`` (a :class:`PkiDeclaration` or a TOML file;
        default: the package's), served at ``base_url`` if given. An existing directory keeps
        its own declaration; passing a different one (or base URL) is a :class:`PkiError`.
        """
        path = Path(directory) if directory is not None else default_directory()
        if isinstance(declaration, str | Path):
            declaration = load_declaration(declaration)
        return cls(PkiMaterial.open_directory(path, declaration, base_url))

    @classmethod
    def in_memory(
        cls,
        declaration: PkiDeclaration | str | Path | None = None,
        *,
        base_url: str | None = None,
    ) -> PkiStore:
        """A new PKI kept in this process only: no file is written, anywhere.

        Made from ``declaration`` (as for :meth:`open`; a TOML file is only read) and
        ``base_url``. Each CA generation, responder and CV hierarchy is made the first time it
        is used; the store is otherwise a directory store's twin, and safe to share between
        threads. Its :attr:`location` is ``memory:<id>``; it has no :attr:`directory`.
        """
        return cls(PkiMaterial.in_memory(requested_declaration(declaration, base_url)))

    @property
    def directory(self) -> Path:
        """The store's directory (PkiError for an in-memory store: use :attr:`location`)."""
        directory = self.material.vault.directory
        if directory is None:
            raise PkiError(
                f"the in-memory PKI {self.location} has no directory (key caches by "
                "store.location, or ask the store itself: store.cv_signer() is cached)"
            )
        return directory

    @property
    def location(self) -> str:
        """The directory as text, or ``memory:<id>``: unique per store in this process."""
        return self.material.vault.location

    @property
    def is_in_memory(self) -> bool:
        """True for a store made by :meth:`in_memory`."""
        return self.material.vault.directory is None

    # --- CAs and responders -----------------------------------------------------------------

    def authority(self, tree: Tree, style: NameStyle, generation: int) -> CertificateAuthority:
        """CA generation ``generation`` of ``tree`` in name ``style``."""
        return self.material.authority(tree, style, generation)

    def authorities(self, tree: Tree, style: NameStyle) -> list[CertificateAuthority]:
        """Every declared generation of ``tree`` in ``style``, oldest first (made if lazy)."""
        return [
            self.authority(tree, style, generation.generation)
            for generation in self.declaration.trees[tree].generations
        ]

    def authority_in_force(
        self,
        tree: Tree,
        style: NameStyle,
        moment: dt.datetime,
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    ) -> CertificateAuthority:
        """The newest ``algorithm`` generation of ``tree`` valid at ``moment`` (else PkiError)."""
        self.material.check_declared(style, tree, None)
        declared = self.declaration.trees[tree]
        generation = declared.in_force(moment, algorithm)
        if generation is None:
            spans = ", ".join(
                f"g{g.generation} {g.algorithm.value} {g.not_before.astimezone(JST).date()}"
                f"..{g.not_after.astimezone(JST).date()}"
                for g in declared.generations
            )
            raise PkiError(
                f"no {tree.value} CA generation ({algorithm.value}) is valid at "
                f"{moment.isoformat()} "
                f"(declared: {spans}; see {self.material.vault.describe(DECLARATION_FILE)})"
            )
        return self.authority(tree, style, generation.generation)

    def certificate_authority(
        self,
        tree: Tree,
        style: NameStyle,
        generation: int | None = None,
        *,
        at: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Generation ``generation``, else the generation in force ``at`` (default: clock now)."""
        if generation is not None:
            return self.authority(tree, style, generation)
        return self.authority_in_force(tree, style, at or default_clock().now())

    def responder(self, tree: Tree, style: NameStyle, generation: int) -> OcspResponder:
        """The delegated OCSP responder of ``tree`` as certified by ``generation``."""
        return self.material.responder(tree, style, generation)

    def trust_roots(
        self, tree: Tree | None = None, style: NameStyle | None = None
    ) -> list[x509.Certificate]:
        """The self-signed CA certificates (every generation) of the given trees and styles.

        An in-memory store makes every generation not made yet (a relying party's roots must
        not change later)."""
        return [
            authority.certificate
            for each_style in self.declaration.styles
            if style in (None, each_style)
            for each_tree in Tree
            if tree in (None, each_tree)
            for authority in self.authorities(each_tree, each_style)
        ]

    # --- URLs -------------------------------------------------------------------------------

    def ocsp_path(self, tree: Tree, style: NameStyle) -> str:
        """``/ocsp/test-auth``: where the tree's responder answers."""
        return f"/ocsp/{style.value}-{tree.value}"

    def ocsp_url(self, tree: Tree, style: NameStyle) -> str:
        """The AIA OCSP URL written into user certificates of ``tree``."""
        return self.declaration.base_url + self.ocsp_path(tree, style)

    def crl_url(self, tree: Tree, style: NameStyle, generation: int) -> str:
        """The HTTP CRL distribution point of one generation."""
        return f"{self.declaration.base_url}/crl/{authority_id(style, tree, generation)}.crl"

    def arl_url(self, tree: Tree, style: NameStyle, generation: int) -> str:
        """The HTTP ARL distribution point of one generation (in its CA certificate)."""
        return arl_url(self.declaration, tree, style, generation)

    def ca_url(self, tree: Tree, style: NameStyle, generation: int) -> str:
        """Where the service publishes the generation's CA certificate (DER)."""
        return f"{self.declaration.base_url}/ca/{authority_id(style, tree, generation)}.crt"

    # --- issuance ---------------------------------------------------------------------------

    def authority_for_issuance(
        self,
        tree: Tree,
        style: NameStyle,
        not_before: dt.datetime,
        not_after: dt.datetime,
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    ) -> CertificateAuthority:
        """The generation that would issue an ``algorithm`` certificate valid from
        ``not_before`` to ``not_after``: the one in force at ``not_before``, if it outlives the
        certificate."""
        authority = self.authority_in_force(tree, style, not_before, algorithm)
        ca_end = authority.certificate.not_valid_after_utc
        if not_after > ca_end:
            raise PkiError(
                f"a {tree.value} certificate issued {not_before.astimezone(JST).date()} would end "
                f"{not_after.astimezone(JST).date()}, after its CA generation "
                f"g{authority.generation} ({ca_end.astimezone(JST).date()}); declare a later "
                f"generation in {self.material.vault.describe(DECLARATION_FILE)}"
            )
        return authority

    def issue_user_certificate(
        self,
        tree: Tree,
        style: NameStyle,
        public_key: PublicKey,
        *,
        persona: str,
        not_before: dt.datetime,
        not_after: dt.datetime,
        holder: HolderIdentity | None,
        municipality: Municipality,
        serial_number: int | None = None,
        clock: Clock | None = None,
    ) -> IssuedCertificate:
        """Issue from the generation in force at ``not_before`` and record it under ``persona``.

        A certificate may not outlive its CA (PkiError naming both dates). Serials are unique
        per CA generation even with many processes issuing at once: the database's (authority,
        serial) key decides under its write lock, and a random serial already taken (a 2⁻⁶⁴
        chance) is drawn again; a given ``serial_number`` already taken is a PkiError.
        """
        authority = self.authority_for_issuance(
            tree, style, not_before, not_after, algorithm_of(public_key)
        )
        recorded_at = (clock or default_clock()).now()
        for _ in range(_SERIAL_ATTEMPTS):
            serial = serial_number if serial_number is not None else random_serial_number()
            certificate = authority.issue_user_certificate(
                public_key,
                subject_id=make_subject_id(serial, not_before.astimezone(JST).date()),
                not_before=not_before,
                not_after=not_after,
                holder=holder,
                municipality=municipality,
                serial_number=serial,
                ocsp_url=self.ocsp_url(tree, style),
                crl_url=self.crl_url(tree, style, authority.generation),
            )
            try:
                record = self.database.record(
                    certificate,
                    persona=persona,
                    style=style,
                    tree=tree,
                    generation=authority.generation,
                    recorded_at=recorded_at,
                )
            except DuplicateSerialError as exc:
                if serial_number is not None:
                    raise PkiError(str(exc)) from None
                continue
            return IssuedCertificate(certificate, authority, record)
        raise PkiError(
            f"no free serial number for {authority_id(style, tree, authority.generation)}"
        )

    def deferred(self) -> AbstractContextManager[None]:
        """A block whose certificates (this thread's) are recorded together when it ends.

        Bulk issuance: one database transaction for a batch of cards instead of one per
        certificate (:meth:`CertificateDatabase.deferred
        <jpki.database.CertificateDatabase.deferred>`). Inside it, this thread sees its own
        certificates (revoking or looking one up writes the batch first); other processes see
        them when the block ends, so write a card that carries them only after it has.
        """
        return self.database.deferred()

    # --- CV hierarchies (券面 APs) -----------------------------------------------------------

    def cv_signer(self, application: str) -> CardDataSigner:
        """The data signer of ``"text"``, ``"kenmen"`` or ``"mf"``, with its CV root (cached)."""
        return self.material.cv_signer(application)

    def cv_root_public_key(self, application: str) -> rsa.RSAPublicKey:
        """What a reader trusts to verify the 券面 data of ``application``."""
        return self.material.cv_signer(application).root_public_key
