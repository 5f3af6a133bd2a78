"""A JPKI-shaped certificate authority: self-signed CA and user certificates per card-facts §5.4.

Extension order mirrors real certificates: the 2023 J-LIS CA certificates (KeyUsage, SAN,
BasicConstraints, CRL DP, SKI) and a real 利用者証明用 certificate (KeyUsage, EKU, policies,
IssuerAltName, CRL DP, AIA, AKI with issuer and serial, SKI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from jpki.holder import HolderIdentity, holder_general_names
from jpki.keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    algorithm_of,
    generate_key,
    signature_hash,
)
from jpki.names import (
    Municipality,
    NameStyle,
    Tree,
    ca_name,
    crl_distribution_point_name,
    service_directory_name,
    subject_name,
)
from jpki.profile import CPS_URI, certificate_policy_oid, random_serial_number

__all__ = ["CertificateAuthority"]


def _key_usage(
    *, signature: bool = False, commitment: bool = False, ca: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _dir_crl_dp(name: x509.Name, url: str | None = None) -> x509.CRLDistributionPoints:
    """The profile's DirName distribution point, plus an optional HTTP one of our own.

    The two are separate DistributionPoints, not two names of one point: the DirName names a
    per-municipality CRL in J-LIS's directory, the URI the whole CRL our service publishes.
    """
    points = [
        x509.DistributionPoint(
            full_name=[x509.DirectoryName(name)], relative_name=None, reasons=None, crl_issuer=None
        )
    ]
    if url is not None:
        points.append(
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        )
    return x509.CRLDistributionPoints(points)


def _check_validity(not_before: datetime, not_after: datetime) -> tuple[datetime, datetime]:
    for label, moment in (("not_before", not_before), ("not_after", not_after)):
        if moment.tzinfo is None:
            raise ValueError(f"{label} must be a timezone-aware datetime")
    if not_before >= not_after:
        raise ValueError(f"not_before {not_before} is not before not_after {not_after}")
    return not_before.astimezone(UTC), not_after.astimezone(UTC)


def _check_key(key: PublicKey, what: str) -> PublicKey:
    try:
        algorithm_of(key)
    except ValueError:
        raise ValueError(f"{what} must be an RSA-2048 or EC P-384 key, as on a card") from None
    return key


def _check_serial(serial_number: int | None) -> int:
    if serial_number is None:
        return random_serial_number()
    if serial_number <= 0 or serial_number.bit_length() > 159:
        raise ValueError(f"serial number {serial_number} must be positive and at most 20 octets")
    return serial_number


@dataclass(frozen=True)
class CertificateAuthority:
    """One JPKI CA (one tree, one name style, one key generation) and its self-signed certificate.

    Real generations of a tree share one DN and differ only by key (and so by SKI/AKI).
    """

    tree: Tree
    style: NameStyle
    generation: int
    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate

    def __post_init__(self) -> None:
        if self.generation < 1:
            raise ValueError(f"generation {self.generation} must be 1 or more")
        if self.certificate.subject != ca_name(self.tree, self.style):
            raise ValueError("CA certificate subject does not match the tree and name style")
        if self.certificate.public_key() != self.key.public_key():
            raise ValueError("CA certificate does not hold the CA key's public key")

    @classmethod
    def create(
        cls,
        tree: Tree,
        *,
        style: NameStyle = NameStyle.TEST,
        generation: int = 1,
        not_before: datetime,
        not_after: datetime,
        key: PrivateKey | None = None,
        serial_number: int | None = None,
        arl_url: str | None = None,
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    ) -> CertificateAuthority:
        """A new CA with a self-signed certificate: RSA-2048 sha256WithRSAEncryption, or for
        ``algorithm`` ECDSA_P384 (next-generation card) P-384 ecdsa-with-SHA384.

        ``arl_url`` adds an HTTP distribution point (for the ARL) after the profile's DirName one.
        """
        key = generate_key(algorithm) if key is None else key
        public_key = _check_key(key.public_key(), "CA key")
        start, end = _check_validity(not_before, not_after)
        name = ca_name(tree, style)
        certificate = (
            x509.CertificateBuilder()
            .issuer_name(name)
            .subject_name(name)
            .public_key(public_key)
            .serial_number(_check_serial(serial_number))
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DirectoryName(service_directory_name(tree, style))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_dir_crl_dp(name, arl_url), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(key, signature_hash(key))
        )
        return cls(tree=tree, style=style, generation=generation, key=key, certificate=certificate)

    @property
    def name(self) -> x509.Name:
        """The CA's DN: subject and issuer of its own certificate, issuer of user certificates."""
        return self.certificate.subject

    def issue_user_certificate(
        self,
        public_key: PublicKey,
        *,
        subject_id: str,
        not_before: datetime,
        not_after: datetime,
        holder: HolderIdentity | None,
        municipality: Municipality,
        serial_number: int | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
    ) -> x509.Certificate:
        """A 利用者証明用 (AUTH CA) or 署名用 (SIGN CA) end-entity certificate.

        ``holder`` is required for a SIGN certificate (its SAN carries the 基本4情報) and
        refused for an AUTH certificate (which carries no personal data). ``not_after`` is
        usually :func:`jpki.profile.validity_end`. ``ocsp_url`` adds the AIA OCSP entry and
        ``crl_url`` a second, HTTP, CRL distribution point after the profile's DirName one.
        """
        if self.tree is Tree.SIGN and holder is None:
            raise ValueError("a SIGN (署名用) certificate needs the holder identity for its SAN")
        if self.tree is Tree.AUTH and holder is not None:
            raise ValueError("an AUTH (利用者証明用) certificate carries no holder identity")
        subject_key = _check_key(public_key, "user public key")
        start, end = _check_validity(not_before, not_after)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        policy = x509.PolicyInformation(certificate_policy_oid(self.tree, self.style), [CPS_URI])

        # The sign certificate's subject DN is a GUESS (card-facts §5.4, §15 q9): real ones were
        # not seen, so it takes the auth certificate's confirmed shape, C=JP, CN=<subject id>.
        builder = (
            x509.CertificateBuilder()
            .issuer_name(self.name)
            .subject_name(subject_name(subject_id))
            .public_key(subject_key)
            .serial_number(_check_serial(serial_number))
            .not_valid_before(start)
            .not_valid_after(end)
        )
        if self.tree is Tree.AUTH:
            builder = builder.add_extension(_key_usage(signature=True), critical=True)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                _key_usage(signature=True, commitment=True), critical=True
            )
        builder = builder.add_extension(x509.CertificatePolicies([policy]), critical=True)
        if holder is not None:
            # Position of the SAN among the extensions of a real sign certificate is not known.
            builder = builder.add_extension(
                x509.SubjectAlternativeName(holder_general_names(holder)), critical=False
            )
        builder = builder.add_extension(
            x509.IssuerAlternativeName(
                [x509.DirectoryName(service_directory_name(self.tree, self.style))]
            ),
            critical=False,
        ).add_extension(
            _dir_crl_dp(crl_distribution_point_name(self.tree, municipality, self.style), crl_url),
            critical=False,
        )
        if ocsp_url is not None:
            ocsp = x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
            )
            builder = builder.add_extension(x509.AuthorityInformationAccess([ocsp]), critical=False)
        authority_key_id = x509.AuthorityKeyIdentifier(
            key_identifier=ca_ski.value.digest,
            authority_cert_issuer=[x509.DirectoryName(self.certificate.issuer)],
            authority_cert_serial_number=self.certificate.serial_number,
        )
        return (
            builder.add_extension(authority_key_id, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
            .sign(self.key, signature_hash(self.key))
        )

    def issue_ocsp_responder_certificate(
        self,
        public_key: PublicKey,
        *,
        subject: x509.Name,
        not_before: datetime,
        not_after: datetime,
        serial_number: int | None = None,
    ) -> x509.Certificate:
        """A delegated OCSP responder certificate (RFC 6960 §4.2.2.2) issued by this CA.

        KeyUsage digitalSignature (critical), EKU id-kp-OCSPSigning, and id-pkix-ocsp-nocheck so
        relying parties do not ask about the responder's own status.
        """
        subject_key = _check_key(public_key, "responder public key")
        start, end = _check_validity(not_before, not_after)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return (
            x509.CertificateBuilder()
            .issuer_name(self.name)
            .subject_name(subject)
            .public_key(subject_key)
            .serial_number(_check_serial(serial_number))
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_key_usage(signature=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
            .sign(self.key, signature_hash(self.key))
        )
