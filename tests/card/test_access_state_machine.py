"""Hypothesis stateful test: the chip against an independent model of JPKI access control.

The model knows only the facts of card-facts §4/§5 (who opens what, how counters move); every
chip answer must agree with it, and every answer must end in a valid status word. It runs over
both card generations: today's JPKI-AP (RSA-2048, a SHA-256 DigestInfo in, 256 bytes out) and
the next-generation (仮称)認証AP (ECDSA P-384, a SHA-384 digest in, raw r‖s of 96 bytes out;
same AID, PINs and rules, as its provisional profile declares).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from apdu import builders
from apdu.status import is_valid
from card_emulator import Card
from harness.demo_persona import generation_persona_path
from tests.conftest import DEMO_PERSONA

JPKI_AID = bytes.fromhex("D392F000260100000001")
PINS = {0x18: (b"1234", 3), 0x1B: (b"ABC123", 5)}
PROTECTED_READ = {0x0001: 0x1B}
KEYS = {0x17: 0x18, 0x1A: 0x1B}
DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420") + bytes(32)


class JpkiAccessMachine(RuleBasedStateMachine):
    """Today's card."""

    card: Card
    persona: Path = DEMO_PERSONA
    application = "jpki"
    """The name the card's content gives the AP (for its counters)."""
    to_sign = DIGEST_INFO
    signature_length = 256

    @initialize()
    def fresh_card(self) -> None:
        self.card = Card.from_persona(self.persona, strict=True)
        self.remaining = {fid: tries for fid, (_, tries) in PINS.items()}
        self.verified: set[int] = set()
        self.selected = False
        self.last_sw = 0x9000

    def send(self, command: bytes) -> tuple[bytes, int]:
        response = self.card.transmit(command)
        self.last_sw = int.from_bytes(response[-2:], "big")
        return response[:-2], self.last_sw

    @rule()
    def select_jpki(self) -> None:
        assert self.send(builders.select_aid(JPKI_AID).to_bytes()) == (b"", 0x9000)
        self.selected = True
        self.verified.clear()

    @rule()
    def power_cycle(self) -> None:
        self.card.power_off()
        self.card.power_on()
        self.selected = False
        self.verified.clear()

    @rule(fid=st.sampled_from(sorted(PINS)), right=st.booleans(), empty=st.booleans())
    def verify(self, fid: int, right: bool, empty: bool) -> None:
        value, _ = PINS[fid]
        pin = None if empty else (value if right else b"9999")
        _, sw = self.send(builders.verify(pin, sfi=fid).to_bytes())
        if not self.selected:
            assert sw == 0x6A88  # no AP selected: no such reference
            return
        left = self.remaining[fid]
        if empty:
            assert sw == 0x63C0 | left
        elif left == 0:
            assert sw == 0x6984
        elif right:
            assert sw == 0x9000
            self.remaining[fid] = PINS[fid][1]
            self.verified.add(fid)
        else:
            self.remaining[fid] = left - 1
            self.verified.discard(fid)
            assert sw == 0x63C0 | (left - 1)

    @rule(fid=st.sampled_from([0x0001, 0x0002, 0x000A, 0x000B]))
    def read(self, fid: int) -> None:
        data, sw = self.send(builders.read_binary_sfi(fid, 0, 4).to_bytes())
        if not self.selected:
            assert sw == 0x6A82
        elif fid in PROTECTED_READ and PROTECTED_READ[fid] not in self.verified:
            assert (data, sw) == (b"", 0x6982)
        else:
            assert sw == 0x9000
            assert data[:2] == b"\x30\x82"

    @rule(key=st.sampled_from(sorted(KEYS)))
    def sign(self, key: int) -> None:
        data, sw = self.send(builders.compute_signature(self.to_sign, key_sfi=key).to_bytes())
        if not self.selected:
            assert sw == 0x6986
        elif KEYS[key] in self.verified:
            assert sw == 0x9000
            assert len(data) == self.signature_length
        else:
            assert (data, sw) == (b"", 0x6982)

    @invariant()
    def answers_are_valid_status_words(self) -> None:
        assert is_valid(self.last_sw)

    @invariant()
    def counters_match_the_model(self) -> None:
        if hasattr(self, "card"):
            for fid, left in self.remaining.items():
                assert self.card.credential(self.application, fid).remaining == left


class NextGenerationAccessMachine(JpkiAccessMachine):
    """The next-generation card: the same model, its own keys and signature shape."""

    persona = generation_persona_path("next-generation")
    application = "auth"
    to_sign = bytes(range(48))  # a SHA-384 digest, no DigestInfo
    signature_length = 96  # raw r‖s of P-384


SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
JpkiAccessMachine.TestCase.settings = SETTINGS
NextGenerationAccessMachine.TestCase.settings = SETTINGS
TestJpkiAccess = JpkiAccessMachine.TestCase
TestNextGenerationAccess = NextGenerationAccessMachine.TestCase
