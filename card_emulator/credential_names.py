"""Names for every credential on the card, as personas and tools refer to them."""

from __future__ import annotations

from typing import NamedTuple


class CredentialName(NamedTuple):
    """Where a named credential lives and how many tries it allows."""

    application: str
    fid: int
    max_tries: int
    label: str


CREDENTIALS: dict[str, CredentialName] = {
    "jpki_auth": CredentialName("jpki", 0x0018, 3, "利用者証明用暗証番号"),
    "jpki_sign": CredentialName("jpki", 0x001B, 5, "署名用パスワード"),
    "text_pin": CredentialName("text", 0x0011, 3, "券面事項入力補助用暗証番号"),
    "text_check_a": CredentialName("text", 0x0014, 10, "照合番号A (券面事項入力補助AP)"),
    "text_check_b": CredentialName("text", 0x0015, 10, "照合番号B (券面事項入力補助AP)"),
    "kenmen_birth": CredentialName("kenmen", 0x0011, 10, "生年月日 (券面AP)"),
    "kenmen_check_b": CredentialName("kenmen", 0x0012, 10, "照合番号B (券面AP)"),
    "kenmen_check_a": CredentialName("kenmen", 0x0013, 10, "照合番号A (券面AP)"),
    "common_pin": CredentialName("common", 0x001C, 3, "住民基本台帳用暗証番号 (共通AP)"),
    "juki_pin": CredentialName("juki", 0x001C, 3, "住民基本台帳用暗証番号 (住基AP)"),
    # Key references a real-card probe selects (myna-card fuzz_card); purpose and tries unknown.
    "jpki_0010": CredentialName("jpki", 0x0010, 3, "key reference 0010 (JPKI-AP, unknown)"),
    "kenmen_0014": CredentialName("kenmen", 0x0014, 3, "key reference 0014 (券面AP, unknown)"),
    "kenmen_0015": CredentialName("kenmen", 0x0015, 3, "key reference 0015 (券面AP, unknown)"),
    "common_001E": CredentialName("common", 0x001E, 3, "key reference 001E (共通AP, unknown)"),
}


def name_of(application: str, fid: int) -> str | None:
    """The persona name of a credential, if it has one."""
    for name, where in CREDENTIALS.items():
        if (where.application, where.fid) == (application, fid):
            return name
    return None
