"""The kiosk conformance run: an external kiosk program against every catalogue scenario.

For each scenario the runner personalizes a fresh card (the scenario's persona overrides,
counters and certificate states), wraps it in the scenario's faults, records every APDU to a
masked trace, puts it into a virtual reader of a private pcscd, and runs the kiosk command once.
A test PKI of its own (CRLs and OCSP over HTTP on 127.0.0.1) runs for the whole run; the
certificates it issues name it in their AIA and CRL distribution points.

The kiosk protocol — what the kiosk program gets and must give back:

* environment: ``MYNACARD_READER`` (the PC/SC reader holding the card),
  ``PCSCLITE_CSOCK_NAME`` (the private pcscd), ``MYNACARD_TRUST_PEM`` (a PEM file with the
  trusted JPKI user-authentication CA certificates), ``MYNACARD_PKI_URL`` (the PKI's base URL);
* stdin: the PINs the customer types, one line per PIN prompt; end of input = the customer
  walks away;
* stdout: its last JSON line ``{"outcome": "accepted"}`` or
  ``{"outcome": "refused", "reason": "<reason>"}`` (the reasons are
  :data:`~harness.conformance.catalogue.REASONS`).
  No such line (a crash) or no exit within the timeout is an outcome too, and fails
  ``finish-cleanly``.

The trace and the outcome are then judged by :mod:`harness.conformance.rules`.

The migration matrix (``--matrix``) runs every scenario once per card generation of the
catalogue (:class:`~harness.conformance.catalogue.Generation`): a kiosk sees today's card, the
next-generation card (ECDSA P-384 keys and signatures, P-384 CA chains: the trust PEM holds
those roots too) and a smartphone token, the same protocol for each. A (generation, scenario)
pair the catalogue marks ``not_for`` is reported "n/a" with its reason, never run. The evidence
of a matrix run is kept per generation (``traces/<generation>/<scenario>.jsonl`` …).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from card_emulator import Card
from card_emulator.personalize import personalize
from harness.card_server import CardServer, Endpoint
from harness.conformance.catalogue import Generation, KioskScenario
from harness.conformance.rules import Outcome, Verdict, judge
from harness.faults import FaultyCard, traced
from harness.personas import written_persona
from harness.traces.trace_file import Trace, TraceWriter, read_trace
from jpki.names import Tree
from jpki.pki_store import PkiStore
from jpki.service import PkiServer
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import VpcdReader
from readers.scard import PcscError

DEFAULT_TIMEOUT = 60.0
OUTPUT_LIMIT = 64 * 1024  # bytes of kiosk stdout / stderr kept in the report
INSERT_ATTEMPTS = 3
INSERT_WAIT = 4.0  # seconds; pcscd polls a vpcd reader every 400 ms


@dataclass
class ScenarioResult:
    """One scenario's run: what the kiosk reported, the verdicts, where the evidence is."""

    scenario: KioskScenario
    outcome: Outcome
    verdicts: list[Verdict]
    trace: Trace
    trace_path: Path
    stdout: str
    stderr: str
    seconds: float
    command: Sequence[str] = ()
    generation: str = ""
    """The matrix column ("" in a run without ``--matrix``)."""

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def key(self) -> str:
        """``scenario``, or ``generation/scenario`` in a matrix run (evidence file names)."""
        return f"{self.generation}/{self.scenario.name}" if self.generation else self.scenario.name

    @property
    def failed_rules(self) -> list[str]:
        return [v.rule.id for v in self.verdicts if not v.passed]


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """A (generation, scenario) pair of the matrix that was not run, and why."""

    generation: str
    scenario: KioskScenario
    reason: str


@dataclass
class ConformanceReport:
    """A whole run (one column of results, or the generation × scenario matrix)."""

    kiosk_command: str
    started: dt.datetime
    results: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0
    generations: list[Generation] = field(default_factory=list)
    """The matrix's columns; empty in a run without ``--matrix``."""
    not_applicable: list[NotApplicable] = field(default_factory=list)

    @property
    def matrix(self) -> bool:
        return bool(self.generations)

    def cell_failures(self) -> set[tuple[str, str, str]]:
        """(generation, scenario, rule) of every failed verdict."""
        return {
            (r.generation, r.scenario.name, rule) for r in self.results for rule in r.failed_rules
        }

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> set[tuple[str, str]]:
        """(scenario, rule) of every failed verdict."""
        return {(r.scenario.name, rule) for r in self.results for rule in r.failed_rules}


def parse_outcome(stdout: str, returncode: int | None, stderr: str = "") -> Outcome:
    """The kiosk's last JSON outcome line; a crash or a missing line is an outcome too."""
    if returncode is None:
        return Outcome("timeout", detail="the kiosk did not exit in time")
    for raw in reversed(stdout.splitlines()):
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("outcome") in ("accepted", "refused"):
            return Outcome(str(data["outcome"]), str(data.get("reason", "")))
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    detail = f"exit status {returncode}" + (f": {last.strip()[:200]}" if last else "")
    return Outcome("crashed", detail=detail)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_pki(directory: Path) -> Iterator[tuple[PkiStore, PkiServer]]:
    """A new test PKI in ``directory`` served on 127.0.0.1; its certificates name that URL."""
    for attempt in range(5):
        port = _free_port()
        store_dir = directory / f"pki-{port}"
        store = PkiStore.open(store_dir, base_url=f"http://127.0.0.1:{port}")
        try:
            server = PkiServer(store, port=port)
        except OSError:
            shutil.rmtree(store_dir, ignore_errors=True)
            if attempt == 4:
                raise
            continue
        with server:
            yield store, server
        return


def _text(data: bytes | None) -> str:
    return (data or b"")[-OUTPUT_LIMIT:].decode("utf-8", "replace")


@contextlib.contextmanager
def _inserted(
    card: FaultyCard, pcscd: PrivatePcscd, reader: VpcdReader, label: str
) -> Iterator[CardServer]:
    """``card`` in ``reader`` until the block ends; re-inserted when pcscd misses it."""
    for attempt in range(1, INSERT_ATTEMPTS + 1):
        server = CardServer(
            [(label, card)],
            endpoints=[Endpoint(reader.host, reader.port, reader.name, reader.netns)],
        )
        server.start()
        try:
            pcscd.wait_for_card(reader.name, timeout=INSERT_WAIT)
        except TimeoutError:
            server.stop()
            if attempt == INSERT_ATTEMPTS:
                raise PcscError(
                    f"pcscd did not see the card in {reader.name!r} after {attempt} insertions"
                ) from None
            continue
        try:
            yield server
        finally:
            server.stop()
        return


class ConformanceRunner:
    """Runs ``kiosk_command`` once per scenario; see the module docstring for the protocol."""

    def __init__(
        self,
        kiosk_command: str,
        out_dir: Path,
        *,
        base_persona: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.kiosk_command = kiosk_command
        self.argv = shlex.split(kiosk_command)
        if not self.argv:
            raise ValueError("the kiosk command is empty")
        if shutil.which(self.argv[0]) is None:
            raise ValueError(f"the kiosk command {self.argv[0]!r} is not an executable program")
        self.out_dir = out_dir
        self.base_persona = base_persona
        self.timeout = timeout
        self.progress = progress or (lambda _text: None)

    def run(
        self,
        scenarios: Sequence[KioskScenario],
        generations: Sequence[Generation] | None = None,
    ) -> ConformanceReport:
        """Every scenario once on the base persona, or with ``generations`` (the matrix) once
        per generation that it applies to."""
        report = ConformanceReport(
            self.kiosk_command, dt.datetime.now(dt.UTC), generations=list(generations or [])
        )
        cells: list[tuple[Generation | None, KioskScenario]] = []
        columns: list[Generation | None] = list(generations) if generations else [None]
        for generation in columns:
            for scenario in scenarios:
                reason = scenario.not_for.get(generation.name) if generation else None
                if generation is not None and reason is not None:
                    report.not_applicable.append(NotApplicable(generation.name, scenario, reason))
                else:
                    cells.append((generation, scenario))
        started = time.monotonic()
        for sub in ("traces", "kiosk-output", "personas"):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mynacard-conformance-") as work:
            workdir = Path(work)
            self.progress("starting the test PKI and a private pcscd …")
            with running_pki(workdir) as (store, server):
                trust = self.out_dir / "trusted-auth-ca.pem"
                trust.write_bytes(
                    b"".join(c.public_bytes(Encoding.PEM) for c in store.trust_roots(Tree.AUTH))
                )
                pcscd = PrivatePcscd(
                    1, socket_path=str(workdir / "pcscd.comm"), name="mynacard kiosk"
                )
                with pcscd:
                    env = {
                        **os.environ,
                        **pcscd.env,
                        "MYNACARD_READER": pcscd.readers[0].name,
                        "MYNACARD_TRUST_PEM": str(trust),
                        "MYNACARD_PKI_URL": server.url,
                        "PYTHONUNBUFFERED": "1",
                    }
                    for number, (column, scenario) in enumerate(cells, 1):
                        name = f"{column.name}/{scenario.name}" if column else scenario.name
                        self.progress(f"[{number}/{len(cells)}] {name} …")
                        result = self._run_one(
                            scenario, store, pcscd, pcscd.readers[0], env, generation=column
                        )
                        report.results.append(result)
                        verdict = (
                            "pass" if result.passed else "FAIL " + ", ".join(result.failed_rules)
                        )
                        self.progress(
                            f"[{number}/{len(cells)}] {name}: {result.outcome} — "
                            f"{verdict} ({result.seconds:.1f} s)"
                        )
        report.seconds = time.monotonic() - started
        return report

    def _card(
        self, scenario: KioskScenario, store: PkiStore, generation: Generation | None = None
    ) -> tuple[Card, Path]:
        overrides = scenario.persona_on(generation)
        key = f"{generation.name}/{scenario.name}" if generation else scenario.name
        overrides["label"] = f"kiosk-{key.replace('/', '-')}"
        if scenario.card.counters:
            overrides["counters"] = {**overrides.get("counters", {}), **scenario.card.counters}
        path = self.out_dir / "personas" / f"{key}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        persona = written_persona(path, self.base_persona, **overrides)  # the trace names the file
        return Card(personalize(persona, store=store)), path

    def _run_one(
        self,
        scenario: KioskScenario,
        store: PkiStore,
        pcscd: PrivatePcscd,
        reader: VpcdReader,
        env: dict[str, str],
        *,
        generation: Generation | None = None,
    ) -> ScenarioResult:
        card, persona_path = self._card(scenario, store, generation)
        key = f"{generation.name}/{scenario.name}" if generation else scenario.name
        trace_path = self.out_dir / "traces" / f"{key}.jsonl"
        output = self.out_dir / "kiosk-output" / key
        for folder in (trace_path.parent, output.parent):
            folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with TraceWriter(trace_path, persona=persona_path) as recorder:
            faulty = traced(card, recorder, scenario.card_on(generation))
            with _inserted(faulty, pcscd, reader, key):
                returncode, stdout, stderr = self._kiosk(scenario, env)
            pcscd.wait_for_card(reader.name, present=False, timeout=10.0)
        seconds = time.monotonic() - started
        output.with_name(f"{output.name}.stdout").write_text(stdout, "utf-8")
        output.with_name(f"{output.name}.stderr").write_text(stderr, "utf-8")
        outcome = parse_outcome(stdout, returncode, stderr)
        trace = read_trace(trace_path)
        verdicts = judge(trace, outcome, scenario.expect, [scenario.outcome_rule])
        return ScenarioResult(
            scenario,
            outcome,
            verdicts,
            trace,
            trace_path,
            stdout,
            stderr,
            seconds,
            self.argv,
            generation.name if generation else "",
        )

    def _kiosk(self, scenario: KioskScenario, env: dict[str, str]) -> tuple[int | None, str, str]:
        pins = "".join(pin + "\n" for pin in scenario.pins)
        try:
            process = subprocess.Popen(  # noqa: S603 - the user's own kiosk command
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # so a timeout can stop the kiosk and its children
            )
        except OSError as exc:
            return 127, "", f"cannot start {self.argv[0]!r}: {exc.strerror}"
        try:
            stdout, stderr = process.communicate(pins.encode(), timeout=self.timeout)
            return process.returncode, _text(stdout), _text(stderr)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group we started, by its PID
            stdout, stderr = process.communicate()
            return None, _text(stdout), _text(stderr)
