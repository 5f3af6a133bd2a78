"""Secure messaging through the real stack: pyscard → pcscd → vpcd → the emulated card.

The host-side session opens with the PIN, presents 照合番号A encrypted and reads the 個人番号
and 基本4情報 encrypted; the masked trace of the whole run holds neither the PIN nor 照合番号A.
"""

from __future__ import annotations

import json
from typing import Any

from apdu import TraceRecord
from card_emulator import Card
from card_emulator.card import throwaway_pki
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport
from readers.host_side.secure_messaging import TextApSession
from tests.integration.conftest import DEMO_PERSONA

MY_NUMBER = "314159265352"
PIN = "1234"


def spaced(text: str) -> str:
    return text.encode("ascii").hex(" ").upper()


def test_sm_session_reads_the_my_number_through_pcscd(plug: Any) -> None:
    card = Card.from_persona(DEMO_PERSONA)
    served = plug(card)
    records: list[TraceRecord] = []
    with PcscTransport(served.name, on_exchange=records.append) as transport:
        session = TextApSession.open(MynaClient(transport), PIN)
        session.verify_check_code_a(MY_NUMBER)
        number, attributes = session.verified_contents(throwaway_pki().cv_root_public_key("text"))
    assert number == MY_NUMBER
    assert attributes.name == "番号　花子"
    assert session.counter == 10  # VERIFY, then SELECT + READ for 0001, 0002, 0003, 0004
    # the card saw SM commands, not the plain ones
    classes = [command[0] for command, _ in served.exchanges]
    assert classes.count(0x08) == 9
    assert any(command[:2] == b"\x80\xae" for command, _ in served.exchanges)

    trace = "\n".join(json.dumps(record.to_json(), ensure_ascii=False) for record in records)
    assert len(records) == len(served.exchanges)
    assert spaced(MY_NUMBER) not in trace  # 照合番号A (= 個人番号) never in the clear
    assert spaced(PIN) not in trace  # the PIN VERIFY is masked
    assert MY_NUMBER not in trace
    masked = [line for line in trace.splitlines() if "XX" in line]
    assert any('"command": "00 20 00 80 04 XX XX XX XX"' in line for line in masked)
    assert any(json.loads(line)["command"].startswith("80 AE 00 00 00 01 00 XX") for line in masked)
    assert any(json.loads(line)["command"].startswith("08 20 00 94") for line in masked)
