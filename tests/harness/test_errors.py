"""One root error for the project, and a wrong PIN that says how many tries are left."""

from __future__ import annotations

import pytest

from apdu import CodecError, MynacardError
from card_emulator import Card, ImageError, PersonaError
from card_emulator.access import RulesError
from card_emulator.content import ContentError
from card_emulator.image import StorageError
from harness.audit.report import AuditError
from harness.card_server import ServeError
from harness.commands.fidelity import FidelityError
from harness.faults import ScenarioError
from harness.fingerprint.plan import UnsafeCommandError
from harness.fingerprint.profile import ProfileError
from harness.fingerprint.runner import ProbeStoppedError
from harness.issuance.personas import IssueError
from harness.traces.trace_file import TraceError
from jpki.declaration import DeclarationError
from jpki.pki_store import PkiError
from jpki.revocation import RevocationError
from readers.card_side.vicc import ViccConnectError, ViccUnavailableError
from readers.card_side.vpcd import VpcdConnectError
from readers.host_side.client import MynaClient
from readers.host_side.protocol import CardError, InterlockError, PinBlockedError, WrongPinError
from readers.host_side.secure_messaging import SessionBrokenError
from readers.host_side.text_ap import VerificationError
from readers.host_side.transport import InProcessTransport
from readers.scard import PcscError
from tests.conftest import DEMO_PERSONA

TEXT_AID = bytes.fromhex("D3921000310001010408")


@pytest.mark.parametrize(
    "error",
    [
        CodecError, PersonaError, ImageError, StorageError, RulesError, ContentError,
        AuditError, ServeError, ScenarioError, FidelityError, IssueError, TraceError,
        DeclarationError, PkiError, RevocationError, CardError, InterlockError, PcscError,
        SessionBrokenError, VerificationError, ViccConnectError, ViccUnavailableError,
        ProfileError, ProbeStoppedError, UnsafeCommandError,
        VpcdConnectError,
    ],
)  # fmt: skip
def test_every_error_raised_on_purpose_has_the_one_root(error: type[Exception]) -> None:
    assert issubclass(error, MynacardError)


def test_a_wrong_pin_carries_the_tries_left_and_a_blocked_one_says_so() -> None:
    client = MynaClient(InProcessTransport(Card.from_persona(DEMO_PERSONA)))
    for left in (2, 1, 0):
        with pytest.raises(WrongPinError) as wrong:
            client.unlock(TEXT_AID, 0x0011, "9999")
        assert wrong.value.tries_left == left
        assert wrong.value.sw == 0x63C0 | left
        assert isinstance(wrong.value, CardError)
    with pytest.raises(PinBlockedError, match="blocked"):
        client.unlock(TEXT_AID, 0x0011, "1234")
