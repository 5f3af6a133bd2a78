"""The JSON bodies the console's routes take (pydantic models: checked, and in the OpenAPI
document). Every model refuses unknown keys; strings and integers are strict (``"2"`` is not
a number, ``true`` is not 1)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

MAX_TOML = 256 * 1024
"""Largest persona or scenario TOML, in bytes (UTF-8)."""
MAX_NAME = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CredentialBody(_Body):
    """Exactly one of ``tries`` (0 blocks, the maximum refills) or ``action`` (``lock`` = 0,
    ``unlock`` and ``refill`` = the maximum)."""

    tries: StrictInt | None = Field(None, ge=0)
    action: Literal["lock", "unlock", "refill"] | None = None


class PersonaBody(_Body):
    """Exactly one of ``persona`` (a name from ``GET /api/personas``) or ``toml`` (persona TOML
    text, at most 256 KiB)."""

    persona: StrictStr | None = Field(None, max_length=MAX_NAME)
    toml: StrictStr | None = Field(None, max_length=MAX_TOML)


class FaultsBody(_Body):
    """Exactly one of ``scenario`` (a kiosk scenario name from ``GET /api/scenarios``) or
    ``toml`` (fault scenario TOML text, at most 256 KiB)."""

    scenario: StrictStr | None = Field(None, max_length=MAX_NAME)
    toml: StrictStr | None = Field(None, max_length=MAX_TOML)


class CertificateBody(_Body):
    """``reason`` of a revocation (``keyCompromise``...; revoke only, default
    ``unspecified``)."""

    reason: StrictStr | None = Field(None, max_length=MAX_NAME)
