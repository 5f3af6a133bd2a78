"""readers.host_side.pcsc against demo cards behind a private pcscd + vpcd: presence events,
card removal in the middle of a transaction (both cases of runbook §7) with a durable card
image, long responses, discovery, and the error type."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from smartcard import scard

from apdu import builders
from apdu.vocabulary import KNOWN_ATRS
from card_emulator import Card
from readers.card_side.reader_conf import VpcdReader
from readers.card_side.vpcd import Removal
from readers.host_side.client import MynaClient
from readers.host_side.jpki import JpkiCredential
from readers.host_side.pcsc import (
    SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED,
    SCARD_W_REMOVED_CARD,
    CardKind,
    FoundCard,
    PcscTransport,
    PcscTransportError,
    Protocol,
    Share,
    find_my_number_cards,
    scard_name,
)
from readers.scard import PcscError, wait_for_card
from tests.integration.conftest import (
    AUTH_PIN,
    DEMO_PERSONA,
    SIGN_PASSWORD,
    MuteCard,
    Served,
    der_object,
    serve,
    unplug,
)

pytestmark = pytest.mark.pcsc

REMOVAL_CODES = (SCARD_E_NOT_TRANSACTED, SCARD_W_REMOVED_CARD)
CERTIFICATE_EFS = (0x000A, 0x000B, 0x0002)
TIMEOUT_MS = 5000
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


def _status_change(ctx: Any, reader: str, known: int) -> tuple[int, bytes]:
    """One SCardGetStatusChange call: blocks until the reader's state differs from ``known``."""
    hresult, states = scard.SCardGetStatusChange(ctx, TIMEOUT_MS, [(reader, known)])
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    _, event, atr = states[0]
    return event & ~scard.SCARD_STATE_CHANGED, bytes(atr)


def _await(ctx: Any, reader: str, state: int, *, present: bool) -> tuple[int, bytes]:
    """Block on SCardGetStatusChange (no sleeps) until the card is present / absent."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state, atr = _status_change(ctx, reader, state)
        if bool(state & scard.SCARD_STATE_PRESENT) == present:
            return state, atr
    raise AssertionError(f"{reader}: card still {'absent' if present else 'present'}")


def test_pyscard_sees_insertion_and_removal(spare_readers: list[tuple[int, VpcdReader]]) -> None:
    index, reader = spare_readers[0]
    card = Card.from_persona(DEMO_PERSONA)
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    served: Served | None = None
    try:
        state, _ = _status_change(ctx, reader.name, scard.SCARD_STATE_UNAWARE)
        assert state & scard.SCARD_STATE_EMPTY and not state & scard.SCARD_STATE_PRESENT

        served = serve(card, reader, index, wait=False)  # insert
        state, atr = _await(ctx, reader.name, state, present=True)
        assert atr == card.atr == KNOWN_ATRS["classic"]
        with PcscTransport(reader.name) as transport:
            assert transport.atr == card.atr
            assert transport.active_protocol is Protocol.T1
            assert transport.transmit(SELECT_JPKI) == b"\x90\x00"

            served.client.remove()
            state, atr = _await(ctx, reader.name, state, present=False)
            assert atr == b"" or not state & scard.SCARD_STATE_PRESENT
            with pytest.raises(PcscTransportError) as gone:
                transport.transmit(SELECT_JPKI)
            assert gone.value.code == SCARD_W_REMOVED_CARD and gone.value.card_gone

            served.client.insert()
            state, atr = _await(ctx, reader.name, state, present=True)
            assert atr == card.atr
            transport.reconnect(reset=True)  # the old handle works again after a reset
            assert transport.transmit(SELECT_JPKI) == b"\x90\x00"
    finally:
        scard.SCardReleaseContext(ctx)
        if served is not None:
            unplug(served)


def _read_everything(client: MynaClient, card: Card) -> None:
    """Every certificate (the signing one after the password) equals what the card holds,
    and the auth key signs."""
    files = card.content.application("jpki").files
    client.select_jpki()
    for fid in CERTIFICATE_EFS:
        assert client.read_ef(fid) == der_object(files[fid])
    client.verify(JpkiCredential.SIGN_PASSWORD, SIGN_PASSWORD)
    assert client.read_ef(0x0001) == der_object(files[0x0001])
    client.verify(JpkiCredential.AUTH_PIN, AUTH_PIN)
    auth = client.certificate(0x000A)
    signature = client.sign(JpkiCredential.AUTH_PIN, b"after the removal")
    public_key = auth.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, b"after the removal", padding.PKCS1v15(), hashes.SHA256())


def test_card_pulled_mid_transaction_leaves_the_image_intact(plug: Any, tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    card = Card.from_persona(DEMO_PERSONA, image=image)
    served: Served = plug(card)
    wrong_verify = builders.verify(b"9999", sfi=0x18).to_bytes()
    codes: list[int] = []

    with PcscTransport(served.name, share=Share.EXCLUSIVE) as transport:
        client = MynaClient(transport)
        # case 1: the card answers a wrong VERIFY, then leaves; the client's next APDU fails
        with transport.transaction():
            client.select_jpki()
            assert client.retries(JpkiCredential.AUTH_PIN) == 3
            served.client.remove_on_apdu(1, when=Removal.AFTER_ANSWER)
            assert transport.transmit(wrong_verify) == b"\x63\xc2"
            with pytest.raises(PcscTransportError) as pulled:
                client.read_ef(0x000A)
            codes.append(pulled.value.code)
        wait_for_card(served.name, present=False)
        with pytest.raises(PcscTransportError) as later:
            transport.transmit(wrong_verify)
        assert later.value.code == SCARD_W_REMOVED_CARD

        served.client.insert()
        wait_for_card(served.name)
        transport.reconnect(reset=True)
        # case 2: pulled while executing a wrong VERIFY: the answer never arrives, the try
        # is spent all the same (committed before the answer would have left the card)
        with transport.transaction():
            client.select_jpki()
            assert client.retries(JpkiCredential.AUTH_PIN) == 2
            served.client.remove_on_apdu(1, when=Removal.AFTER_PROCESSING)
            with pytest.raises(PcscTransportError) as lost:
                transport.transmit(wrong_verify)
            codes.append(lost.value.code)
        wait_for_card(served.name, present=False)
        assert all(code in REMOVAL_CODES for code in codes), [hex(c) for c in codes]
        print("\nclient saw, pulled after the answer / while executing:", *map(scard_name, codes))

    served.client.stop()
    card.close()
    with contextlib.closing(sqlite3.connect(image)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    reopened = Card.from_persona(DEMO_PERSONA, image=image)
    try:
        assert reopened.credential("jpki", 0x0018).remaining == 1
        again: Served = plug(reopened)
        with PcscTransport(again.name) as transport:
            client = MynaClient(transport)
            client.select_jpki()
            assert client.retries(JpkiCredential.AUTH_PIN) == 1
            client.verify(JpkiCredential.AUTH_PIN, AUTH_PIN, force=True)  # resets the counter
            assert client.retries(JpkiCredential.AUTH_PIN) == 3
            _read_everything(client, reopened)
        assert reopened.credential("jpki", 0x0018).remaining == 3
        unplug(again)
    finally:
        reopened.close()


def test_extended_and_256_byte_responses_pass_unchanged(demo_cards: list[Served]) -> None:
    served = demo_cards[1]
    certificate = served.jpki_file(0x000A)
    with PcscTransport(served.name) as transport:
        assert transport.transmit(SELECT_JPKI) == b"\x90\x00"
        whole = transport.transmit(bytes.fromhex("00B08A00000000"))  # SFI 0A, extended Le
        assert whole == certificate + b"\x90\x00"
        assert len(whole) > 258 + 1000
        assert served.exchanges[-1] == (bytes.fromhex("00B08A00000000"), whole)
        assert transport.transmit(bytes.fromhex("00A4020C02000A")) == b"\x90\x00"
        chunk = transport.transmit(bytes.fromhex("00B0000000"))  # Le 00 = 256
        assert len(chunk) == 258 and chunk == certificate[:256] + b"\x90\x00"
        assert served.exchanges[-1] == (bytes.fromhex("00B0000000"), chunk)


def _tck(body: bytes) -> int:
    check = 0
    for byte in body:
        check ^= byte
    return check


def test_find_my_number_cards(demo_cards: list[Served], plug: Any, tmp_path: Path) -> None:
    # a smartphone token with an ATR no table knows: found by SELECT of the JPKI-AP
    body = bytes([0x88, 0x01]) + b"ANDROID1"
    phone_atr = bytes([0x3B]) + body + bytes([_tck(body)])
    persona = DEMO_PERSONA.read_text(encoding="utf-8")
    persona = persona.replace('token = "JPKIAPICCTOKEN2"', 'token = "JPKIAPGPSETOKEN"')
    persona = persona.replace('atr = "classic"', f'atr = "{phone_atr.hex()}"')
    assert "JPKIAPGPSETOKEN" in persona and phone_atr.hex() in persona
    (tmp_path / "phone.toml").write_text(persona, encoding="utf-8")
    phone = plug(Card.from_persona(tmp_path / "phone.toml"))
    mute = plug(MuteCard())  # not a My Number card

    found = {card.reader: card for card in find_my_number_cards()}
    for served in demo_cards:
        assert found[served.name] == FoundCard(
            served.name, KNOWN_ATRS["classic"], CardKind.PHYSICAL_CARD, "JPKIAPICCTOKEN2"
        )
    assert found[phone.name] == FoundCard(
        phone.name, phone_atr, CardKind.SMARTPHONE, "JPKIAPGPSETOKEN"
    )
    assert mute.name not in found
    assert set(found) == {s.name for s in demo_cards} | {phone.name}
    # only SELECT and READ BINARY reached the cards
    assert {command[1] for command, _ in phone.exchanges} <= {0xA4, 0xB0}
    assert {command[1] for command, _ in mute.exchanges} <= {0xA4}

    # a card another client holds is judged by its ATR alone, without an APDU
    busy = demo_cards[2]
    before = len(busy.exchanges)
    with PcscTransport(busy.name, share=Share.SHARED):
        assert find_my_number_cards([busy.name]) == [
            FoundCard(busy.name, KNOWN_ATRS["classic"], CardKind.UNKNOWN)
        ]
    assert len(busy.exchanges) == before


def test_errors_carry_the_scard_code(spare_readers: list[tuple[int, Any]]) -> None:
    _, empty = spare_readers[-1]
    with pytest.raises(PcscTransportError) as no_card:
        PcscTransport(empty.name).connect()
    assert no_card.value.code == SCARD_E_NO_SMARTCARD
    assert no_card.value.name == "SCARD_E_NO_SMARTCARD"
    assert "SCARD_E_NO_SMARTCARD 0x8010000C" in str(no_card.value)
    assert isinstance(no_card.value, PcscError)  # the CLI's handler prints it, no traceback

    with pytest.raises(PcscTransportError) as unknown:
        PcscTransport("no such reader 00 00").connect()
    assert unknown.value.name == "SCARD_E_UNKNOWN_READER"

    idle = PcscTransport(empty.name)
    with pytest.raises(PcscTransportError, match="not connected"):
        idle.transmit(b"\x00\xa4\x04\x00")
    idle.disconnect()  # harmless when not connected
