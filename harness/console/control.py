"""The control engine of the live console: watch and drive the cards of ``mynacard serve``.

:class:`CardController` holds one slot per reader. Reading (:meth:`~CardController.snapshot`) and
acting (insert, remove, glitch, reset, set tries, switch persona, faults, certificate states)
are safe from any thread:

* each served card is a :class:`~harness.console.controlled_card.ControlledCard`; its lock is
  taken by the reader's serving thread for every APDU and power event, and by every action that
  reads or changes the card, so an action lands between two APDUs;
* each reader also has an action lock, held for the whole of one action, so two actions on one
  reader never interleave (a persona switch is remove, replace, insert as one step);
* waiting for the reader (vpcd insertion and removal) happens with the action lock only, never
  the card lock (see :mod:`~harness.console.controlled_card`).

Every action checks all of its input first and raises :class:`ControlError` naming the field
before it changes anything. After a change it publishes a ``state`` event with the reader's new
state. The events of the card itself (every exchange, decoded, its command masked as
:meth:`apdu.TraceRecord.to_json` masks it and its response cut to length and status word by
:mod:`~harness.console.masking`, and every card event) come from the server's
``on_exchange`` (in process: from the proxies), see :meth:`CardController.subscribe`.

Two ways to build one: in process over cards (``CardController([("reader A", card)])``, no
pcscd: insert and remove only mark the card in or out), or over a :class:`CardServer` whose
cards are :class:`ControlledCard`\\ s (:meth:`CardController.for_server`, or
:meth:`CardController.serve`, which makes and starts the server).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import MynacardError, Observer, TraceRecord
from apdu.vocabulary import CREDENTIALS
from card_emulator import Card, CounterError
from card_emulator.image import StorageError
from card_emulator.personalize import personalize
from harness.card_server import CardServer, ServableCard
from harness.console import inputs
from harness.console.certificate_records import CertificateRecords
from harness.console.controlled_card import ControlledCard
from harness.console.controls import CredentialRef, ReaderRef
from harness.console.errors import ControlError
from harness.console.events import DEFAULT_QUEUE, Subscription
from harness.console.feed import Feed, LocalFeed
from harness.console.state import CardIdentity, CredentialState, ReaderState, reader_state
from harness.default_pki import personalize_shared
from harness.faults import Scenario
from jpki.clock import default_clock
from jpki.database import CertificateRecord
from jpki.names import Tree
from jpki.pki_store import PkiStore
from jpki.revocation import (
    CertificateState,
    EventKind,
    RevocationError,
    RevocationEvent,
    RevocationReason,
    check_new_event,
)
from readers.card_side.vpcd import VpcdClient

__all__ = ["CardController", "ControlError"]

PersonaInput = str | Path | Mapping[str, Any]
ScenarioInput = Scenario | Mapping[str, Any] | str | Path

SWITCH_STEPS = (
    "checking the persona",
    "personalizing (keys + certificates)",
    "removing the old card",
    "inserting the new card",
    "done",
)
"""The ``progress`` events of a persona switch, in order (``step`` counts from 1)."""

MIN_OUT = 1.0
"""Seconds a card stays out of a vpcd reader before the console puts it back in."""


@dataclass(eq=False)
class _Slot:
    """One reader: its card proxy, its client (behind vpcd) and its action lock."""

    index: int
    name: str
    card: ControlledCard
    client: VpcdClient | None
    removed_at: float | None = None
    """``time.monotonic()`` when the console last took the card out."""
    action_lock: threading.Lock = field(default_factory=threading.Lock)


class CardController:
    """Snapshots, actions and events over the cards in their readers (see the module doc)."""

    def __init__(
        self,
        cards: Sequence[tuple[str, Card | ControlledCard]],
        *,
        pki: PkiStore | None = None,
    ) -> None:
        """In process: ``cards`` are ``(reader name, card)``; a card is wrapped in a
        :class:`ControlledCard` unless it is one. The in-process caller drives each reader's
        proxy (``controller.card(reader).transmit(...)``), which reports to this controller.

        ``pki`` is the PKI whose records give the certificates' states, which revoke / hold /
        release change, and which personalizes persona switches (``None``: no certificate
        states, and switches use the shared test PKI of :mod:`harness.default_pki`).
        """
        slots = []
        for index, (name, card) in enumerate(cards):
            controlled = card if isinstance(card, ControlledCard) else ControlledCard(card)
            controlled.reader = name
            controlled.on_exchange = self.observe
            slots.append(_Slot(index, name, controlled, None))
        self._setup(slots, pki)

    @classmethod
    def for_server(
        cls,
        server: CardServer,
        *,
        pki: PkiStore | None = None,
        min_out: float = MIN_OUT,
    ) -> CardController:
        """Over a started ``server`` whose every card is a :class:`ControlledCard` (make them
        with :meth:`controlled`). The controller adds itself to the server's ``on_exchange``
        (after the observer already there).

        ``min_out``: seconds a card stays out of its reader before the console puts it back
        (an insertion waits for the rest). pcscd looks for a vpcd card about every 400 ms; a
        card out for less may never have left as far as pcscd knows, which then talks to the
        new connection as if nothing happened and fails (``SCARD_E_NOT_TRANSACTED``)."""
        slots = []
        for index, served in enumerate(server.served):
            if not isinstance(served.card, ControlledCard) or served.client is None:
                raise TypeError(
                    f"card {served.label!r} is not a ControlledCard in a running reader: wrap the "
                    "server's cards with CardController.controlled() before starting it"
                )
            served.card.reader = served.client.reader
            slots.append(_Slot(index, served.client.reader, served.card, served.client))
        controller = cls.__new__(cls)
        controller._setup(slots, pki, threaded=True)
        controller.min_out = min_out
        controller.server = server
        previous = server.on_exchange
        server.on_exchange = (
            controller.observe if previous is None else _chain(previous, controller.observe)
        )
        return controller

    @classmethod
    def serve(
        cls,
        cards: Sequence[tuple[str, Card]],
        *,
        pki: PkiStore | None = None,
        min_out: float = MIN_OUT,
        **server_options: Any,
    ) -> CardController:
        """Wrap ``cards`` (``(label, card)``), serve them with ``CardServer(**server_options)``
        and control them (``min_out`` as for :meth:`for_server`); :meth:`close` stops the
        server."""
        server = CardServer(cls.controlled(cards), **server_options)
        server.start()
        try:
            controller = cls.for_server(server, pki=pki, min_out=min_out)
        except BaseException:
            server.stop()
            raise
        controller._owns_server = True
        return controller

    @staticmethod
    def controlled(cards: Sequence[tuple[str, Card]]) -> list[tuple[str, ServableCard]]:
        """``(label, card)`` pairs with each card in a :class:`ControlledCard`, for a server."""
        return [(label, ControlledCard(card)) for label, card in cards]

    def _setup(self, slots: list[_Slot], pki: PkiStore | None, *, threaded: bool = False) -> None:
        names = [slot.name for slot in slots]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"reader names must be unique: {', '.join(duplicates)}")
        self.pki = pki
        self._records = CertificateRecords(pki) if pki is not None else None
        self.min_out = 0.0
        """Seconds a card stays out before it goes back in (see :meth:`for_server`)."""
        self.server: CardServer | None = None
        self._owns_server = False
        self._slots = slots
        self._by_name = {slot.name: slot for slot in slots}
        self._feed: Feed = LocalFeed(names, threaded=threaded)
        self._local: LocalFeed | None = self._feed
        self._identities: weakref.WeakKeyDictionary[Card, CardIdentity] = (
            weakref.WeakKeyDictionary()
        )
        self._identities_lock = threading.Lock()

    def close(self) -> None:
        """Publish what is pending, close every subscription; stop the server if :meth:`serve`
        started it."""
        if self._owns_server and self.server is not None:
            self.server.stop()
        self._feed.close()

    def __enter__(self) -> CardController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    @property
    def readers(self) -> list[str]:
        """The reader names, in order."""
        return [slot.name for slot in self._slots]

    def card(self, reader: ReaderRef) -> ControlledCard:
        """The proxy in ``reader`` (in process: what stands in for the reader's transmit)."""
        return self._slot(reader).card

    def snapshot(self) -> list[ReaderState]:
        """The state of every reader, in order. It waits for no action (only for the APDU a
        card is answering): a reader in the middle of one shows where it is, e.g. out during a
        persona switch."""
        moment = default_clock().now()
        return [self._state(slot, moment) for slot in self._slots]

    def state(self, reader: ReaderRef) -> ReaderState:
        """The state of one reader."""
        return self._state(self._slot(reader), default_clock().now())

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """A new subscription to every event from now on: ``exchange`` (the decoded, masked
        record of an APDU, ``duration_ms`` its latency), ``card`` (insert, remove, power on /
        off, reset), ``state`` (after an action: the reader's new state) and ``progress``
        (the steps of a persona switch, :data:`SWITCH_STEPS`). When it holds
        ``maxsize`` events it drops the oldest (counted in ``dropped``): a slow subscriber
        never holds up a card."""
        return self._events().subscribe(maxsize)

    def observe(self, record: TraceRecord) -> None:
        """An ``on_exchange`` observer: decode ``record`` for its reader, keep it for the
        reader's trace (:meth:`trace`) and publish it, masked (the command as traces mask it,
        the response as its length and status word only, :mod:`~harness.console.masking`).
        Runs on the card's serving thread, so it only hands the record to the console's
        :class:`~harness.console.pipeline.EventPipeline` (never raises, never waits)."""
        self._feed.record(record)

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until every event so far is published and kept (behind a server, they are
        handled on the console's own thread); False if that took more than ``timeout``."""
        return self._feed.settle(timeout)

    @property
    def has_pki(self) -> bool:
        """Whether a PKI is attached (certificate states, revoke / hold / release)."""
        return self.pki is not None

    def forward(self, feed: Feed) -> None:
        """From now on hand every record and event to ``feed`` (the link to a console in
        another process, :mod:`harness.console.link`) instead of handling them here; what
        was handed over before is handled first. :meth:`subscribe` and :meth:`trace` then
        belong to the other process."""
        old, self._feed, self._local = self._feed, feed, None
        old.close()

    def _events(self) -> LocalFeed:
        if self._local is None:
            raise RuntimeError("this controller forwards its events to a console process")
        return self._local

    def trace(self, reader: ReaderRef) -> str:
        """The reader's last exchanges and card events (up to 10,000) as a trace file of
        format 2 (JSON Lines that :func:`harness.traces.read_trace` reads), masked: no secret
        command data, and of each response only its status word and ``response_length``."""
        return self._events().trace(self._slot(reader).name)

    # -- actions: the reader -------------------------------------------------------------------

    def insert(self, reader: ReaderRef) -> ReaderState:
        """Put the card into the reader (nothing happens if it is in). Behind vpcd, returns once
        vpcd took the connection; the host sees the card about one presence poll later."""
        slot = self._slot(reader)
        with slot.action_lock:
            if slot.card.inserted:
                return self._state(slot)
            self._insert(slot)
            return self._changed(slot, "insert")

    def remove(self, reader: ReaderRef) -> ReaderState:
        """Take the card out of the reader (nothing happens if it is out); it loses power."""
        slot = self._slot(reader)
        with slot.action_lock:
            if not slot.card.inserted:
                return self._state(slot)
            self._remove(slot)
            return self._changed(slot, "remove")

    def glitch(self, reader: ReaderRef) -> ReaderState:
        """A power glitch: the card loses power for an instant and its volatile state (selected
        application, verified credentials, secure messaging) with it. The host is not told;
        its next command finds the card at the issuer security domain."""
        slot = self._slot(reader)
        with slot.action_lock:
            self._require_inserted(slot)
            with slot.card.lock:
                slot.card.card.power_off()
                slot.card.card.power_on()
            self._card_events(slot, "power_off", "power_on")
            return self._changed(slot, "glitch")

    def reset(self, reader: ReaderRef) -> ReaderState:
        """A warm reset of the card: its volatile state starts afresh (the host is not told)."""
        slot = self._slot(reader)
        with slot.action_lock:
            self._require_inserted(slot)
            with slot.card.lock:
                slot.card.card.reset()
            self._card_events(slot, "reset")
            return self._changed(slot, "reset")

    # -- actions: the card ---------------------------------------------------------------------

    def set_tries(self, reader: ReaderRef, credential: CredentialRef, tries: int) -> ReaderState:
        """Set a credential's tries left, durably (through the card's store, as a card OS
        writes a counter): ``0`` blocks it, its maximum refills it. ``credential`` is a
        ``apdu.vocabulary.CREDENTIALS`` name (``jpki_auth``, ``jpki_sign``, ``text_pin``...) or
        ``(application, fid)`` (what :meth:`credential` finds)."""
        slot = self._slot(reader)
        application, fid = _credential_place(credential)
        name = credential if isinstance(credential, str) else f"{application} {fid:04X}"
        with slot.action_lock:
            with slot.card.lock:
                card = slot.card.card
                limit = _max_tries(card, name, application, fid)
                _check_tries(tries, limit)
                _write_counter(card, application, fid, tries)
            return self._changed(slot, "set_tries", {"credential": name, "tries": tries})

    def credential(self, reader: ReaderRef, application: str, credential: str) -> CredentialState:
        """The credential of the card in ``reader`` in ``application`` (``jpki``, ``text``,
        ``kenmen``, ``common``, ``juki``) called ``credential``: its FID in hex (``0018``) or
        its ``CREDENTIALS`` name (``jpki_auth``). Unknown ones raise a :class:`ControlError`
        of kind ``not_found`` (field ``application`` or ``credential``)."""
        state = self.state(reader)
        applications = {c.application for c in state.credentials}
        if application not in applications:
            known = ", ".join(sorted(applications))
            raise ControlError(
                "application",
                f"no application {application[:40]!r} with credentials (known: {known})",
                "not_found",
            )
        fid = _fid(credential)
        for each in state.credentials:
            if each.application == application and (
                each.name == credential or (fid is not None and each.fid == fid)
            ):
                return each
        raise ControlError(
            "credential",
            f"{application} has no credential {credential[:40]!r} (a FID in hex such as 0018, or "
            "a name such as jpki_auth)",
            "not_found",
        )

    def switch_persona(self, reader: ReaderRef, persona: PersonaInput) -> ReaderState:
        """Replace the card in ``reader`` with a new card of ``persona`` (a persona file or its
        tables, checked as ``mynacard persona-check`` checks them), personalized by the attached
        PKI (else the shared test PKI). The swap is remove, replace, insert, as one step; a card
        that was out stays out. The new card has full (or the persona's preset) counters and no
        faults; the old card is closed.

        If the reader fails to take the new card back (vpcd gone), the new card stays in the
        slot, removed, and the :class:`ControlError` (field ``reader``) says so.
        """
        slot = self._slot(reader)
        checked = inputs.persona(persona)
        self._progress(slot, 1)
        self._progress(slot, 2)
        try:
            content = (
                personalize(checked, store=self.pki)
                if self.pki is not None
                else personalize_shared(checked)
            )
        except (MynacardError, ValueError, RuntimeError) as exc:
            raise ControlError("persona", f"cannot personalize {checked.label!r}: {exc}") from None
        new = Card(content)
        with slot.action_lock:
            was_in = slot.card.inserted
            if was_in:
                self._progress(slot, 3)
                self._remove(slot)
            old = slot.card.swap(new)
            old.close()
            self._feed.reset_decoder(slot.name)
            if was_in:
                self._progress(slot, 4)
                self._insert(slot)
            self._progress(slot, 5)
            return self._changed(slot, "switch_persona", {"persona": checked.label})

    def apply_faults(self, reader: ReaderRef, scenario: ScenarioInput) -> ReaderState:
        """Wrap the card in ``scenario``'s faults, replacing any before: a
        :class:`~harness.faults.Scenario`, its tables, a TOML file (a :class:`Path`), scenario
        TOML text, or the name of a kiosk scenario of the conformance catalogue whose faults
        are on the card (not one that changes the persona). The scenario's counter presets
        are written to the card (durably, as :meth:`set_tries`) and stay after
        :meth:`clear_faults`; its ATR is the card's from the next time a reader asks."""
        slot = self._slot(reader)
        checked = inputs.scenario(scenario)
        with slot.action_lock:
            with slot.card.lock:
                card = slot.card.card
                counters = []
                for name, tries in checked.counters.items():  # all checked, then all written
                    application, fid = _credential_place(name, "scenario")
                    limit = _max_tries(card, name, application, fid, "scenario")
                    _check_tries(tries, limit, "scenario")
                    counters.append((application, fid, tries))
                for application, fid, tries in counters:
                    _write_counter(card, application, fid, tries)
                slot.card.set_faults(checked)
            return self._changed(slot, "apply_faults", {"scenario": checked.name})

    def clear_faults(self, reader: ReaderRef) -> ReaderState:
        """Unwrap the card from its faults (counters stay as they are)."""
        slot = self._slot(reader)
        with slot.action_lock:
            slot.card.set_faults(None)
            return self._changed(slot, "clear_faults")

    # -- actions: the certificates ------------------------------------------------------------

    def revoke(
        self,
        reader: ReaderRef,
        tree: str = "auth",
        reason: str | RevocationReason = "unspecified",
    ) -> ReaderState:
        """Revoke (失効) the card's ``auth``, ``sign`` or ``both`` certificates in the attached
        PKI, from now, for ``reason`` (``keyCompromise``, ``affiliationChanged`` / 記載内容変更,
        ...). Only this card's certificates: other cards of the same persona keep theirs."""
        checked = inputs.reason(reason)
        return self._certificate_event(reader, tree, EventKind.REVOKE, checked)

    def hold(self, reader: ReaderRef, tree: str = "auth") -> ReaderState:
        """Put the card's certificates on hold (一時保留) in the attached PKI, from now."""
        return self._certificate_event(reader, tree, EventKind.HOLD, None)

    def release(self, reader: ReaderRef, tree: str = "auth") -> ReaderState:
        """Release the card's held certificates (一時保留の解除) in the attached PKI, from now."""
        return self._certificate_event(reader, tree, EventKind.RELEASE, None)

    def _certificate_event(
        self,
        reader: ReaderRef,
        tree: str,
        kind: EventKind,
        reason: RevocationReason | None,
    ) -> ReaderState:
        slot = self._slot(reader)
        trees = inputs.trees(tree)
        pki = self.pki
        if pki is None:
            raise ControlError("pki", "no PKI is attached to the console", "conflict")
        with slot.action_lock:
            with slot.card.lock:
                identity = self._identity(slot.card.card)
            moment = default_clock().now()
            event = RevocationEvent(kind, moment, reason)
            changes: list[CertificateRecord] = []
            for each in trees:  # every certificate checked before any is changed
                record = _card_record(pki, identity, each)
                state = record.status(moment).state
                if state in (CertificateState.EXPIRED, CertificateState.NOT_YET_VALID):
                    raise ControlError("tree", f"the {each.value} certificate is {state.value}")
                try:
                    check_new_event(record.events, event)
                except RevocationError as exc:
                    raise ControlError("tree", f"{each.value} certificate: {exc}") from None
                changes.append(record)
            try:
                for record in changes:
                    pki.change(record, event)
            finally:
                if self._records is not None:
                    self._records.forget()
            detail: dict[str, Any] = {"tree": tree}
            if reason is not None:
                detail["reason"] = reason.value
            return self._changed(slot, kind.value, detail)

    # -- internals -----------------------------------------------------------------------------

    def _slot(self, reader: object) -> _Slot:
        if isinstance(reader, int) and not isinstance(reader, bool):
            if 0 <= reader < len(self._slots):
                return self._slots[reader]
            raise ControlError(
                "reader", f"no reader {reader} (0-{len(self._slots) - 1})", "not_found"
            )
        if isinstance(reader, str):
            slot = self._by_name.get(reader)
            if slot is not None:
                return slot
            known = ", ".join(repr(name) for name in self._by_name)
            raise ControlError(
                "reader", f"no reader {reader[:80]!r} (readers: {known})", "not_found"
            )
        raise ControlError("reader", f"expected a reader name or index, got {reader!r}")

    def _identity(self, card: Card) -> CardIdentity:
        with self._identities_lock:
            identity = self._identities.get(card)
            if identity is None:
                identity = self._identities[card] = CardIdentity.of(card)
            return identity

    def _state(self, slot: _Slot, moment: dt.datetime | None = None) -> ReaderState:
        when = moment if moment is not None else default_clock().now()
        return reader_state(
            slot.index,
            slot.name,
            slot.card,
            identify=self._identity,
            pki=self._records,
            moment=when,
        )

    def _changed(
        self, slot: _Slot, action: str, detail: Mapping[str, Any] | None = None
    ) -> ReaderState:
        state = self._state(slot)
        body = {
            "type": "state",
            "t": time.time(),
            "reader": slot.name,
            "action": action,
            "detail": dict(detail or {}),
            "state": state,  # the feed makes its JSON, off this thread
        }
        self._feed.publish("state", slot.name, body)
        return state

    def _progress(self, slot: _Slot, step: int) -> None:
        """A ``progress`` event of a persona switch: step ``step`` of :data:`SWITCH_STEPS`."""
        body = {
            "type": "progress",
            "t": time.time(),
            "reader": slot.name,
            "action": "switch_persona",
            "step": step,
            "steps": len(SWITCH_STEPS),
            "label": SWITCH_STEPS[step - 1],
        }
        self._feed.publish("progress", slot.name, body)

    def _card_events(self, slot: _Slot, *events: str) -> None:
        """Card events the console caused, which no reader reports."""
        for event in events:
            self.observe(TraceRecord.card_event(event, reader=slot.name))

    def _require_inserted(self, slot: _Slot) -> None:
        if not slot.card.inserted:
            raise ControlError("reader", f"no card in {slot.name!r}: insert it first", "conflict")

    def _insert(self, slot: _Slot) -> None:
        client = slot.client
        if client is None:
            slot.card.set_inserted(True)
            with slot.card.lock:
                slot.card.card.power_on()
            self._card_events(slot, "insert", "power_on")
            return
        if slot.removed_at is not None:
            time.sleep(max(0.0, slot.removed_at + self.min_out - time.monotonic()))
        try:
            client.insert()
        except (RuntimeError, TimeoutError, OSError) as exc:
            raise ControlError(
                "reader", f"{slot.name!r} did not take the card: {exc}", "conflict"
            ) from None

    def _remove(self, slot: _Slot) -> None:
        client = slot.client
        if client is not None:
            try:
                client.remove()
            except TimeoutError as exc:
                raise ControlError("reader", f"{slot.name!r}: {exc}", "conflict") from None
        else:
            slot.card.set_inserted(False)
            self._card_events(slot, "remove")
        slot.removed_at = time.monotonic()
        with slot.card.lock:  # out of the reader, out of power
            slot.card.card.power_off()


def _chain(first: Observer, second: Observer) -> Observer:
    def both(record: TraceRecord) -> None:
        first(record)
        second(record)

    return both


def _credential_place(name: object, where: str = "credential") -> tuple[str, int]:
    if (
        isinstance(name, tuple)
        and len(name) == 2
        and isinstance(name[0], str)
        and isinstance(name[1], int)
    ):
        return name[0], name[1]
    if not isinstance(name, str) or name not in CREDENTIALS:
        known = ", ".join(CREDENTIALS)
        raise ControlError(where, f"unknown credential {name!r} (known: {known})")
    place = CREDENTIALS[name]
    return place.application, place.fid


def _fid(text: str) -> int | None:
    """``0018`` (1-4 hex digits) as a FID, else ``None``."""
    if 1 <= len(text) <= 4 and all(c in "0123456789abcdefABCDEF" for c in text):
        return int(text, 16)
    return None


def _max_tries(card: Card, name: str, application: str, fid: int, where: str = "credential") -> int:
    try:
        return card.credential(application, fid).max_tries
    except KeyError:
        raise ControlError(where, f"this card has no {name}") from None


def _check_tries(tries: object, limit: int, where: str = "tries") -> None:
    if isinstance(tries, bool) or not isinstance(tries, int) or not 0 <= tries <= limit:
        shown = repr(tries)[:40]
        raise ControlError(where, f"must be an integer 0-{limit} (0 blocks), got {shown}")


def _write_counter(card: Card, application: str, fid: int, tries: int) -> None:
    try:
        card.set_tries(application, fid, tries)
    except CounterError as exc:
        raise ControlError("tries", str(exc)) from None
    except StorageError as exc:
        raise ControlError("card", f"the card could not store the counter: {exc}") from None


def _card_record(pki: PkiStore, identity: CardIdentity, tree: Tree) -> CertificateRecord:
    serial = dict(identity.serials).get(tree)
    if serial is None:
        raise ControlError("tree", f"this card has no {tree.value} certificate")
    records = pki.certificates(persona=identity.persona, tree=tree, serial=int(serial, 16))
    if not records:
        raise ControlError(
            "pki", f"the attached PKI has no record of this card's {tree.value} certificate"
        )
    return records[-1]
