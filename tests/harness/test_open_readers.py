"""CardServer.open_readers: the readers found before the cards exist (serve's cold start)."""

from __future__ import annotations

import pytest

from harness.card_server import CardServer, ServeError, parse_endpoint
from readers.card_side.virtual_card import EchoCard


class _Card(EchoCard):
    def close(self) -> None:
        pass


def test_open_readers_checks_the_count_before_any_card() -> None:
    server = CardServer([], endpoints=[parse_endpoint("127.0.0.1:1")])
    with pytest.raises(ServeError, match="2 cards but only 1 --vpcd endpoints"):
        server.open_readers(2)
    with pytest.raises(ServeError, match="no card to serve"):
        CardServer([], endpoints=[parse_endpoint("1")]).open_readers(0)


def test_start_refuses_more_cards_than_readers_opened() -> None:
    server = CardServer([], endpoints=[parse_endpoint("127.0.0.1:1")])
    server.open_readers(1)
    with pytest.raises(ServeError, match="readers already open"):
        server.open_readers(1)
    server.cards = [("a", _Card()), ("b", _Card())]
    with pytest.raises(ServeError, match="2 cards for 1 readers opened"):
        server.start()
