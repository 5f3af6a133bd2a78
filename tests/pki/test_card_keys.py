"""jpki.card_keys: a persona's card keys kept in the PKI directory (issue 18, cold start)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki import card_keys
from jpki.vault import DirectoryVault, MemoryVault

DIGEST = "ab" * 32


def _public(key: rsa.RSAPrivateKey) -> int:
    return key.public_key().public_numbers().n


def test_same_digest_same_keys_in_a_new_process_view(tmp_path: Path) -> None:
    first = card_keys.for_vault(DirectoryVault(tmp_path), DIGEST)
    assert first is not None
    auth, sign = first("jpki_auth"), first("jpki_sign")
    assert _public(auth) != _public(sign)
    again = card_keys.for_vault(DirectoryVault(tmp_path), DIGEST)  # as another process would
    assert again is not None
    assert _public(again("jpki_auth")) == _public(auth)
    other = card_keys.for_vault(DirectoryVault(tmp_path), "cd" * 32)
    assert other is not None
    assert _public(other("jpki_auth")) != _public(auth)


def test_kept_keys_are_private_files(tmp_path: Path) -> None:
    cache = card_keys.for_vault(DirectoryVault(tmp_path), DIGEST)
    assert cache is not None
    cache("common")
    path = tmp_path / card_keys.CACHE_FOLDER / DIGEST / "common.key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_memory_vault_and_missing_digest_keep_nothing(tmp_path: Path) -> None:
    assert card_keys.for_vault(MemoryVault(), DIGEST) is None
    assert card_keys.for_vault(DirectoryVault(tmp_path), "") is None
    assert card_keys.for_vault(DirectoryVault(tmp_path), "../../etc") is None


def test_bad_names_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="persona digest"):
        card_keys.CardKeyCache(DirectoryVault(tmp_path), "../x")
    cache = card_keys.CardKeyCache(DirectoryVault(tmp_path), DIGEST)
    with pytest.raises(ValueError, match="key purpose"):
        cache("../../ca/key")


def test_a_damaged_kept_key_is_replaced(tmp_path: Path) -> None:
    cache = card_keys.CardKeyCache(DirectoryVault(tmp_path), DIGEST)
    first = cache("text_ap")
    path = tmp_path / card_keys.CACHE_FOLDER / DIGEST / "text_ap.key.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    second = cache("text_ap")
    assert _public(second) != _public(first)
    assert _public(cache("text_ap")) == _public(second)
