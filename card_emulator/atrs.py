"""ATRs seen on real My Number cards (card-facts §1.2), by the names personas use."""

from __future__ import annotations

KNOWN_ATRS: dict[str, bytes] = {
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

DEFAULT_ATR = "classic"


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
