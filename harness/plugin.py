"""pytest plugin (entry point ``pytest11: mynacard = "harness.plugin"``).

Fixtures:

* ``myna_card`` — a fresh in-process demo card (``Card.from_persona`` of the demo persona).
* ``myna_profile`` — the card generation of ``myna_card``, ``myna_reader`` and the personas
  ``myna_persona`` writes: ``--myna-profile NAME|FILE`` (else ``$MYNACARD_PROFILE``; default
  ``current``), the demo persona of that generation (the packaged next-generation persona for
  ``next-generation``). Parametrize it to run a test on both generations:
  ``@pytest.mark.parametrize("myna_profile", ["current", "next-generation"])``.
* ``myna_persona(**overrides)`` — writes a persona TOML in ``tmp_path`` and returns its path;
  every persona table can be overridden: ``myna_persona(holder={"name": "試験　太郎"},
  counters={"jpki_auth": 1}, card={"atr": "jpki2"}, certificates={"auth_not_after": ...})``.
* ``myna_reader`` — the demo card in a virtual PC/SC reader (vpcd) of a private pcscd that is
  started once and shared; yields :class:`ServedReader` (``name``, ``card``, ``env``,
  ``client``). ``myna_serve(card)`` puts any card object (e.g. a ``FaultyCard``) in a reader.
* ``myna_pcscd`` — the shared private pcscd itself.
* ``myna_pki`` — the test PKI the cards are issued by, served on 127.0.0.1 for the session
  (``url``, ``ocsp_url()``, ``crl_url()``, ``ocsp(certificate, issuer)``).
* ``myna_console`` — a :class:`harness.control.ConsoleClient` to a live console: the one named
  by ``--myna-console URL`` or ``$MYNACARD_CONSOLE`` (a bench served by ``mynacard serve
  --console``, maybe on another desk's machine), else a console the plugin serves itself over a
  fresh demo card in a reader of its private pcscd. ``myna_console_reader`` says which PC/SC
  reader that card is in (``name``, ``index``, ``env``), so one kiosk test runs unchanged
  against either.

Marker ``pcsc``: the test needs PC/SC; it is skipped, with the reason, only when pcscd or the
vpcd driver is not installed. Tests using ``myna_reader`` / ``myna_serve`` get the marker, and
so do tests using ``myna_console`` when no console URL is given (the plugin serves one).

Options: ``--myna-console URL`` (else ``$MYNACARD_CONSOLE``): the console ``myna_console``
drives instead of serving one; ``--myna-console-reader READER`` (else
``$MYNACARD_CONSOLE_READER``; default ``0``): the index or name of its reader the tests use.
``--myna-profile NAME|FILE`` (else ``$MYNACARD_PROFILE``): the card generation of the demo
cards (``myna_profile``); an unknown one is a usage error naming the option.

The shared pcscd is started on first use and stopped at the end of the session, or earlier
when the next test neither uses it nor lives in the same directory — so suites that start their
own private pcscd elsewhere (libpcsclite allows one socket path per process) coexist with it.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from apdu import TraceRecord
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from card_emulator.profiles import DEFAULT_PROFILE, ProfileError
from harness.card_server import CardServer, Endpoint, ServableCard
from harness.control import ENV as CONSOLE_ENV
from harness.control import ConsoleClient
from harness.default_pki import pki_store
from harness.demo_persona import generation_persona_path
from harness.personas import (
    card_from_persona,
    demo_persona_path,
    profile_overrides,
    profile_value,
    write_persona,
)
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiStore
from jpki.service import PkiServer
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import (
    PcscdNotInstalledError,
    VpcdReader,
    find_pcscd,
    find_vpcd_driver,
)
from readers.card_side.vpcd import VpcdClient

READERS = 4
_PCSC_FIXTURES = frozenset({"myna_reader", "myna_serve", "myna_pcscd"})
_CONSOLE_FIXTURES = frozenset({"myna_console", "myna_console_reader"})
CONSOLE_READER_ENV = "MYNACARD_CONSOLE_READER"
PROFILE_ENV = "MYNACARD_PROFILE"

# -- the shared pcscd -----------------------------------------------------------------------


class _SharedPcscd:
    """Started on first use; stopped at session end or when no longer needed."""

    def __init__(self) -> None:
        self.pcscd: PrivatePcscd | None = None
        self.directory: Path | None = None

    def get(self, directory: Path) -> PrivatePcscd:
        if self.pcscd is None:
            self.pcscd = PrivatePcscd(READERS, name="mynacard pytest").start()
        self.directory = directory
        return self.pcscd

    def stop(self) -> None:
        if self.pcscd is not None:
            self.pcscd.stop()
            self.pcscd = None


_shared = _SharedPcscd()


def pcsc_missing() -> str | None:
    """Why PC/SC tests cannot run here (pcscd or vpcd not installed), or None."""
    try:
        find_pcscd()
        find_vpcd_driver()
    except PcscdNotInstalledError as exc:
        return str(exc)
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mynacard")
    group.addoption(
        "--myna-console",
        metavar="URL",
        default=None,
        help="the live console myna_console drives (the URL `mynacard serve --console` printed; "
        f"default ${CONSOLE_ENV}; none: the plugin serves a demo card with a console itself)",
    )
    group.addoption(
        "--myna-console-reader",
        metavar="READER",
        default=None,
        help=f"index or name of the console's reader the tests use (default ${CONSOLE_READER_ENV}"
        ", else 0)",
    )
    group.addoption(
        "--myna-profile",
        metavar="NAME|FILE",
        default=None,
        help="card generation of the demo cards (myna_card, myna_reader, myna_persona): current, "
        f"next-generation or a profile file (default ${PROFILE_ENV}, else current)",
    )


def configured_profile(config: pytest.Config) -> str:
    """The card generation given (``--myna-profile``, else ``$MYNACARD_PROFILE``, else
    ``current``), checked: a built-in name, or a profile file's absolute path."""
    given = config.getoption("--myna-profile", None) or os.environ.get(PROFILE_ENV, "")
    text = str(given).strip() or DEFAULT_PROFILE
    flag = "--myna-profile" if config.getoption("--myna-profile", None) else f"${PROFILE_ENV}"
    try:
        return profile_value(text, flag)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None


def console_url(config: pytest.Config) -> str | None:
    """The console URL given (``--myna-console``, else ``$MYNACARD_CONSOLE``), or None."""
    given = config.getoption("--myna-console", None) or os.environ.get(CONSOLE_ENV, "")
    return str(given).strip() or None


def pytest_configure(config: pytest.Config) -> None:
    configured_profile(config)  # a bad --myna-profile stops the run before any test
    config.addinivalue_line(
        "markers", "pcsc: needs pcscd + vpcd (skipped, with the reason, when not installed)"
    )


def _uses_pcscd(item: pytest.Item) -> bool:
    """Whether ``item`` uses the shared pcscd (a served console uses it too)."""
    names = set(getattr(item, "fixturenames", ()))
    if _PCSC_FIXTURES & names:
        return True
    return bool(_CONSOLE_FIXTURES & names) and console_url(item.config) is None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_pcscd(item):
            item.add_marker(pytest.mark.pcsc)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("pcsc") is not None:
        reason = pcsc_missing()
        if reason is not None:
            pytest.skip(f"PC/SC test skipped: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        yield  # the fixtures are finalized first (cards removed)
    finally:
        if _shared.pcscd is not None:
            uses = nextitem is not None and _uses_pcscd(nextitem)
            if nextitem is None or (not uses and nextitem.path.parent != _shared.directory):
                _shared.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    _shared.stop()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def myna_profile(request: pytest.FixtureRequest) -> str:
    """The card generation of the demo cards: ``--myna-profile`` / ``$MYNACARD_PROFILE``,
    default ``current`` (parametrize ``myna_profile`` to choose per test)."""
    return configured_profile(request.config)


def profile_card(profile: str) -> Card:
    """A fresh in-process card of generation ``profile``: its demo persona (the next-generation
    persona, or the demo persona with that profile)."""
    value = profile_value(profile)
    path = generation_persona_path(value)
    return card_from_persona(path, **profile_overrides(path, value))


@pytest.fixture
def myna_card(myna_profile: str) -> Iterator[Card]:
    """A fresh in-process demo card (of ``myna_profile``'s generation)."""
    card = profile_card(myna_profile)
    yield card
    card.close()


PersonaFactory = Callable[..., Path]


@pytest.fixture
def myna_persona(tmp_path: Path, myna_profile: str) -> PersonaFactory:
    """``myna_persona(base=None, **tables)`` → path of a persona TOML written in tmp_path
    (``base`` default: the demo persona of ``myna_profile``'s generation)."""
    count = 0

    def make(base: str | Path | None = None, **overrides: Any) -> Path:
        nonlocal count
        count += 1
        if base is None:
            base = generation_persona_path(profile_value(myna_profile))
            overrides = {**profile_overrides(base, myna_profile), **overrides}
        return write_persona(tmp_path / f"persona-{count}.toml", base, **overrides)

    return make


@dataclass
class ServedReader:
    """A card in a virtual reader: ``name`` for PC/SC clients, ``env`` for subprocesses."""

    name: str
    card: Any
    client: VpcdClient
    env: dict[str, str]
    server: CardServer
    exchanges: list[tuple[bytes, bytes]] = field(default_factory=list)

    def remove(self) -> None:
        """Pull the card out (wait until pcscd reports the reader empty)."""
        self.client.remove()

    def insert(self) -> None:
        self.client.insert()


@pytest.fixture
def myna_pcscd(request: pytest.FixtureRequest) -> PrivatePcscd:
    """The shared private pcscd (``.readers``, ``.env``, ``.socket_path``)."""
    return _shared.get(request.path.parent)


ServeFactory = Callable[..., ServedReader]


@pytest.fixture
def myna_serve(myna_pcscd: PrivatePcscd) -> Iterator[ServeFactory]:
    """``myna_serve(card)`` puts any card object in the next free reader, until the test ends."""
    served: list[ServedReader] = []

    def serve(card: ServableCard) -> ServedReader:
        if len(served) >= len(myna_pcscd.readers):
            raise RuntimeError(f"only {len(myna_pcscd.readers)} virtual readers")
        reader: VpcdReader = myna_pcscd.readers[len(served)]
        record = ServedReader(reader.name, card, cast(VpcdClient, None), {}, cast(Any, None))

        def keep(exchange: TraceRecord) -> None:
            if not exchange.event:
                record.exchanges.append((exchange.command, exchange.response))

        server = CardServer(
            [(reader.name, card)],
            endpoints=[Endpoint(reader.host, reader.port, reader.name, reader.netns)],
            on_exchange=keep,
        )
        server.start()
        client = server.served[0].client
        assert client is not None
        record.client, record.server = client, server
        record.env = {**os.environ, **myna_pcscd.env}
        served.append(record)
        myna_pcscd.wait_for_card(reader.name, timeout=10.0)
        return record

    yield serve
    for record in served:
        record.server.stop()
        myna_pcscd.wait_for_card(record.name, present=False, timeout=10.0)


@dataclass
class RunningPki:
    """The test PKI the fixtures' cards are issued by, served over HTTP on 127.0.0.1.

    Certificates name the *declared* base URL in their AIA / CRL DP; ask this server through
    :attr:`url`, :meth:`ocsp_url`, :meth:`crl_url` or :meth:`ocsp`.
    """

    store: PkiStore
    server: PkiServer

    @property
    def url(self) -> str:
        return self.server.url

    def card(self, persona: str | Path) -> Card:
        """A fresh in-memory card from the persona file, its certificates issued and recorded
        by this PKI (``Card.from_persona`` alone uses a throwaway PKI this one does not know)."""
        return Card.from_persona(persona, pki=self.store)

    def ocsp_url(self, tree: str = "auth", style: str = "test") -> str:
        return self.url + self.store.ocsp_path(Tree(tree), NameStyle(style))

    def crl_url(self, generation: int, tree: str = "auth", style: str = "test") -> str:
        return f"{self.url}/crl/{style}-{tree}-g{generation}.crl"

    def ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, tree: str = "auth"
    ) -> ocsp.OCSPResponse:
        """Ask the responder about ``certificate`` (an RFC 6960 POST)."""
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - RFC 6960 CertID
            .build()
            .public_bytes(Encoding.DER)
        )
        post = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 server
            self.ocsp_url(tree), request, {"Content-Type": "application/ocsp-request"}
        )
        with urllib.request.urlopen(post, timeout=10) as reply:  # noqa: S310
            return ocsp.load_der_ocsp_response(reply.read())


@pytest.fixture(scope="session")
def myna_pki() -> Iterator[RunningPki]:
    """The test PKI of the fixtures' cards (``$MYNACARD_PKI``), served for the session:
    certificate states set in a persona (revoked, on hold) show in its CRLs and OCSP."""
    with PkiServer(pki_store()) as server:
        yield RunningPki(server.store, server)


@pytest.fixture
def myna_reader(myna_serve: ServeFactory, myna_profile: str) -> ServedReader:
    """A fresh demo card (of ``myna_profile``'s generation) in a virtual PC/SC reader."""
    return myna_serve(profile_card(myna_profile))


# -- the live console --------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleReader:
    """The reader of the console a test uses: ``index`` and ``name`` for the console's methods
    (either works), ``name`` also for PC/SC clients (pyscard's ``readers()``), ``env`` the
    environment a PC/SC client subprocess needs (with the private pcscd's socket when the plugin
    serves the console), ``served`` whether the plugin serves it (else a bench at a URL)."""

    index: int
    name: str
    env: dict[str, str]
    served: bool


_CONSOLE_READER = pytest.StashKey[ConsoleReader]()
_console_pki: list[PkiStore] = []


def _console_card() -> Card:
    """A demo card with certificates of its own (so revoking them touches no other test), issued
    by a PKI kept in memory for the session."""
    if not _console_pki:
        _console_pki.append(PkiStore.in_memory())
    return Card(personalize(persona_module.load(demo_persona_path()), store=_console_pki[0]))


def _reader_ref(config: pytest.Config) -> int | str:
    given = config.getoption("--myna-console-reader", None) or os.environ.get(
        CONSOLE_READER_ENV, ""
    )
    text = str(given).strip() or "0"
    return int(text) if text.isdigit() else text


@pytest.fixture
def myna_console(request: pytest.FixtureRequest) -> Iterator[ConsoleClient]:
    """A :class:`~harness.control.ConsoleClient` to a live console: the one at
    ``--myna-console URL`` / ``$MYNACARD_CONSOLE`` if given (nothing is reset between tests:
    it is someone's bench), else one the plugin serves for this test alone (a fresh demo card,
    its certificates in a session PKI, in a reader of the private pcscd; personas: the demo).
    The reader to use is ``myna_console_reader``."""
    url = console_url(request.config)
    if url is not None:
        with ConsoleClient(url) as client:
            state = client.card(_reader_ref(request.config))
            request.node.stash[_CONSOLE_READER] = ConsoleReader(
                int(state["index"]), str(state["reader"]), dict(os.environ), served=False
            )
            yield client
        return
    from harness.console import CardController  # noqa: PLC0415 - only when serving one
    from harness.console.web.process import ConsoleProcess  # noqa: PLC0415

    pcscd: PrivatePcscd = request.getfixturevalue("myna_pcscd")
    reader = pcscd.readers[-1]  # myna_serve fills them from the first
    controller = CardController.serve(
        [(reader.name, _console_card())],
        pki=_console_pki[0] if _console_pki else None,
        endpoints=[Endpoint(reader.host, reader.port, reader.name, reader.netns)],
    )
    try:
        pcscd.wait_for_card(reader.name, timeout=10.0)
        with ConsoleProcess(controller, personas=[demo_persona_path()]) as console:
            request.node.stash[_CONSOLE_READER] = ConsoleReader(
                0, reader.name, {**os.environ, **pcscd.env}, served=True
            )
            with ConsoleClient(console.url) as client:
                yield client
    finally:
        controller.close()
        pcscd.wait_for_card(reader.name, present=False, timeout=10.0)


@pytest.fixture
def myna_console_reader(
    myna_console: ConsoleClient, request: pytest.FixtureRequest
) -> ConsoleReader:
    """The reader of ``myna_console`` the test uses (``--myna-console-reader`` /
    ``$MYNACARD_CONSOLE_READER``, default the first): ``index`` and ``name`` for the console's
    methods, ``name`` for pyscard, ``env`` for a PC/SC client subprocess."""
    reader: ConsoleReader = request.node.stash[_CONSOLE_READER]
    return reader
