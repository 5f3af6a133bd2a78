"""The console in a process of its own (:class:`ConsoleProcess`), over cards in a real pcscd.

It serves the same API, runs at idle priority, never takes the cards down with it, and goes
away when the cards' process stops it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apdu import builders
from apdu.vocabulary import Jpki
from card_emulator import Card
from card_emulator import persona as persona_module
from harness.card_server import Endpoint
from harness.console import CardController
from harness.console.web import ConsoleProcess, ConsoleServerError
from harness.control import ConsoleClient, ConsoleError
from harness.default_pki import personalize_shared, pki_store
from harness.personas import demo_persona_path
from readers.host_side.pcsc import PcscTransport

pytestmark = pytest.mark.pcsc

SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()
VERIFY_WRONG = builders.verify(b"9999", sfi=0x18).to_bytes()


@pytest.fixture
def served(myna_pcscd: Any) -> Iterator[tuple[CardController, str]]:
    """The demo card served in the first reader (the controller owns it); afterwards the
    reader is empty again (pcscd notices within a poll, so the next test waits for its own card)."""
    reader = myna_pcscd.readers[0]
    controller = CardController.serve(
        [("demo", Card(personalize_shared(persona_module.load(demo_persona_path()))))],
        pki=pki_store(),
        endpoints=[Endpoint(reader.host, reader.port, reader.name, reader.netns)],
    )
    try:
        myna_pcscd.wait_for_card(reader.name, timeout=10)
        yield controller, reader.name
    finally:
        controller.close()
    myna_pcscd.wait_for_card(reader.name, present=False, timeout=10)


def _exited(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)  # our own child: is it still there?
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_console_process_serves_the_api_at_idle_priority(
    myna_pcscd: Any, served: tuple[CardController, str]
) -> None:
    controller, name = served
    with controller, ConsoleProcess(controller, personas=[demo_persona_path()]) as console:
        assert console.alive and console.pid is not None and console.pid != os.getpid()
        assert os.sched_getscheduler(console.pid) == os.SCHED_IDLE
        with PcscTransport(name) as transport, ConsoleClient(console.url) as client:
            assert client.cards()["cards"][0]["reader"] == name
            transport.transmit(SELECT_JPKI)
            transport.transmit(VERIFY_WRONG)
            state = client.card(name)
            assert state["application"] == "jpki"
            tries = {c["name"]: c["tries_left"] for c in state["credentials"]}
            assert tries["jpki_auth"] == 2
            trace = client.trace(name)
            assert "00 20 00 98 04 XX XX XX XX" in trace and "9999" not in trace
            client.set_tries(name, "jpki", "jpki_auth", 3)
            assert controller.state(name).credential("jpki_auth").tries_left == 3
            with pytest.raises(ConsoleError) as bad:
                client.set_tries(name, "jpki", "jpki_auth", 42)
            assert bad.value.status == 400 and bad.value.field == "tries"
        pid = console.pid
    assert _exited(pid), "the console process outlived stop()"


def test_the_cards_serve_on_when_the_console_process_dies(
    myna_pcscd: Any, served: tuple[CardController, str]
) -> None:
    controller, name = served
    with controller, ConsoleProcess(controller) as console:
        pid = console.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the child this test's ConsoleProcess started
        deadline = time.monotonic() + 5
        while console.alive and time.monotonic() < deadline:  # alive reaps it
            time.sleep(0.05)
        assert not console.alive and _exited(pid)
        with PcscTransport(name) as transport:
            for _ in range(50):
                assert transport.transmit(SELECT_JPKI)[-2:] == b"\x90\x00"
        assert controller.state(name).application == "jpki"


def test_a_console_that_cannot_start_says_why_and_leaves_no_process(
    served: tuple[CardController, str], tmp_path: Path
) -> None:
    controller, _ = served
    bad = tmp_path / "bad.toml"
    bad.write_text("label = \n", encoding="utf-8")
    with controller:
        console = ConsoleProcess(controller, personas=[bad])
        with pytest.raises(ConsoleServerError, match="did not start"):
            console.start()
        assert console.pid is None
