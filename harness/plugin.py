"""pytest plugin (entry point ``pytest11: mynacard = "harness.plugin"``).

Fixtures:

* ``myna_card`` — a fresh in-process demo card (``Card.from_persona`` of the demo persona).
* ``myna_persona(**overrides)`` — writes a persona TOML in ``tmp_path`` and returns its path;
  every persona table can be overridden: ``myna_persona(holder={"name": "試験　太郎"},
  counters={"jpki_auth": 1}, card={"atr": "jpki2"}, certificates={"auth_not_after": ...})``.
* ``myna_reader`` — the demo card in a virtual PC/SC reader (vpcd) of a private pcscd that is
  started once and shared; yields :class:`ServedReader` (``name``, ``card``, ``env``,
  ``client``). ``myna_serve(card)`` puts any card object (e.g. a ``FaultyCard``) in a reader.
* ``myna_pcscd`` — the shared private pcscd itself.
* ``myna_pki`` — the test PKI the cards are issued by, served on 127.0.0.1 for the session
  (``url``, ``ocsp_url()``, ``crl_url()``, ``ocsp(certificate, issuer)``).

Marker ``pcsc``: the test needs PC/SC; it is skipped, with the reason, only when pcscd or the
vpcd driver is not installed. Tests using ``myna_reader`` / ``myna_serve`` get the marker.

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
from harness.card_server import CardServer, Endpoint, ServableCard
from harness.default_pki import pki_store
from harness.personas import (
    card_from_persona,
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pcsc: needs pcscd + vpcd (skipped, with the reason, when not installed)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _PCSC_FIXTURES & set(getattr(item, "fixturenames", ())):
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
            uses = nextitem is not None and bool(
                _PCSC_FIXTURES & set(getattr(nextitem, "fixturenames", ()))
            )
            if nextitem is None or (not uses and nextitem.path.parent != _shared.directory):
                _shared.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    _shared.stop()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def myna_card() -> Iterator[Card]:
    """A fresh in-process demo card."""
    card = card_from_persona()
    yield card
    card.close()


PersonaFactory = Callable[..., Path]


@pytest.fixture
def myna_persona(tmp_path: Path) -> PersonaFactory:
    """``myna_persona(base=None, **tables)`` → path of a persona TOML written in tmp_path."""
    count = 0

    def make(base: str | Path | None = None, **overrides: Any) -> Path:
        nonlocal count
        count += 1
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
def myna_reader(myna_serve: ServeFactory) -> ServedReader:
    """A fresh demo card in a virtual PC/SC reader."""
    return myna_serve(card_from_persona())
