"""A test PKI kept in a directory, made from a declaration, shared by every process that opens it.

The directory is created from a :mod:`jpki.declaration` (default: ``jpki/default_pki.toml``)
the first time it is opened, under a lock (another process may be creating it at the same
moment). It holds::

    pki.toml                          the declaration in force (a normalised copy; edit it to add
                                      a generation — missing keys are made on the next open)
    certificates.sqlite               issued user certificates and their revocation events
    ca/<style>-<tree>-g<n>.key.pem    each CA generation's key and self-signed certificate
    ca/<style>-<tree>-g<n>.crt.pem
    ocsp/<style>-<tree>.key.pem       each tree's delegated OCSP responder key, and its
    ocsp/<style>-<tree>-g<n>.crt.pem  certificate from every generation
    cv-<app>-root.key.pem, …          the CV hierarchies of the 券面 APs (text, kenmen)

The default directory is ``$MYNACARD_PKI`` or ``~/.local/share/mynacard/pki``. Files are PEM
(keys are PKCS#8, mode 0600) and raw bytes (CV certificates). These are TEST keys: they give no
trust to anything outside tests.

Issuance picks the CA generation *in force* on the issue date (the newest generation valid
then), writes the AIA OCSP URL of the tree's responder and an HTTP CRL distribution point of the
generation into the certificate, and records it, with the persona label, in the database, so it
can be revoked, held or released later by label. Every time-dependent answer takes the moment
from a :class:`~jpki.clock.Clock` (default :func:`~jpki.clock.default_clock`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apdu.errors import MynacardError
from jpki.ca import CertificateAuthority
from jpki.card_data_signer import CardDataSigner
from jpki.clock import JST, Clock, default_clock
from jpki.crl import CrlEntry, build_arl, build_crl
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
from jpki.database import (
    CertificateDatabase,
    CertificateRecord,
    DuplicateSerialError,
    authority_id,
)
from jpki.declaration import (
    DeclarationError,
    PkiDeclaration,
    default_declaration,
    load_declaration,
)
from jpki.holder import HolderIdentity
from jpki.keys import generate_rsa_key
from jpki.names import Municipality, NameStyle, Tree, make_subject_id, ocsp_responder_name
from jpki.ocsp import CertStatus, OcspAnswer, OcspIssuer, respond
from jpki.profile import random_serial_number
from jpki.revocation import (
    CertificateState,
    EventKind,
    RevocationError,
    RevocationEvent,
    RevocationReason,
)

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "IssuedCertificate",
    "OcspResponder",
    "PkiError",
    "PkiStore",
    "default_directory",
]

ENVIRONMENT_VARIABLE = "MYNACARD_PKI"
DECLARATION_FILE = "pki.toml"
DATABASE_FILE = "certificates.sqlite"
CV_IDS: dict[str, tuple[KeyId, KeyId]] = {
    "text": (EMULATOR_TEXT_AP_CA_KEY_ID, EMULATOR_TEXT_AP_SIGNER_KEY_ID),
    "kenmen": (EMULATOR_VISUAL_AP_CA_KEY_ID, EMULATOR_VISUAL_AP_SIGNER_KEY_ID),
    "mf": (EMULATOR_MF_CA_KEY_ID, EMULATOR_MF_INTERMEDIATE_KEY_ID),
}
"""CV hierarchies: root key ID and the ID of the key it certifies (a data signer, or for ``mf``
the intermediate of the MF-level chain)."""


_SERIAL_ATTEMPTS = 8
"""Random serials drawn before giving up (a second collision in 64 bits means a broken RNG)."""

_T = TypeVar("_T")


class PkiError(MynacardError, ValueError):
    """A PKI operation that cannot be done (the message says why)."""


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
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(pem)
    temporary.chmod(0o600)
    temporary.replace(path)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    temporary.replace(path)


def _read_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PkiError(f"{path} is not an RSA private key")
    return key


def _read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@dataclass(frozen=True)
class OcspResponder:
    """A tree's delegated OCSP responder key and its certificate from one CA generation."""

    style: NameStyle
    tree: Tree
    generation: int
    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate


@dataclass(frozen=True)
class IssuedCertificate:
    """A user certificate just issued, the CA generation that issued it, and its record."""

    certificate: x509.Certificate
    authority: CertificateAuthority
    record: CertificateRecord


class PkiStore:
    """The CAs, responders, issued-certificate database and CV hierarchies of one directory."""

    def __init__(self, directory: Path, declaration: PkiDeclaration) -> None:
        """Use :meth:`open`; this wraps a directory that :meth:`open` has made complete."""
        self.directory = directory
        self.declaration = declaration
        self.database = CertificateDatabase(directory / DATABASE_FILE)
        self._cache: dict[tuple[str, ...], object] = {}
        self._cache_lock = threading.RLock()

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
        declared_file = path / DECLARATION_FILE
        if declared_file.is_file() and declaration is None and base_url is None:
            store = cls(path, load_declaration(declared_file))
            if store._complete():
                return store
        path.mkdir(parents=True, exist_ok=True)
        with (path / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be creating it right now
            wanted = declaration or default_declaration()
            if base_url is not None:
                try:
                    wanted = wanted.with_base_url(base_url)
                except DeclarationError as exc:
                    raise PkiError(str(exc)) from None
            if declared_file.is_file():
                existing = load_declaration(declared_file)
                if (declaration is not None or base_url is not None) and existing != wanted:
                    raise PkiError(
                        f"{path} already holds a PKI with another declaration "
                        f"(base URL {existing.base_url}); use a new directory or edit "
                        f"{declared_file}"
                    )
                wanted = existing
            else:
                temporary = declared_file.with_suffix(".tmp")
                temporary.write_text(wanted.to_toml(), encoding="utf-8")
                temporary.replace(declared_file)
            store = cls(path, wanted)
            store._create_missing()
        return store

    def _ca_files(self, style: NameStyle, tree: Tree, generation: int) -> tuple[Path, Path]:
        stem = self.directory / "ca" / authority_id(style, tree, generation)
        return Path(f"{stem}.key.pem"), Path(f"{stem}.crt.pem")

    def _responder_key_file(self, style: NameStyle, tree: Tree) -> Path:
        return self.directory / "ocsp" / f"{style.value}-{tree.value}.key.pem"

    def _responder_certificate_file(self, style: NameStyle, tree: Tree, generation: int) -> Path:
        return self.directory / "ocsp" / f"{authority_id(style, tree, generation)}.crt.pem"

    def _cv_files(self, application: str) -> tuple[Path, Path, Path]:
        stem = self.directory / f"cv-{application}"
        return (
            Path(f"{stem}-root.key.pem"),
            Path(f"{stem}-signer.key.pem"),
            Path(f"{stem}-signer.cvc"),
        )

    def _all_files(self) -> list[Path]:
        files: list[Path] = []
        for style in self.declaration.styles:
            for tree in Tree:
                files.append(self._responder_key_file(style, tree))
                for generation in self.declaration.trees[tree].generations:
                    files.extend(self._ca_files(style, tree, generation.generation))
                    files.append(
                        self._responder_certificate_file(style, tree, generation.generation)
                    )
        for application in CV_IDS:
            files.extend(self._cv_files(application))
        return files

    def _complete(self) -> bool:
        return all(path.is_file() for path in self._all_files())

    def _create_missing(self) -> None:
        (self.directory / "ca").mkdir(exist_ok=True)
        (self.directory / "ocsp").mkdir(exist_ok=True)
        for style in self.declaration.styles:
            for tree in Tree:
                declared = self.declaration.trees[tree]
                responder_file = self._responder_key_file(style, tree)
                if not responder_file.is_file():
                    _write_key(responder_file, generate_rsa_key())
                responder_key = _read_key(responder_file)
                for generation in declared.generations:
                    key_file, cert_file = self._ca_files(style, tree, generation.generation)
                    if not cert_file.is_file():
                        ca = CertificateAuthority.create(
                            tree,
                            style=style,
                            generation=generation.generation,
                            not_before=generation.not_before,
                            not_after=generation.not_after,
                            serial_number=generation.serial,
                            arl_url=self.arl_url(tree, style, generation.generation),
                        )
                        _write_key(key_file, ca.key)
                        _write_certificate(cert_file, ca.certificate)
                    responder_cert_file = self._responder_certificate_file(
                        style, tree, generation.generation
                    )
                    if not responder_cert_file.is_file():
                        ca = self._load_authority(style, tree, generation.generation)
                        certificate = ca.issue_ocsp_responder_certificate(
                            responder_key.public_key(),
                            subject=ocsp_responder_name(
                                tree, style, declared.responder_common_name
                            ),
                            not_before=generation.not_before,
                            not_after=generation.not_after,
                        )
                        _write_certificate(responder_cert_file, certificate)
        for application, (root_id, signer_id) in CV_IDS.items():
            root_file, signer_file, cvc_file = self._cv_files(application)
            if not cvc_file.is_file():
                signer = CardDataSigner.create(root_id, signer_id)
                _write_key(root_file, signer.root.private_key)
                _write_key(signer_file, signer.private_key)
                cvc_file.write_bytes(signer.certificate.to_bytes())

    # --- CAs and responders -----------------------------------------------------------------

    def _cached(self, key: tuple[str, ...], make: Callable[[], _T]) -> _T:
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = make()
            return cast(_T, self._cache[key])

    def _check_declared(self, style: NameStyle, tree: Tree, generation: int | None) -> None:
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
        key_file, cert_file = self._ca_files(style, tree, generation)
        return CertificateAuthority(
            tree, style, generation, _read_key(key_file), _read_certificate(cert_file)
        )

    def authority(self, tree: Tree, style: NameStyle, generation: int) -> CertificateAuthority:
        """CA generation ``generation`` of ``tree`` in name ``style``."""
        self._check_declared(style, tree, generation)
        return self._cached(
            ("ca", style.value, tree.value, str(generation)),
            lambda: self._load_authority(style, tree, generation),
        )

    def authorities(self, tree: Tree, style: NameStyle) -> list[CertificateAuthority]:
        """Every declared generation of ``tree`` in ``style``, oldest first."""
        return [
            self.authority(tree, style, generation.generation)
            for generation in self.declaration.trees[tree].generations
        ]

    def authority_in_force(
        self, tree: Tree, style: NameStyle, moment: dt.datetime
    ) -> CertificateAuthority:
        """The newest generation of ``tree`` valid at ``moment`` (PkiError if none is)."""
        self._check_declared(style, tree, None)
        declared = self.declaration.trees[tree]
        generation = declared.in_force(moment)
        if generation is None:
            spans = ", ".join(
                f"g{g.generation} {g.not_before.astimezone(JST).date()}"
                f"..{g.not_after.astimezone(JST).date()}"
                for g in declared.generations
            )
            raise PkiError(
                f"no {tree.value} CA generation is valid at {moment.isoformat()} "
                f"(declared: {spans}; see {self.directory / DECLARATION_FILE})"
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
        self._check_declared(style, tree, generation)

        def load() -> OcspResponder:
            return OcspResponder(
                style,
                tree,
                generation,
                _read_key(self._responder_key_file(style, tree)),
                _read_certificate(self._responder_certificate_file(style, tree, generation)),
            )

        return self._cached(("ocsp", style.value, tree.value, str(generation)), load)

    def trust_roots(
        self, tree: Tree | None = None, style: NameStyle | None = None
    ) -> list[x509.Certificate]:
        """The self-signed CA certificates (every generation) of the given trees and styles."""
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
        return f"{self.declaration.base_url}/arl/{authority_id(style, tree, generation)}.crl"

    def ca_url(self, tree: Tree, style: NameStyle, generation: int) -> str:
        """Where the service publishes the generation's CA certificate (DER)."""
        return f"{self.declaration.base_url}/ca/{authority_id(style, tree, generation)}.crt"

    # --- issuance ---------------------------------------------------------------------------

    def authority_for_issuance(
        self, tree: Tree, style: NameStyle, not_before: dt.datetime, not_after: dt.datetime
    ) -> CertificateAuthority:
        """The generation that would issue a certificate valid from ``not_before`` to
        ``not_after``: the one in force at ``not_before``, if it outlives the certificate."""
        authority = self.authority_in_force(tree, style, not_before)
        ca_end = authority.certificate.not_valid_after_utc
        if not_after > ca_end:
            raise PkiError(
                f"a {tree.value} certificate issued {not_before.astimezone(JST).date()} would end "
                f"{not_after.astimezone(JST).date()}, after its CA generation "
                f"g{authority.generation} ({ca_end.astimezone(JST).date()}); declare a later "
                f"generation in {self.directory / DECLARATION_FILE}"
            )
        return authority

    def issue_user_certificate(
        self,
        tree: Tree,
        style: NameStyle,
        public_key: rsa.RSAPublicKey,
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
        authority = self.authority_for_issuance(tree, style, not_before, not_after)
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

    # --- revocation -------------------------------------------------------------------------

    def certificates(
        self, *, persona: str | None = None, tree: Tree | None = None, serial: int | None = None
    ) -> list[CertificateRecord]:
        """Recorded user certificates matching every given criterion, oldest first."""
        return self.database.find(persona=persona, tree=tree, serial=serial)

    def change(
        self, record: CertificateRecord, event: RevocationEvent, *, clock: Clock | None = None
    ) -> CertificateRecord:
        """Append ``event`` to one certificate's history (RevocationError if it may not)."""
        if event.at < record.not_before:
            raise RevocationError(
                f"{event.kind.value} at {event.at.isoformat()} is before the certificate was "
                f"issued ({record.not_before.isoformat()})"
            )
        self.database.add_event(
            record.authority, record.serial, event, recorded_at=(clock or default_clock()).now()
        )
        updated = self.database.get(record.authority, record.serial)
        assert updated is not None
        return updated

    def _change_persona(
        self,
        persona: str,
        *,
        trees: Sequence[Tree],
        kind: EventKind,
        reason: RevocationReason | None,
        at: dt.datetime | None,
        clock: Clock | None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        moment = at or (clock or default_clock()).now()
        records = [r for tree in trees for r in self.certificates(persona=persona, tree=tree)]
        if not records:
            which = "/".join(tree.value for tree in trees)
            raise PkiError(f"no {which} certificates recorded for persona {persona!r}")
        results: list[tuple[CertificateRecord, str | None]] = []
        for record in records:
            if record.status(moment).state is CertificateState.EXPIRED:
                results.append((record, "expired, left unchanged"))
                continue
            try:
                updated = self.change(record, RevocationEvent(kind, moment, reason), clock=clock)
            except RevocationError as exc:
                results.append((record, str(exc)))
            else:
                results.append((updated, None))
        return results

    def revoke(
        self,
        persona: str,
        trees: Sequence[Tree],
        reason: RevocationReason,
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Revoke every unexpired certificate of ``persona`` in ``trees`` from ``at`` (失効).

        Returns each certificate with None if changed, else why not (already revoked, …).
        """
        return self._change_persona(
            persona, trees=trees, kind=EventKind.REVOKE, reason=reason, at=at, clock=clock
        )

    def hold(
        self,
        persona: str,
        trees: Sequence[Tree],
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Put certificates on hold (一時保留): revoked with reason certificateHold."""
        return self._change_persona(
            persona, trees=trees, kind=EventKind.HOLD, reason=None, at=at, clock=clock
        )

    def release(
        self,
        persona: str,
        trees: Sequence[Tree],
        *,
        at: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> list[tuple[CertificateRecord, str | None]]:
        """Release held certificates (一時保留の解除): good again."""
        return self._change_persona(
            persona, trees=trees, kind=EventKind.RELEASE, reason=None, at=at, clock=clock
        )

    # --- publication ------------------------------------------------------------------------

    def crl(
        self, tree: Tree, style: NameStyle, generation: int, *, at: dt.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """The CRL of one generation at ``at`` (default: clock now)."""
        authority = self.authority(tree, style, generation)
        moment = at or default_clock().now()
        entries = []
        for record in self.database.revocations(authority_id(style, tree, generation)):
            status = record.status(moment)
            if status.state in (CertificateState.REVOKED, CertificateState.HOLD):
                revocation = status.revocation
                assert revocation.since is not None and revocation.reason is not None
                entries.append(CrlEntry(record.serial, revocation.since, revocation.reason))
        return build_crl(
            authority, entries, this_update=moment, validity=self.declaration.crl_validity
        )

    def arl(
        self, tree: Tree, style: NameStyle, generation: int, *, at: dt.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """The ARL of one generation at ``at`` (default: clock now)."""
        return build_arl(
            self.authority(tree, style, generation),
            this_update=at or default_clock().now(),
            validity=self.declaration.crl_validity,
        )

    def ocsp_issuers(
        self, tree: Tree | None = None, style: NameStyle | None = None
    ) -> list[OcspIssuer]:
        """What an OCSP responder for ``tree`` / ``style`` (None: all) answers for."""

        def make(each_tree: Tree, each_style: NameStyle, generation: int) -> OcspIssuer:
            responder = self.responder(each_tree, each_style, generation)
            return OcspIssuer(
                self.authority(each_tree, each_style, generation),
                responder.key,
                responder.certificate,
            )

        issuers = []
        for each_style in self.declaration.styles:
            for each_tree in Tree:
                if style not in (None, each_style) or tree not in (None, each_tree):
                    continue
                for declared in self.declaration.trees[each_tree].generations:
                    number = declared.generation
                    issuers.append(
                        self._cached(
                            ("issuer", each_style.value, each_tree.value, str(number)),
                            functools.partial(make, each_tree, each_style, number),
                        )
                    )
        return issuers

    def ocsp_status(self, issuer: OcspIssuer, serial: int, moment: dt.datetime) -> OcspAnswer:
        """The OCSP answer for ``serial`` of ``issuer`` at ``moment``."""
        authority = issuer.authority
        record = self.database.get(
            authority_id(authority.style, authority.tree, authority.generation), serial
        )
        if record is None or moment < record.not_before:
            return OcspAnswer(CertStatus.UNKNOWN)
        revocation = record.status(moment).revocation
        if revocation.good:
            return OcspAnswer(CertStatus.GOOD)
        return OcspAnswer(CertStatus.REVOKED, revocation.since, revocation.reason)

    def ocsp_response(
        self,
        request: bytes,
        *,
        tree: Tree | None = None,
        style: NameStyle | None = None,
        at: dt.datetime | None = None,
    ) -> bytes:
        """The DER OCSP response to ``request`` from the responder of ``tree`` / ``style``."""
        return respond(
            request,
            self.ocsp_issuers(tree, style),
            self.ocsp_status,
            moment=at or default_clock().now(),
            validity=self.declaration.ocsp_validity,
        )

    # --- CV hierarchies (券面 APs) -----------------------------------------------------------

    def cv_signer(self, application: str) -> CardDataSigner:
        """The data signer of ``"text"`` or ``"kenmen"``, with its CV root."""
        if application not in CV_IDS:
            raise KeyError(f"no CV hierarchy for {application!r} (known: {', '.join(CV_IDS)})")
        root_id, signer_id = CV_IDS[application]
        root_file, signer_file, cvc_file = self._cv_files(application)
        root = CvIssuer(root_id, _read_key(root_file))
        signer_key = _read_key(signer_file)
        certificate = CvCertificate.parse(cvc_file.read_bytes())
        if certificate.subject_key_id != signer_id:
            # a store written before the signer IDs changed: certify the same key anew
            certificate = root.issue(signer_key.public_key(), signer_id)
        return CardDataSigner(root, signer_key, certificate)

    def cv_root_public_key(self, application: str) -> rsa.RSAPublicKey:
        """What a reader trusts to verify the 券面 data of ``application``."""
        root_file, _, _ = self._cv_files(application)
        return _read_key(root_file).public_key()
