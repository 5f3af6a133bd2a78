"""TEMPORARY re-export: credential names now live in :mod:`apdu.vocabulary`."""

from apdu.vocabulary import CREDENTIALS, CredentialName
from apdu.vocabulary import credential_name as name_of

__all__ = ["CREDENTIALS", "CredentialName", "name_of"]
