"""How a card meets the world, in two halves that never import each other.

* :mod:`readers.card_side`: how an emulated card gets into a reader (vpcd client, vicc adapter,
  the virtual-card protocol, the pcscd manager, network namespaces). Threads and sockets live
  here; the chip (``card_emulator``) stays pure, and nothing here imports it.
* :mod:`readers.host_side`: how a program talks to a card (transports, the protocol layer, one
  session per application, :class:`~readers.host_side.client.MynaClient`).
* :mod:`readers.scard`: the one pyscard helper both halves use.
"""

from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.pcscd_process import PcscdStartError
from readers.card_side.reader_conf import PcscdNotInstalledError, VpcdReader
from readers.card_side.running_pcscd import (
    ReaderSet,
    RunningPcscd,
    find_running_vpcd,
    virtual_readers,
)
from readers.card_side.virtual_card import ECHO_ATR, EchoCard, VirtualCard
from readers.card_side.vpcd import Removal, VpcdClient, VpcdConnectError
from readers.scard import PcscError, list_readers, wait_for_card, wait_for_readers

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
