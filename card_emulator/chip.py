"""The chip: class checks and command dispatch over one security state.

The volatile state (selected AP, current EF, verified IEFs, SM session) lives in
:class:`~card_emulator.security_state.SecurityState`; handlers reach it, the content and storage
through one :class:`~card_emulator.command_context.CommandContext` built with the chip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Set

from apdu import CodecError, CommandApdu
from card_emulator.access import AccessRules
from card_emulator.command_context import CommandContext, Handler
from card_emulator.commands import (
    authenticate,
    challenge,
    credentials,
    data_objects,
    read,
    records,
    secure_messaging,
    select,
    sign,
    terminal,
)
from card_emulator.commands import replies as r
from card_emulator.content import CardContent
from card_emulator.image import CardStore
from card_emulator.objects import Application
from card_emulator.security_state import SecurityState, SmSession

log = logging.getLogger(__name__)


# (class, INS) -> handler. Class 00 = interindustry, 80 = JICSAP / proprietary.
HANDLERS: dict[tuple[int, int], Handler] = {
    (0x00, 0xA4): select.select,
    (0x00, 0xB0): read.read_binary,
    (0x00, 0x20): credentials.verify,
    (0x00, 0x24): credentials.change_reference_data,
    (0x00, 0xB2): records.read_record,
    (0x00, 0x84): challenge.get_challenge,
    (0x00, 0x88): authenticate.internal_authenticate,
    (0x00, 0xCA): data_objects.get_data,
    (0x80, 0x2A): sign.compute_digital_signature,
    (0x80, 0x32): credentials.change_key,
    (0x80, 0xAE): secure_messaging.set_session_key,
    (0x80, 0xFC): terminal.last_command_indicator,
    (0x80, 0xA2): terminal.set_public_ic_key,
}
_KNOWN_INS = {ins for _, ins in HANDLERS}


class Chip:
    """Runs command APDUs against a card's content."""

    def __init__(
        self,
        content: CardContent,
        store: CardStore,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        strict: bool = False,
    ) -> None:
        self.content = content
        self.store = store
        self.policy = content.policy
        self.random_bytes = random_bytes
        self.strict = strict
        self._state = SecurityState(
            content.rules, reselect_clears_state=self.policy.reselect_clears_state
        )
        self._context = CommandContext(
            content, store, self._state, random_bytes=random_bytes, run=self.run
        )
        if self.policy.remap:  # only such cards pay for it
            self.process = self._process_remapped  # type: ignore[method-assign]

    # --- read-only views of the state (inspection; handlers use the context) ----------------

    @property
    def by_aid(self) -> Mapping[bytes, Application]:
        """The card's applications by AID."""
        return self._context.applications

    @property
    def app(self) -> Application | None:
        """The selected application (``None``: the issuer security domain)."""
        return self._state.app

    @property
    def rules(self) -> AccessRules:
        """The selected application's access rules."""
        return self._state.rules

    @property
    def ef(self) -> int | None:
        """The current EF."""
        return self._state.ef

    @property
    def verified(self) -> Set[int]:
        """The verified IEFs of the selected application."""
        return self._state.verified

    @property
    def sm(self) -> SmSession | None:
        """The secure-messaging session, if any."""
        return self._state.sm

    @property
    def ap_was_selected(self) -> bool:
        """An application was selected since the last reset."""
        return self._state.ap_was_selected

    @property
    def storage_failed(self) -> bool:
        """Set by a failed credential write; survives resets, cleared only by reopening."""
        return self._context.storage_failed

    # --- power ------------------------------------------------------------------------------

    def power_reset(self) -> None:
        """Power-on / reset / power-off: back to the issuer security domain, nothing verified."""
        self._state.reset()

    # --- the one entry point --------------------------------------------------------------

    def process(self, raw: bytes) -> bytes:
        """One command APDU in, one response APDU out. Never raises for bad input."""
        if len(raw) < 4:
            return r.WRONG_LENGTH
        cla, ins = raw[0], raw[1]
        refusal = _check_class(cla, self.policy.unknown_cla_sw)
        if refusal is not None:
            return refusal
        if cla & 0x0C:
            return self._secure_messaging(raw)
        if cla & 0x10:
            return r.CHAINING_NOT_SUPPORTED
        handler = HANDLERS.get((cla & 0x80, ins))
        if handler is None:
            return self._unknown(ins)
        try:
            cmd = CommandApdu.parse(raw)
        except CodecError:
            return r.WRONG_LENGTH
        try:
            return handler(self._context, cmd)
        except Exception:
            return self._internal_error(cmd)  # CommandApdu's repr masks PINs

    def _process_remapped(self, raw: bytes) -> bytes:
        """:meth:`process` with the persona's status-word remapping applied."""
        response = Chip.process(self, raw)
        return self.policy.remapped(raw[1], response) if len(raw) >= 2 else response

    def run(self, cmd: CommandApdu) -> bytes:
        """Dispatch one parsed plain command (also the inner command of an SM one)."""
        handler = HANDLERS.get((cmd.cla & 0x80, cmd.ins))
        if handler is None:
            return self._unknown(cmd.ins)
        return handler(self._context, cmd)

    def _unknown(self, ins: int) -> bytes:
        policy = self.policy
        return r.status(policy.unknown_cla_sw if ins in _KNOWN_INS else policy.unknown_ins_sw)

    def _secure_messaging(self, raw: bytes) -> bytes:
        try:
            return secure_messaging.process(self._context, raw)
        except Exception:
            return self._internal_error("a secure-messaging command")  # no bytes logged

    def _internal_error(self, command: object) -> bytes:
        """Inside ``except``: re-raise when strict, else log it and answer ``6F00``."""
        if self.strict:
            raise  # noqa: PLE0704 - always called from an except block
        log.exception("internal error on %s", command)
        return r.NO_DIAGNOSIS


def _check_class(cla: int, unknown_cla_sw: int) -> bytes | None:
    """Refusal for a class byte this card does not accept, else ``None``.

    Secure-messaging classes pass: :mod:`~card_emulator.commands.secure_messaging` answers them.
    """
    if 0x40 <= cla <= 0x7F:  # further interindustry classes: logical channels 4-19
        return r.CHANNEL_NOT_SUPPORTED
    if cla & 0xE0 not in (0x00, 0x80) or cla == 0xFF:
        return r.status(unknown_cla_sw)
    if cla & 0x03:
        return r.CHANNEL_NOT_SUPPORTED
    return None
