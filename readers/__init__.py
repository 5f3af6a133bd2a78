"""How a card meets the world: vpcd card-side client, private pcscd manager, virtual card API.

Threads and sockets live here; the chip (``card_emulator``) stays pure.
"""

from readers.card_side.pcscd import (
    PcscdNotInstalledError,
    PcscdStartError,
    PcscError,
    PrivatePcscd,
    ReaderSet,
    RunningPcscd,
    VpcdReader,
    find_running_vpcd,
    list_readers,
    virtual_readers,
    wait_for_card,
    wait_for_readers,
)
from readers.card_side.virtual_card import ECHO_ATR, EchoCard, VirtualCard
from readers.card_side.vpcd import Removal, VpcdClient, VpcdConnectError

__all__ = [
    "ECHO_ATR",
    "EchoCard",
    "PcscError",
    "PcscdNotInstalledError",
    "PcscdStartError",
    "PrivatePcscd",
    "ReaderSet",
    "Removal",
    "RunningPcscd",
    "VirtualCard",
    "VpcdClient",
    "VpcdConnectError",
    "VpcdReader",
    "find_running_vpcd",
    "list_readers",
    "virtual_readers",
    "wait_for_card",
    "wait_for_readers",
]
