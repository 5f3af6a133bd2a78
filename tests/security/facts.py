"""The access tables of card-facts §4 / §5.1 / §6.1 / §7.1 / §8, written out independently of
``card_emulator/access_rules.toml`` so the tests compare the chip with the spec, not with itself.

``READ[ap][fid]`` / ``USE[ap][fid]``: the credentials any one of which opens the object;
``FREE`` (empty) opens with nothing; ``NEVER`` (None) opens with nothing at all.
"""

from __future__ import annotations

FREE: frozenset[int] = frozenset()
NEVER = None

Rule = frozenset[int] | None

READ: dict[str, dict[int, Rule]] = {
    "jpki": {  # §5.1, §4 (CONFIRMED)
        0x0001: frozenset({0x1B}),
        0x0002: FREE,
        0x0006: FREE,
        0x0008: FREE,
        0x0009: NEVER,
        0x000A: FREE,
        0x000B: FREE,
    },
    "text": {  # §6.1, §4
        0x0001: frozenset({0x11, 0x14}),
        0x0002: frozenset({0x11, 0x15}),
        0x0003: frozenset({0x11, 0x14, 0x15}),
        0x0004: FREE,
        0x0005: FREE,
        0x0006: frozenset({0x11, 0x14, 0x15}),
        0x0007: frozenset({0x11, 0x14, 0x15}),
        0x0008: frozenset({0x11}),  # myna-card: sixteen FF after the PIN
    },
    "kenmen": {  # §7.1, §4
        0x0001: frozenset({0x11}),
        0x0002: frozenset({0x12, 0x13}),
        0x0003: FREE,
        0x0004: FREE,
        0x0005: frozenset({0x13}),
        0x0006: frozenset({0x12, 0x13}),  # myna-card surface.rs: A and B reach 0006
    },
    "common": {0x0001: FREE, 0x0002: FREE},  # §8.1; 0002 a record EF (myna-card common.rs)
    "juki": {0x0001: frozenset({0x1C}), 0x0002: FREE},  # §8.2 (0001 our documented choice)
}

USE: dict[str, dict[int, Rule]] = {
    "jpki": {0x0017: frozenset({0x18}), 0x001A: frozenset({0x1B})},
    "text": {0x0013: FREE},
    "kenmen": {0x001A: FREE},
    "common": {0x0019: FREE},
    "juki": {},
}

AIDS: dict[str, bytes] = {
    "jpki": bytes.fromhex("D392F000260100000001"),
    "text": bytes.fromhex("D3921000310001010408"),
    "kenmen": bytes.fromhex("D3921000310001010402"),
    "common": bytes.fromhex("D3921000310001010100"),
    "juki": bytes.fromhex("D3921000310001010401"),
}

# The demo persona's credentials (DESIGN.md): (value, tries); text 0012 is blocked at issue;
# jpki 0010, kenmen 0014/0015 and common 001E are key references of unknown purpose (a real-card
# probe selects them): no value opens them.
DEMO_CREDENTIALS: dict[str, dict[int, tuple[bytes, int]]] = {
    "jpki": {0x10: (b"", 3), 0x18: (b"1234", 3), 0x1B: (b"ABC123", 5)},
    "text": {
        0x11: (b"1234", 3),
        0x12: (b"", 0),
        0x14: (b"314159265352", 10),
        0x15: (b"55021720352285", 10),
    },
    "kenmen": {
        0x11: (b"550217", 10),
        0x12: (b"55021720352285", 10),
        0x13: (b"314159265352", 10),
        0x14: (b"", 3),
        0x15: (b"", 3),
    },
    "common": {0x1C: (b"1234", 3), 0x1E: (b"", 3)},
    "juki": {0x1C: (b"1234", 3)},
}

DEMO_SECRETS = [b"1234", b"ABC123", b"314159265352", b"55021720352285", b"550217"]


def opens(rule: Rule, verified: set[int] | frozenset[int]) -> bool:
    """The spec's semantics: any one listed credential opens; empty = free; None = never."""
    if rule is None:
        return False
    return not rule or not rule.isdisjoint(verified)
