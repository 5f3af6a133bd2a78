"""The card's vocabulary, defined once: AIDs, EF and key FIDs, credentials, DigestInfo, ATRs.

Every floor above imports these names — the emulator's applications, the host-side sessions in
``readers/``, the trace decoder, the access-rule audit and the benchmarks — so a byte value is
written in one place only. Values and grades come from ``spec/card-facts.md`` (section numbers in
the comments) and ``docs/fidelity.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

# --- applications ---------------------------------------------------------------------------


class Jpki:
    """公的個人認証AP (JPKI-AP), card-facts §5."""

    AID: Final = bytes.fromhex("D392F000260100000001")
    EF_SIGN_CERT: Final = 0x0001
    EF_SIGN_CA: Final = 0x0002
    EF_TOKEN: Final = 0x0006
    EF_CERT_FLAGS: Final = 0x0008
    EF_UNKNOWN_PROTECTED: Final = 0x0009
    EF_AUTH_CERT: Final = 0x000A
    EF_AUTH_CA: Final = 0x000B
    UNKNOWN_KEY_REFERENCE: Final = 0x0010  # selected by a real-card probe (myna-card fuzz_card)
    KEY_AUTH: Final = 0x0017
    PIN_AUTH: Final = 0x0018
    KEY_SIGN: Final = 0x001A
    PIN_SIGN: Final = 0x001B
    AUTH_PIN_TRIES: Final = 3
    SIGN_PASSWORD_TRIES: Final = 5


class Text:
    """券面事項入力補助AP, card-facts §6."""

    AID: Final = bytes.fromhex("D3921000310001010408")
    EF_MY_NUMBER: Final = 0x0001
    EF_ATTRIBUTES: Final = 0x0002
    EF_INTEGRITY: Final = 0x0003
    EF_CV_CERTIFICATE: Final = 0x0004
    EF_AP_INFO: Final = 0x0005
    EF_SM_KEY: Final = 0x0006  # the key-delivery key's public half (SET SESSION KEY)
    EF_SIGNED_KEY: Final = 0x0007
    EF_UNKNOWN: Final = 0x0008
    PIN: Final = 0x0011
    BLOCKED_KEY: Final = 0x0012
    KEY: Final = 0x0013
    CHECK_CODE_A: Final = 0x0014
    CHECK_CODE_B: Final = 0x0015
    PIN_TRIES: Final = 3
    CHECK_CODE_TRIES: Final = 10  # reported for the 券面AP; the text AP's own limit is unpublished


class Kenmen:
    """券面事項確認AP (券面AP), card-facts §7."""

    AID: Final = bytes.fromhex("D3921000310001010402")
    EF_AGE: Final = 0x0001
    EF_FACE: Final = 0x0002
    EF_AP_INFO: Final = 0x0003
    EF_CV_CERTIFICATE: Final = 0x0004
    EF_MY_NUMBER_IMAGE: Final = 0x0005
    EF_UNKNOWN: Final = 0x0006
    BIRTH_DATE_KEY: Final = 0x0011
    CHECK_CODE_B: Final = 0x0012
    CHECK_CODE_A: Final = 0x0013
    UNKNOWN_KEY_REFERENCES: Final = (0x0014, 0x0015)
    KEY: Final = 0x001A
    TRIES: Final = 10
    CV_CERTIFICATE_SIZE: Final = 568


class Common:
    """共通AP, card-facts §8."""

    AID: Final = bytes.fromhex("D3921000310001010100")
    EF_CARD_RECORD: Final = 0x0001
    EF_KEY_REFERENCE: Final = 0x0002
    KEY_INTERNAL_AUTH: Final = 0x0019
    PIN: Final = 0x001C
    UNKNOWN_KEY_REFERENCE: Final = 0x001E
    PIN_TRIES: Final = 3


class Juki:
    """住基AP, card-facts §8."""

    AID: Final = bytes.fromhex("D3921000310001010401")
    EF_RESIDENT_CODE: Final = 0x0001
    EF_KEY_REFERENCE: Final = 0x0002
    PIN: Final = 0x001C
    PIN_TRIES: Final = 3


ISSUER_SECURITY_DOMAIN_AID: Final = bytes.fromhex("A0000001510000")
MF_PROTECTED_EF: Final = 0x001E
"""Selectable with no AP selected; every read answers ``6981`` (myna-card ``mf.rs``)."""


@dataclass(frozen=True, slots=True)
class Application:
    """One application as tools name it."""

    name: str  # the short key personas, rules and traces use
    aid: bytes
    label: str  # the Japanese name
    short: str  # the name in one-line summaries
    files: dict[int, str]  # EF, IEF and key FIDs → Japanese names


APPLICATIONS: Final[dict[str, Application]] = {
    "jpki": Application(
        "jpki",
        Jpki.AID,
        "公的個人認証AP",
        "JPKI",
        {
            Jpki.EF_SIGN_CERT: "署名用電子証明書",
            Jpki.EF_SIGN_CA: "署名用CA証明書",
            Jpki.EF_TOKEN: "トークン情報",
            Jpki.EF_CERT_FLAGS: "証明書有無",
            Jpki.EF_AUTH_CERT: "利用者証明用電子証明書",
            Jpki.EF_AUTH_CA: "利用者証明用CA証明書",
            Jpki.KEY_AUTH: "利用者証明用秘密鍵",
            Jpki.PIN_AUTH: "利用者証明用暗証番号",
            Jpki.KEY_SIGN: "署名用秘密鍵",
            Jpki.PIN_SIGN: "署名用パスワード",
        },
    ),
    "text": Application(
        "text",
        Text.AID,
        "券面事項入力補助AP",
        "券面事項入力補助AP",
        {
            Text.EF_MY_NUMBER: "個人番号",
            Text.EF_ATTRIBUTES: "基本4情報",
            Text.EF_INTEGRITY: "署名",
            Text.EF_CV_CERTIFICATE: "券面事項入力補助AP証明書",
            Text.EF_AP_INFO: "AP基本情報",
            Text.EF_SM_KEY: "SM鍵配送用公開鍵",
            Text.EF_SIGNED_KEY: "内部認証用公開鍵",
            Text.EF_UNKNOWN: "不明 (16×FF)",
            Text.PIN: "券面事項入力補助用暗証番号",
            Text.BLOCKED_KEY: "閉塞済み鍵",
            Text.KEY: "内部認証用秘密鍵",
            Text.CHECK_CODE_A: "照合番号A",
            Text.CHECK_CODE_B: "照合番号B",
        },
    ),
    "kenmen": Application(
        "kenmen",
        Kenmen.AID,
        "券面事項確認AP",
        "券面AP",
        {
            Kenmen.EF_AGE: "生年月日確認情報",
            Kenmen.EF_FACE: "券面情報",
            Kenmen.EF_AP_INFO: "AP基本情報",
            Kenmen.EF_CV_CERTIFICATE: "券面AP証明書",
            Kenmen.EF_MY_NUMBER_IMAGE: "個人番号画像",
            Kenmen.BIRTH_DATE_KEY: "生年月日",
            Kenmen.CHECK_CODE_B: "照合番号B",
            Kenmen.CHECK_CODE_A: "照合番号A",
            Kenmen.KEY: "券面AP秘密鍵",
        },
    ),
    "common": Application(
        "common",
        Common.AID,
        "共通AP",
        "共通AP",
        {
            Common.EF_CARD_RECORD: "カード情報",
            Common.EF_KEY_REFERENCE: "鍵参照",
            Common.KEY_INTERNAL_AUTH: "内部認証鍵",
            Common.PIN: "住民基本台帳用暗証番号",
        },
    ),
    "juki": Application(
        "juki",
        Juki.AID,
        "住基AP",
        "住基AP",
        {Juki.EF_KEY_REFERENCE: "鍵参照", Juki.PIN: "住民基本台帳用暗証番号"},
    ),
}
"""The card's applications by name, in the order the card lists them."""

APPLICATION_BY_AID: Final[dict[bytes, Application]] = {
    app.aid: app for app in APPLICATIONS.values()
}

# --- credentials ----------------------------------------------------------------------------


class CredentialName(NamedTuple):
    """Where a named credential lives and how many tries it allows."""

    application: str
    fid: int
    max_tries: int
    label: str


CREDENTIALS: Final[dict[str, CredentialName]] = {
    "jpki_auth": CredentialName("jpki", Jpki.PIN_AUTH, Jpki.AUTH_PIN_TRIES, "利用者証明用暗証番号"),
    "jpki_sign": CredentialName(
        "jpki", Jpki.PIN_SIGN, Jpki.SIGN_PASSWORD_TRIES, "署名用パスワード"
    ),
    "text_pin": CredentialName("text", Text.PIN, Text.PIN_TRIES, "券面事項入力補助用暗証番号"),
    "text_check_a": CredentialName(
        "text", Text.CHECK_CODE_A, Text.CHECK_CODE_TRIES, "照合番号A (券面事項入力補助AP)"
    ),
    "text_check_b": CredentialName(
        "text", Text.CHECK_CODE_B, Text.CHECK_CODE_TRIES, "照合番号B (券面事項入力補助AP)"
    ),
    "kenmen_birth": CredentialName(
        "kenmen", Kenmen.BIRTH_DATE_KEY, Kenmen.TRIES, "生年月日 (券面AP)"
    ),
    "kenmen_check_b": CredentialName(
        "kenmen", Kenmen.CHECK_CODE_B, Kenmen.TRIES, "照合番号B (券面AP)"
    ),
    "kenmen_check_a": CredentialName(
        "kenmen", Kenmen.CHECK_CODE_A, Kenmen.TRIES, "照合番号A (券面AP)"
    ),
    "common_pin": CredentialName(
        "common", Common.PIN, Common.PIN_TRIES, "住民基本台帳用暗証番号 (共通AP)"
    ),
    "juki_pin": CredentialName("juki", Juki.PIN, Juki.PIN_TRIES, "住民基本台帳用暗証番号 (住基AP)"),
    # Key references a real-card probe selects (myna-card fuzz_card); purpose and tries unknown.
    "jpki_0010": CredentialName(
        "jpki", Jpki.UNKNOWN_KEY_REFERENCE, 3, "key reference 0010 (JPKI-AP, unknown)"
    ),
    "kenmen_0014": CredentialName("kenmen", 0x0014, 3, "key reference 0014 (券面AP, unknown)"),
    "kenmen_0015": CredentialName("kenmen", 0x0015, 3, "key reference 0015 (券面AP, unknown)"),
    "common_001E": CredentialName(
        "common", Common.UNKNOWN_KEY_REFERENCE, 3, "key reference 001E (共通AP, unknown)"
    ),
}
"""Every credential by the name personas, fault scenarios and the audit use."""


_NAME_BY_PLACE = {(where.application, where.fid): name for name, where in CREDENTIALS.items()}


def credential_name(application: str, fid: int) -> str | None:
    """The persona name of a credential, if it has one."""
    return _NAME_BY_PLACE.get((application, fid))


# --- DigestInfo -----------------------------------------------------------------------------

DIGEST_INFO_PREFIXES: Final[dict[str, bytes]] = {
    "sha1": bytes.fromhex("3021300906052B0E03021A05000414"),
    "sha224": bytes.fromhex("302D300D06096086480165030402040500041C"),
    "sha256": bytes.fromhex("3031300D060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300D060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300D060960864801650304020305000440"),
}
"""DER prefixes of DigestInfo with NULL parameters (RFC 8017 §9.2, note 1), by hash name."""

FACE_DIGEST_INFO_HEADER: Final = bytes.fromhex("3071300D060960864801650304020105000460")
"""The 券面AP's signed DigestInfo: SHA-256 OID around 96 bytes H(G1) ‖ H(G2) ‖ H(G3) (§7.2)."""

FACE_SIGNED_GROUPS: Final = ((0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,))
"""The 券面AP's face fields, grouped as the signature hashes them (§7.2)."""

# --- ATRs -----------------------------------------------------------------------------------

KNOWN_ATRS: Final[dict[str, bytes]] = {
    # contact, the only ATR in OpenSC's jpki table (CONFIRMED); T=1, no historical bytes
    "classic": bytes.fromhex("3BE000FF8131FE4514"),
    # contact, newer "JPKI-2" card seen in 2024 (SINGLE)
    "jpki2": bytes.fromhex("3BDA13FF8131FB468012392F31C173C601C03B"),
    # contact ATRs from OpenSC's Windows minidriver registration (SINGLE)
    "c5": bytes.fromhex("3BC5FF8131FB458073C6010000"),
    "f5-00d1d6": bytes.fromhex("3BF59100FF918171FE400042000100D1D6"),
    "f5-b3a115": bytes.fromhex("3BF59100FF918171FE4000420001B3A115"),
    # contactless: synthesised by PC/SC readers from ATQB (SINGLE)
    "contactless-05e0": bytes.fromhex("3B888001000005E0B381A1007F"),
    "contactless-41e0": bytes.fromhex("3B888001000041E0B381A1003B"),
    "contactless-4b51-00": bytes.fromhex("3B888001004B51FF0081D100BC"),
    "contactless-4b51-b3": bytes.fromhex("3B888001004B51FFB381D1000F"),
}
"""ATRs seen on real My Number cards (card-facts §1.2), by the names personas use."""

DEFAULT_ATR: Final = "classic"


def resolve_atr(value: str) -> bytes:
    """An ATR by name or as hex (spaces and colons allowed)."""
    if value in KNOWN_ATRS:
        return KNOWN_ATRS[value]
    cleaned = value.replace(" ", "").replace(":", "")
    try:
        atr = bytes.fromhex(cleaned)
    except ValueError:
        names = ", ".join(KNOWN_ATRS)
        raise ValueError(f"{value!r} is neither a known ATR name ({names}) nor hex") from None
    if not 2 <= len(atr) <= 33 or atr[0] not in (0x3B, 0x3F):
        raise ValueError(f"{value!r} is not an ATR (2-33 bytes starting 3B or 3F)")
    return atr
