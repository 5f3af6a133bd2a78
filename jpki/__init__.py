"""jpki — the issuer side: JPKI-shaped CA hierarchies and certificate profiles.

Imports nothing from the card, the readers or the harness. The names below are imported from
their modules on first use (PEP 562), so importing one submodule (``jpki.toml_fields``…) does not
import them all, nor ``cryptography.x509`` (issue 18, cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "CertificateAuthority": "jpki.ca",
    "Era": "jpki.era",
    "era_of": "jpki.era",
    "era_yymmdd": "jpki.era",
    "parse_san_birth_date": "jpki.era",
    "san_birth_date": "jpki.era",
    "HolderIdentity": "jpki.holder",
    "Sex": "jpki.holder",
    "holder_from_certificate": "jpki.holder",
    "holder_general_names": "jpki.holder",
    "generate_rsa_key": "jpki.keys",
    "Municipality": "jpki.names",
    "NameStyle": "jpki.names",
    "Tree": "jpki.names",
    "ca_name": "jpki.names",
    "crl_distribution_point_name": "jpki.names",
    "make_subject_id": "jpki.names",
    "service_directory_name": "jpki.names",
    "subject_name": "jpki.names",
    "certificate_policy_oid": "jpki.profile",
    "random_serial_number": "jpki.profile",
    "validity_end": "jpki.profile",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'jpki' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
