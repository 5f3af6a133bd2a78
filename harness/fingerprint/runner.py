"""Runs the probe plan over any transport and reduces every answer to structure.

What is kept per command: the status word, and for some commands the length of the data or the
structure of an FCI (tags and lengths; values only of tags that name no card). Data read from an
EF is used to find its size or to summarise a certificate, then dropped. The run stops at the
first ``6Fxx`` answer, an answer without a status word, or any transport failure (a timeout, a
removed card), and says why; a command outside :func:`~harness.fingerprint.plan.check_allowed`
is never sent.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apdu import CommandApdu, builders, tlv
from apdu.errors import CodecError, MynacardError
from apdu.vocabulary import APPLICATION_BY_AID
from harness.fingerprint import certificates
from harness.fingerprint.plan import MeasureEf, Probe, Step, check_allowed
from readers.host_side.transport import Transport

__all__ = ["DEFAULT_TIMEOUT", "FCI_VALUE_TAGS", "Observations", "ProbeStoppedError", "Runner"]

SW_OK = 0x9000
MAX_OFFSET = 0x8000  # READ BINARY's 15-bit offset
CHUNK = 256
DEFAULT_TIMEOUT = 5.0
"""Seconds an answer may take; a slower one stops the run after it (PC/SC's own timeouts and a
removed card stop it as transport failures)."""
FCI_VALUE_TAGS = frozenset({0x82, 0x83, 0x8A})
"""FCI tags whose values are kept: file descriptor, FID, life cycle. ``84`` (DF name) is kept only
when it is an AID of the vocabulary; every other value is reduced to its length."""


class ProbeStoppedError(MynacardError):
    """The run stopped early (the message says at which command and why)."""


@dataclass
class Observations:
    """What a run found; ``stopped`` is the reason when it did not finish."""

    atr: str
    probes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    stopped: str | None = None
    sent: int = 0

    def keep(self, scope: str, key: str, **values: Any) -> None:
        self.probes.setdefault(scope, {})[key] = values

    def timing(self) -> dict[str, dict[str, float | int]]:
        """Median milliseconds and count per command class."""
        return {
            kind: {"median_ms": round(statistics.median(times) * 1000, 3), "count": len(times)}
            for kind, times in sorted(self.durations.items())
        }


def fci_structure(data: bytes) -> str:
    """The FCI as text: ``6F[12]{84=D392F000260100000001}`` (tag, length, children; values
    only of :data:`FCI_VALUE_TAGS` and of a DF name that is an AID of the vocabulary)."""
    try:
        items = tlv.decode_all(data)
    except CodecError:
        return f"not BER-TLV: {len(data)} bytes"
    out: list[str] = []
    for item in items:
        tag = f"{item.tag:02X}"
        if item.constructed:
            out.append(f"{tag}[{len(item.value)}]{{{fci_structure(item.value)}}}")
        elif item.tag in FCI_VALUE_TAGS or (item.tag == 0x84 and item.value in APPLICATION_BY_AID):
            out.append(f"{tag}={item.value.hex().upper()}")
        else:
            out.append(f"{tag}[{len(item.value)}]")
    return " ".join(out)


def _sw_text(sw: int) -> str:
    return f"{sw:04X}"


class Runner:
    """Sends the plan's commands over ``transport``; ``reset`` (if given) is called first."""

    def __init__(
        self,
        transport: Transport,
        atr: bytes,
        *,
        reset: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.transport = transport
        self.reset = reset
        self.clock = clock
        self.timeout = timeout
        self.found = Observations(atr.hex().upper())

    # -- sending ----------------------------------------------------------------------------

    def send(self, command: CommandApdu, kind: str) -> tuple[bytes, int]:
        """(data, SW); :class:`ProbeStoppedError` on 6Fxx, no SW or a transport failure."""
        check_allowed(command)
        raw = command.to_bytes()
        start = self.clock()
        try:
            response = self.transport.transmit(raw)
        except (MynacardError, OSError, TimeoutError) as exc:
            raise ProbeStoppedError(
                f"{command.masked_hex()}: the transport failed: {exc}"
            ) from None
        elapsed = self.clock() - start
        self.found.durations.setdefault(kind, []).append(elapsed)
        self.found.sent += 1
        if elapsed > self.timeout:
            raise ProbeStoppedError(
                f"{command.masked_hex()}: the answer took {elapsed:.1f} s "
                f"(more than {self.timeout:g} s)"
            )
        if len(response) < 2:
            raise ProbeStoppedError(f"{command.masked_hex()}: an answer without a status word")
        sw = int.from_bytes(response[-2:], "big")
        if sw >> 8 == 0x6F:
            raise ProbeStoppedError(
                f"{command.masked_hex()}: unexpected {sw:04X} (no precise diagnosis)"
            )
        return response[:-2], sw

    # -- the plan ---------------------------------------------------------------------------

    def run(self, steps: list[Step]) -> Observations:
        """Run every step; on a stop, :attr:`Observations.stopped` says why."""
        try:
            if self.reset is not None:
                self.reset()
            for step in steps:
                if isinstance(step, Probe):
                    self._probe(step)
                else:
                    self._measure(step)
        except ProbeStoppedError as exc:
            self.found.stopped = str(exc)
        return self.found

    def _probe(self, probe: Probe) -> None:
        data, sw = self.send(probe.command, probe.kind)
        if probe.key is None:
            return
        values: dict[str, Any] = {"sw": _sw_text(sw)}
        if probe.keep == "fci" and data:
            values["fci"] = fci_structure(data)
        elif probe.keep == "length" and sw == SW_OK:
            values["length"] = len(data)
        self.found.keep(probe.scope, probe.key, **values)

    def _read(self, offset: int, le: int, *, extended: bool = False) -> tuple[bytes, int]:
        command = builders.read_binary(offset, le)
        if extended:
            command = CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le, extended=True)
        return self.send(command, "read_binary")

    def _measure(self, step: MeasureEf) -> None:
        selected = self.found.probes.get(step.scope, {}).get(f"select/{step.fid:04X}/p2=0C")
        if selected is None or selected["sw"] != "9000":
            return
        key = f"ef/{step.fid:04X}"
        first, sw = self._read(0, 1)
        if sw != SW_OK:
            self.found.keep(step.scope, key, read=_sw_text(sw))
            return
        size, odd = self._size()
        values: dict[str, Any] = {"read": "9000", "size": size}
        if odd is not None:
            values["size_probe_sw"] = odd
        _, past = self._read(min(size, MAX_OFFSET - 1), 1)
        values["past_end"] = _sw_text(past)
        last = max(size - 1, 0)
        data, long_sw = self._read(last, 16)
        values["long_le"] = {"sw": _sw_text(long_sw), "returned": len(data)}
        data, ext_sw = self._read(last, 65536, extended=True)
        values["extended_le"] = {"sw": _sw_text(ext_sw), "returned": len(data)}
        if first == b"\x30":
            summary = self._certificate(size)
            if summary is not None:
                # A certificate's exact length follows its serial number and names (holder and
                # issuance noise): kept are its profile and the file's bytes beyond it.
                values["certificate"] = summary
                values["beyond_certificate"] = size - summary.pop("der_length")
                del values["size"]
        self.found.keep(step.scope, key, **values)

    def _size(self) -> tuple[int, str | None]:
        """The size of the current EF: offsets with one readable byte halve the interval.
        Also the first status word other than 9000 / 6B00, if any."""
        low, high = 0, MAX_OFFSET  # low readable; high assumed past the end
        odd: str | None = None
        while high - low > 1:
            middle = (low + high) // 2
            data, sw = self._read(middle, 1)
            if sw == SW_OK and data:
                low = middle
            else:
                high = middle
                if sw != 0x6B00 and odd is None:
                    odd = _sw_text(sw) + (" (no data)" if sw == SW_OK else "")
        return high, odd

    def _certificate(self, size: int) -> dict[str, Any] | None:
        head, sw = self._read(0, 8)
        length = certificates.der_length(head) if sw == SW_OK else None
        if length is None or length > size:
            return None
        der = bytearray()
        while len(der) < length:
            part, sw = self._read(len(der), min(CHUNK, length - len(der)))
            if sw != SW_OK or not part:
                return None
            der += part
        summary = certificates.summarise(bytes(der))
        der[:] = bytes(len(der))  # not kept
        return summary
