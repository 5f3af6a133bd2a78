"""jpki — the issuer side: JPKI-shaped CA hierarchies and certificate profiles.

Imports nothing from the card, the readers or the harness.
"""

from jpki.ca import CertificateAuthority
from jpki.era import Era, era_of, era_yymmdd, parse_san_birth_date, san_birth_date
from jpki.holder import HolderIdentity, Sex, holder_from_certificate, holder_general_names
from jpki.keys import generate_rsa_key
from jpki.names import (
    Municipality,
    NameStyle,
    Tree,
    ca_name,
    crl_distribution_point_name,
    make_subject_id,
    service_directory_name,
    subject_name,
)
from jpki.profile import certificate_policy_oid, random_serial_number, validity_end

__all__ = [
    "CertificateAuthority",
    "Era",
    "HolderIdentity",
    "Municipality",
    "NameStyle",
    "Sex",
    "Tree",
    "ca_name",
    "certificate_policy_oid",
    "crl_distribution_point_name",
    "era_of",
    "era_yymmdd",
    "generate_rsa_key",
    "holder_from_certificate",
    "holder_general_names",
    "make_subject_id",
    "parse_san_birth_date",
    "random_serial_number",
    "san_birth_date",
    "service_directory_name",
    "subject_name",
    "validity_end",
]
