"""Hypothesis stateful model of the chip's access control across ALL applications.

An independent model (tables of card-facts §4-§9 in :mod:`tests.security.facts`) predicts every
status word; invariants hold after every step:

* no protected byte is ever returned without its credential (exact check on every read, and a
  12-byte-window scan of every response against the protected EFs that are closed right now);
* no private-key byte appears in any response (windows of d, p, q, dP, dQ, qInv of every key);
* retry counters only go down, except on a successful VERIFY of that credential;
* a blocked credential stays blocked;
* every response ends in a valid status word.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from apdu import CommandApdu, builders
from apdu.status import is_valid
from card_emulator import Card
from tests.conftest import DEMO_PERSONA
from tests.security.facts import AIDS, DEMO_CREDENTIALS, READ, USE, opens

APPS = sorted(AIDS)
WINDOW = 12
DIGEST = hashlib.sha256(b"stateful model").digest()
DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420") + DIGEST
ISD_AID = bytes.fromhex("A0000001510000")
ALL_FIDS = sorted(
    {f for a in APPS for f in [*READ[a], *USE[a], *DEMO_CREDENTIALS[a]]} | {0x0C, 0x1D, 0x1E}
)


@cache
def _key_windows() -> frozenset[bytes]:
    card = Card.from_persona(DEMO_PERSONA)
    out: set[bytes] = set()
    for app in card.content.applications:
        keys = [*app.keys.values(), *([app.session_key] if app.session_key else [])]
        for key in keys:
            n = key.private_key.private_numbers()
            for value in (n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp):
                raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
                out.update(raw[i : i + 16] for i in range(len(raw) - 15))
    return frozenset(out)


@cache
def _protected_windows() -> dict[bytes, frozenset[tuple[str, int]]]:
    """12-byte windows of protected EFs that do not also occur in any free EF."""
    card = Card.from_persona(DEMO_PERSONA)
    free: set[bytes] = set()
    owners: dict[bytes, set[tuple[str, int]]] = {}
    for app in card.content.applications:
        for fid, content in app.files.items():
            windows = {content[i : i + WINDOW] for i in range(len(content) - WINDOW + 1)}
            if READ[app.name].get(fid, None) == frozenset():
                free |= windows
            else:
                for w in windows:
                    owners.setdefault(w, set()).add((app.name, fid))
    return {w: frozenset(o) for w, o in owners.items() if w not in free}


class AllApsAccessMachine(RuleBasedStateMachine):
    card: Card

    @initialize()
    def fresh_card(self) -> None:
        self.card = Card.from_persona(DEMO_PERSONA, strict=True)
        self.content = self.card.content
        self.remaining = {
            (a, f): tries for a in APPS for f, (_, tries) in DEMO_CREDENTIALS[a].items()
        }
        self.app: str | None = None
        self.ef: int | None = None
        self.verified: set[int] = set()
        self.last_sw = 0x9000
        self.last_data = b""
        self.succeeded: set[tuple[str, int]] = set()
        self.snapshot = self._counters()
        self.ever_blocked: set[tuple[str, int]] = {k for k, v in self.remaining.items() if v == 0}

    # --- helpers ---------------------------------------------------------------------------

    def _counters(self) -> dict[tuple[str, int], int]:
        return {(a, f): self.card.credential(a, f).remaining for (a, f) in self.remaining}

    def send(self, command: CommandApdu | bytes) -> tuple[bytes, int]:
        raw = command if isinstance(command, bytes) else command.to_bytes()
        self.snapshot = self._counters()
        self.succeeded = set()
        response = self.card.transmit(raw)
        self.last_data, self.last_sw = response[:-2], int.from_bytes(response[-2:], "big")
        return self.last_data, self.last_sw

    def _objects(self) -> set[int]:
        if self.app is None:
            return set()
        a = self.content.application(self.app)
        return {*a.files, *a.records, *a.keys, *a.credentials}

    def _credentials(self) -> set[int]:
        return set() if self.app is None else set(DEMO_CREDENTIALS[self.app])

    def _clear(self) -> None:
        self.app, self.ef = None, None
        self.verified.clear()

    # --- selection and power ---------------------------------------------------------------

    @rule(app=st.sampled_from(APPS), fci=st.booleans())
    def select_ap(self, app: str, fci: bool) -> None:
        data, sw = self.send(builders.select_aid(AIDS[app], fci=fci))
        assert sw == 0x9000
        assert (data == b"") != fci
        self.app, self.ef = app, None
        self.verified.clear()

    @rule(
        aid=st.sampled_from([bytes.fromhex("D392F0002601"), bytes.fromhex("A000000003"), ISD_AID])
    )
    def select_other(self, aid: bytes) -> None:
        _, sw = self.send(builders.select_aid(aid))
        if aid == ISD_AID:
            assert sw == 0x9000
            self._clear()
        else:
            assert sw == 0x6A82

    @precondition(lambda self: self.app is not None)
    @rule(data=st.data())
    def select_ef(self, data: st.DataObject) -> None:
        fid = self._pick(data, self._objects())
        _, sw = self.send(builders.select_ef(fid))
        if fid in self._objects():
            assert sw == 0x9000
            self.ef = fid
        else:
            assert sw == 0x6A82

    @precondition(lambda self: self.app is None)
    @rule(
        command=st.sampled_from(
            [
                ("00A4020C020018", 0x6A82),
                ("00B0810000", 0x6A82),
                ("00B0000000", 0x6986),
                ("00B2010C00", 0x6A82),
                ("0020009804", 0x6A88),
                ("00200080", 0x6986),
                ("802A0097" + "22" + DIGEST_INFO[:34].hex() + "00", 0x6986),
                ("008800990400000000" + "00", 0x6986),
            ]
        )
    )
    def command_without_ap(self, command: tuple[str, int]) -> None:
        _, sw = self.send(bytes.fromhex(command[0]))
        assert sw == command[1]

    @rule(how=st.sampled_from(["reset", "power"]))
    def power_cycle(self, how: str) -> None:
        if how == "reset":
            self.card.reset()
        else:
            self.card.power_off()
            self.card.power_on()
        self.snapshot = self._counters()
        self.last_sw, self.last_data = 0x9000, b""
        self._clear()

    # --- VERIFY ------------------------------------------------------------------------------

    def _pick(self, data: st.DataObject, mine: Iterable[int]) -> int:
        """Mostly an object of the selected AP, sometimes any FID."""
        local = sorted(mine)
        if local and data.draw(st.integers(0, 3), label="local") > 0:
            return data.draw(st.sampled_from(local), label="fid")
        return data.draw(st.sampled_from(ALL_FIDS), label="fid")

    @precondition(lambda self: self.app is not None)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["right", "right", "wrong", "short", "long", "empty"]),
        by_sfi=st.booleans(),
    )
    def verify(self, data: st.DataObject, kind: str, by_sfi: bool) -> None:
        fid = self._pick(data, self._credentials())
        app = self.app or "jpki"
        value = DEMO_CREDENTIALS[app].get(fid, (b"1234", 0))[0]
        pin = {
            "right": value,
            "wrong": value[:-1] + (b"0" if value[-1:] != b"0" else b"1"),
            "short": value[:-1] or b"1",
            "long": value + b"9",
            "empty": None,
        }[kind]
        if kind == "right" and not value:
            pin = b"0000"  # text 0012 has no value: blocked at issue
        if by_sfi:
            _, sw = self.send(builders.verify(pin, sfi=fid))
            target = fid if fid in self._credentials() else None
            if target is None:
                assert sw == 0x6A88
                return
        else:
            self.select_ef_if_possible(fid)  # a failed SELECT leaves the previous EF current
            _, sw = self.send(builders.verify(pin))
            if self.app is None or self.ef is None:
                assert sw == 0x6986
                return
            if self.ef not in self._credentials():
                assert sw == 0x6981
                return
            target = self.ef
        assert self.app is not None
        app, fid = self.app, target
        value = DEMO_CREDENTIALS[app][fid][0]
        pin_is_right = bool(value) and pin == value
        left = self.remaining[(app, fid)]
        if pin is None:
            assert sw == 0x63C0 | left
        elif left == 0:
            assert sw == 0x6984
        elif pin_is_right:
            assert sw == 0x9000
            self.remaining[(app, fid)] = DEMO_CREDENTIALS[app][fid][1]
            self.verified.add(fid)
            self.succeeded = {(app, fid)}
        else:
            self.remaining[(app, fid)] = left - 1
            self.verified.discard(fid)
            assert sw == 0x63C0 | (left - 1)
        if self.remaining[(app, fid)] == 0:
            self.ever_blocked.add((app, fid))
        if pin is not None:
            succeeded = self.succeeded
            self.check_invariants_now()
            self.sweep()  # the security state may have changed: check every cell of the AP
            self.succeeded = succeeded

    def select_ef_if_possible(self, fid: int) -> None:
        _, sw = self.send(builders.select_ef(fid))
        if fid in self._objects():
            assert sw == 0x9000
            self.ef = fid

    # --- reads -------------------------------------------------------------------------------

    def _expect_read(self, fid: int, data: bytes, sw: int, offset: int, le: int) -> None:
        assert self.app is not None
        a = self.content.application(self.app)
        rule_ = READ[self.app].get(fid)
        if fid in a.files:
            if not opens(rule_, self.verified):
                assert (data, sw) == (b"", 0x6982), (self.app, fid, sw)
            elif offset >= len(a.files[fid]):
                assert (data, sw) == (b"", 0x6B00)
            else:
                assert sw == 0x9000
                assert data == a.files[fid][offset : offset + le]
        else:
            assert (data, sw) == (b"", 0x6981)

    @precondition(lambda self: self.app is not None)
    @rule(
        data=st.data(),
        offset=st.sampled_from([0, 1, 16, 200]),
        le=st.sampled_from([1, 4, 17, 256]),
        extended=st.booleans(),
    )
    def read_binary_sfi(self, data: st.DataObject, offset: int, le: int, extended: bool) -> None:
        fid = self._pick(data, READ[self.app] if self.app else ())
        cmd = CommandApdu(0x00, 0xB0, 0x80 | fid, offset, le=65536 if extended else le)
        out, sw = self.send(cmd)
        if fid not in self._objects():
            assert (out, sw) == (b"", 0x6A82)
            return
        self.ef = fid
        self._expect_read(fid, out, sw, offset, 65536 if extended else le)

    @precondition(lambda self: self.app is not None)
    @rule(offset=st.sampled_from([0, 3, 300, 5000]), le=st.sampled_from([1, 8, 256, 65536]))
    def read_binary_current(self, offset: int, le: int) -> None:
        data, sw = self.send(builders.read_binary(offset, le))
        if self.app is None or self.ef is None:
            assert (data, sw) == (b"", 0x6986)
            return
        self._expect_read(self.ef, data, sw, offset, le)

    @precondition(lambda self: self.app is not None)
    @rule(data=st.data(), record=st.sampled_from([1, 2]))
    def read_record(self, data: st.DataObject, record: int) -> None:
        fid = self._pick(data, self._objects())
        out, sw = self.send(builders.read_record(record, sfi=fid))
        if fid not in self._objects():
            assert (out, sw) == (b"", 0x6A82)
            return
        assert self.app is not None
        self.ef = fid
        a = self.content.application(self.app)
        if fid not in a.records:
            assert (out, sw) == (b"", 0x6981)
        elif not opens(READ[self.app].get(fid), self.verified):
            assert (out, sw) == (b"", 0x6982)
        elif record > len(a.records[fid]):
            assert (out, sw) == (b"", 0x6A83)
        else:
            assert (out, sw) == (a.records[fid][record - 1], 0x9000)

    @precondition(lambda self: self.app is not None)
    @rule()
    def sweep(self) -> None:
        """Every EF and key of the selected AP under the current state (as the audit does)."""
        assert self.app is not None
        a = self.content.application(self.app)
        for fid in sorted(READ[self.app]):
            if fid in a.records:
                out, sw = self.send(builders.read_record(1, sfi=fid))
                want = opens(READ[self.app][fid], self.verified)
                assert (sw == 0x9000) == want and (bool(out) == want), (self.app, fid, sw)
            else:
                out, sw = self.send(builders.read_binary_sfi(fid, 0, 4))
                self._expect_read(fid, out, sw, 0, 4)
            self.ef = fid
            self.check_invariants_now()
        for fid in sorted(USE[self.app]):
            self.sign(fid)
            self.check_invariants_now()

    def check_invariants_now(self) -> None:
        self.answers_are_valid_status_words()
        self.no_private_key_bytes()
        self.no_protected_bytes_without_credential()
        self.counters_only_go_down_except_on_success()

    # --- keys --------------------------------------------------------------------------------

    @precondition(lambda self: self.app is not None)
    @rule(fid=st.sampled_from([0x00, 0x13, 0x17, 0x19, 0x1A, 0x18]))
    def sign(self, fid: int) -> None:
        data, sw = self.send(builders.compute_signature(DIGEST_INFO, key_sfi=fid))
        if self.app is None:
            assert sw == 0x6986
            return
        a = self.content.application(self.app)
        key = a.default_key() if fid == 0 else a.keys.get(fid)
        if key is None:
            assert sw == (0x6A86 if fid == 0 else 0x6A88)
            return
        if key.use.value == "internal-authenticate":
            assert sw == 0x6985
            return
        if not opens(USE[self.app].get(key.fid), self.verified):
            assert (data, sw) == (b"", 0x6982)
            return
        assert sw == 0x9000
        key.public_key.verify(data, DIGEST, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    @precondition(lambda self: self.app is not None)
    @rule(fid=st.sampled_from([0x13, 0x17, 0x19, 0x1A]))
    def internal_authenticate(self, fid: int) -> None:
        data, sw = self.send(builders.internal_authenticate(DIGEST, fid))
        if self.app is None:
            assert sw == 0x6986
            return
        key = self.content.application(self.app).keys.get(fid)
        if key is None:
            assert sw == 0x6A88
        elif key.use.value == "sign":
            assert sw == 0x6982
        elif key.use.value == "sign-default":
            assert sw == 0x6985
        else:
            assert sw == 0x9000
            key.public_key.verify(data, DIGEST, padding.PKCS1v15(), hashes.SHA256())

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def answers_are_valid_status_words(self) -> None:
        assert is_valid(self.last_sw), f"{self.last_sw:04X}"

    @invariant()
    def no_private_key_bytes(self) -> None:
        data = self.last_data
        windows = _key_windows()
        assert not any(data[i : i + 16] in windows for i in range(len(data) - 15))

    @invariant()
    def no_protected_bytes_without_credential(self) -> None:
        data = self.last_data
        if len(data) < WINDOW:
            return
        protected = _protected_windows()
        for i in range(len(data) - WINDOW + 1):
            owners = protected.get(data[i : i + WINDOW])
            if not owners:
                continue
            assert any(
                app == self.app and opens(READ[app].get(fid), self.verified) for app, fid in owners
            ), f"protected bytes of {sorted(owners)} returned"

    @invariant()
    def counters_only_go_down_except_on_success(self) -> None:
        if not hasattr(self, "card"):
            return
        now = self._counters()
        for key, value in now.items():
            if key not in self.succeeded:
                assert value <= self.snapshot[key], key
        assert now == self.remaining

    @invariant()
    def blocked_stays_blocked(self) -> None:
        if not hasattr(self, "card"):
            return
        for key in self.ever_blocked:
            assert self.card.credential(*key).remaining == 0


AllApsAccessMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllApsAccess = AllApsAccessMachine.TestCase
