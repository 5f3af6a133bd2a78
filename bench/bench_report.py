"""The benchmark's targets, and its report: Markdown for people, JSON for tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench_core import ECHO, OURS, Results, Stat

# Targets.
T_INPROC_US = 15.0
T_SIGN_RATIO = 1.3
T_PCSC_RATIO = 1.3
T_KIOSK_MS = 5.0
T_AGG_16 = 20_000.0
T_AGG_16_VS_2 = 0.9
T_AGG_64_VS_16 = 0.8
T_CPU_16_VS_2 = 1.3
T_RSS_64_VS_1 = 1.5
T_ISSUE_1000_S = 60.0
T_ISSUE_POOL_1000_S = 25.0
T_COLDSTART_S = 0.7
T_FLEET_KIOSKS = 100


def us(ns: float) -> str:
    """Nanoseconds as microseconds, two decimals below 10 µs."""
    return f"{ns / 1000:,.2f} µs" if ns < 10_000 else f"{ns / 1000:,.1f} µs"


def evaluate(res: Results) -> None:
    """Check the targets against the figures of ``res``; record each in ``res.targets``."""
    ip = res.inproc

    def target(name: str, value: str, goal: str, met: bool) -> None:
        res.targets.append({"target": name, "value": value, "goal": goal, "met": met})

    for op in ("SELECT AID", "READ BINARY 256"):
        med = ip[op].median_ns / 1000
        target(f"in-process {op} median", f"{med:.1f} µs", f"≤ {T_INPROC_US:g} µs", med <= 15)
    ratio = ip["COMPUTE DIGITAL SIGNATURE"].median_ns / ip["baseline: raw RSA-2048 sign"].median_ns
    target("signing vs raw RSA", f"{ratio:.2f}×", f"≤ {T_SIGN_RATIO}×", ratio <= T_SIGN_RATIO)
    if "COMPUTE DIGITAL SIGNATURE (P-384)" in ip:
        ratio = (
            ip["COMPUTE DIGITAL SIGNATURE (P-384)"].median_ns
            / ip["baseline: raw ECDSA P-384 sign"].median_ns
        )
        met = ratio <= T_SIGN_RATIO
        target("ECDSA P-384 signing vs raw P-384", f"{ratio:.2f}×", f"≤ {T_SIGN_RATIO}×", met)
    if res.pcsc:
        ratio = res.pcsc[OURS].median_ns / res.pcsc[ECHO].median_ns
        p99 = res.pcsc[OURS].p99_ns / res.pcsc[ECHO].p99_ns
        target(
            "PC/SC round trip vs echo (median; p99)",
            f"{ratio:.2f}×; {p99:.2f}×",
            f"≤ {T_PCSC_RATIO}× median",
            ratio <= T_PCSC_RATIO,
        )
        kiosk_ms = res.kiosk["stat"].median_ns / 1e6
        target("kiosk flow median", f"{kiosk_ms:.2f} ms", f"≤ {T_KIOSK_MS:g} ms", kiosk_ms <= 5)
        _throughput_targets(res, target)
    if res.console:
        for key, what in (
            ("loaded", "APDU with the console under load vs without, same moments (median; p99)"),
            ("idle", "APDU with the console attached and idle vs without (median; p99)"),
        ):
            c = res.console[key]
            target(
                what,
                f"{c.median:.2f}×; {c.p99:.2f}×",
                f"within the run's noise band ({c.band_median:.2f}×; {c.band_p99:.2f}×)",
                c.within_noise,
            )
    if res.issuance:
        shared = res.issuance["shared"]
        projected = shared["seconds_per_1000"]
        measured = f"{shared['count']:,} cards in {shared['seconds']:.1f} s"
        if shared["count"] < 1000:
            measured += ", projected: setup not amortized"
        target(
            "1,000 personas issued",
            f"{projected:.1f} s ({measured})",
            f"≤ {T_ISSUE_1000_S:g} s",
            projected <= T_ISSUE_1000_S,
        )
    if res.issuance and "pooled" in res.issuance:
        pooled = res.issuance["pooled"]
        projected = pooled["seconds_per_1000"]
        measured = f"{pooled['count']:,} cards in {pooled['seconds']:.1f} s"
        if pooled["count"] < 1000:
            measured += ", projected: setup not amortized"
        target(
            "1,000 cards issued with --key-pool",
            f"{projected:.1f} s ({measured})",
            f"≤ {T_ISSUE_POOL_1000_S:g} s",
            projected <= T_ISSUE_POOL_1000_S,
        )
        if "distinct_jpki_keys" in pooled:
            distinct, expected = pooled["distinct_jpki_keys"], 2 * pooled["count"]
            target(
                "--key-pool: distinct public keys in the cards' JPKI certificates",
                f"{distinct:,}",
                f"= {expected:,} (2 per card)",
                distinct == expected,
            )
    if res.coldstart:
        median = res.coldstart["median_s"]
        target(
            "serve cold start to a visible card (median)",
            f"{median:.2f} s",
            f"≤ {T_COLDSTART_S:g} s",
            median <= T_COLDSTART_S,
        )

    if res.fleet:
        f = res.fleet
        done = f["first"]["ok"] + f["with_restarts"]["ok"]
        every = done == 2 * f["kiosks"] and not f["first"]["failed"]
        target(
            "kiosks served by one fleet process, every flow done, restarted kiosks back",
            f"{f['kiosks']} kiosks, {done}/{2 * f['kiosks']} rounds done, "
            f"{f['restarted']} restarted (back within {f['reconnect_max_s']:.2f} s)",
            f"{T_FLEET_KIOSKS} kiosks, all done",
            every and f["kiosks"] >= T_FLEET_KIOSKS and not f["with_restarts"]["failed"],
        )


def markdown(res: Results) -> str:
    """The report in Markdown: one section per part measured, then the targets."""
    lines = [
        f"# Benchmark ({'quick' if res.quick else 'full'} run)",
        "",
        " · ".join(f"{k}: {v}" for k, v in res.env.items()),
        *_inproc_section(res),
    ]
    if res.pcsc:
        lines += (
            _pcsc_section(res)
            + _console_section(res)
            + _relay_section(res)
            + _throughput_section(res)
        )
    if res.issuance:
        lines += _issuance_section(res)
    if res.coldstart:
        lines += _coldstart_section(res)
    if res.fleet:
        lines += _fleet_section(res)
    lines += ["", "## Targets", "", "| Target | Value | Goal | Met |", "|---|---:|---:|---|"]
    for t in res.targets:
        lines.append(
            f"| {t['target']} | {t['value']} | {t['goal']} | {'met' if t['met'] else 'NOT met'} |"
        )
    return "\n".join(lines) + "\n"


def _inproc_section(res: Results) -> list[str]:
    ip = res.inproc
    call = ip["baseline: bare Python call"].median_ns
    rsa_ns = ip["baseline: raw RSA-2048 sign"].median_ns
    lines = [
        "",
        "## 1. In-process cost per APDU",
        "",
        "| Operation | n | median | p99 | × bare call | × raw RSA |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in ip.items():
        lines.append(
            f"| {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
            f"| {s.median_ns / call:,.0f} | {s.median_ns / rsa_ns:.2f} |"
        )
    return lines


def _pcsc_section(res: Results) -> list[str]:
    echo = res.pcsc[ECHO]
    lines = [
        "",
        "## 2–3. Through pcscd + vpcd (one private pcscd; cards served by a separate process)",
        "",
        "| Measurement | n | median | p99 | × echo (median) | × echo (p99) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in res.pcsc.items():
        lines.append(
            f"| PC/SC {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
            f"| {s.median_ns / echo.median_ns:.2f} | {s.p99_ns / echo.p99_ns:.2f} |"
        )
    k = res.kiosk
    s = k["stat"]
    lo, hi = k["real_reader_ms"]
    lines += [
        f"| Kiosk flow ({k['apdus']} APDUs) | {s.n} | {s.median_ns / 1e6:.2f} ms "
        f"| {s.p99_ns / 1e6:.2f} ms | real readers at 30–50 ms/APDU: {lo:.0f}–{hi:.0f} ms "
        f"({lo / (s.median_ns / 1e6):,.0f}–{hi / (s.median_ns / 1e6):,.0f}× slower) | |",
    ]
    if res.vicc:
        return [*lines, "", f"vicc not measured: {res.vicc}"]
    return [
        *lines,
        "",
        "vicc: vsmartcard's built-in ISO 7816 card in its own VirtualICC loop (with our "
        "TCP_QUICKACK socket wrapper, without which every APDU stalls 40 ms); it answers "
        "SELECT MF, not the JPKI-AP.",
    ]


def _console_section(res: Results) -> list[str]:
    c = res.console
    if not c:
        return []
    stats = list(c["stats"].items())
    cpu = c["cpu_us_per_apdu"]
    loaded, idle = c["loaded"], c["idle"]
    lines = [
        "",
        "## 2b. The live console attached (`mynacard serve --console`, a process of its own)",
        "",
        "| Measurement | n | median | p99 | × no console (median) | × no console (p99) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += _ratio_rows(stats)
    return [
        *lines,
        "",
        f"Load (another process, normal priority): {c['load_requests_per_second']:,.0f} API "
        f"requests/s with {c['concurrency']} always in flight, {c['load_events']:,} events "
        "streamed to one subscriber.",
        "",
        f"The console's card under that load: {loaded.median:.2f}× (median) and "
        f"{loaded.p99:.2f}× (p99) the plain card at the same moments; with the console idle "
        f"{idle.median:.2f}× and {idle.p99:.2f}×. The noise bands ({loaded.band_median:.2f}×; "
        f"{loaded.band_p99:.2f}× under load, {idle.band_median:.2f}×; {idle.band_p99:.2f}× "
        f"idle) are the 95th percentiles of the same ratios with the {c['slices']} slices per "
        "card dealt to the two sides at random (a permutation test). Against the plain card at "
        f"rest the loaded console's card is {c['vs_resting_median']:.2f}× and "
        f"{c['vs_resting_p99']:.2f}×: what any CPU-hungry neighbour costs on this machine "
        "(the row beside shows the plain card pays it too).",
        "",
        "Card process CPU per APDU: "
        + ", ".join(f"{key} {value:.0f} µs" for key, value in cpu.items())
        + " (from /proc, 10 ms ticks).",
    ]


def _ratio_rows(stats: list[tuple[str, Stat]]) -> list[str]:
    """One table row per measurement, with its median and p99 as ratios to the first's."""
    base = stats[0][1]
    return [
        f"| PC/SC {name} | {s.n} | {us(s.median_ns)} | {us(s.p99_ns)} "
        f"| {s.median_ns / base.median_ns:.2f} | {s.p99_ns / base.p99_ns:.2f} |"
        for name, s in stats
    ]


def _relay_section(res: Results) -> list[str]:
    if not res.relay:
        return []
    stats = list(res.relay.items())
    lines = [
        "",
        "## 2c. Through `mynacard relay` (a second private pcscd's card, relayed into a vpcd "
        "reader)",
        "",
        "| Measurement | n | median | p99 | × direct (median) | × direct (p99) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += _ratio_rows(stats)
    return [
        *lines,
        "",
        "The relayed APDU crosses two pcscds, two vpcd sockets and the relay process; a real "
        "reader adds its own 30–50 ms per APDU, next to which the relay's cost is noise.",
    ]


def _throughput_targets(res: Results, target: Callable[[str, str, str, bool], None]) -> None:
    """Issue 18's targets for section 4: scaling, CPU per APDU and memory of ``serve``."""
    tp, cpu = res.throughput, res.throughput_cpu
    agg, two = tp["16 reader(s)"], tp["2 reader(s)"]
    target(
        "16 readers aggregate (serve, clients in other processes)",
        f"{agg:,.0f} APDU/s",
        f"≥ {T_AGG_16:,.0f}",
        agg >= T_AGG_16,
    )
    ratio = agg / two
    target(
        "16 readers vs 2 readers", f"{ratio:.2f}×", f"≥ {T_AGG_16_VS_2}×", ratio >= T_AGG_16_VS_2
    )
    many = tp.get("64 reader(s), 4 pcscd")
    if many is not None:
        ratio = many / agg
        target(
            "64 cards (one serve, 4 pcscd) vs 16 readers",
            f"{ratio:.2f}× ({many:,.0f} APDU/s)",
            f"≥ {T_AGG_64_VS_16}×",
            ratio >= T_AGG_64_VS_16,
        )
    per16 = cpu["16 reader(s)"]["card process µs/APDU"]
    per2 = cpu["2 reader(s)"]["card process µs/APDU"]
    ratio = per16 / per2
    target(
        "card-process CPU per APDU, 16 vs 2 readers",
        f"{ratio:.2f}× ({per16:.1f} vs {per2:.1f} µs)",
        f"≤ {T_CPU_16_VS_2}×",
        ratio <= T_CPU_16_VS_2,
    )
    if "serve, 64 cards" in res.memory:
        rss64, rss1 = res.memory["serve, 64 cards"], res.memory["serve, 1 card"]
        ratio = rss64 / rss1
        target(
            "serve's resident memory, 64 cards vs 1",
            f"{ratio:.2f}× ({rss64:.1f} vs {rss1:.1f} MiB)",
            f"≤ {T_RSS_64_VS_1}×",
            ratio <= T_RSS_64_VS_1,
        )


def _throughput_section(res: Results) -> list[str]:
    lines = [
        "",
        "## 4. Aggregate throughput (SELECT EF + READ BINARY 256, one pyscard thread per reader)",
        "",
        "| Readers | APDU/s | × 1 reader | CPU µs/APDU: pcscd | card process | clients "
        "| cores busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    one = res.throughput["1 reader(s)"]
    for name, v in res.throughput.items():
        cpu = res.throughput_cpu.get(name, {})
        card = cpu.get("card process µs/APDU", 0.0)
        lines.append(
            f"| {name} | {v:,.0f} | {v / one:.2f} | {cpu.get('pcscd µs/APDU', 0):.1f} "
            f"| {f'{card:.1f}' if card else '(in clients)'} "
            f"| {cpu.get('client process µs/APDU', 0):.1f} | {cpu.get('cores busy', 0):.2f} |"
        )
    if res.memory:
        lines += ["", "| `mynacard serve` | resident memory (VmRSS) |", "|---|---:|"]
        lines += [f"| {name} | {mib:.1f} MiB |" for name, mib in res.memory.items()]
    return lines


def _issuance_section(res: Results) -> list[str]:
    lines = [
        "",
        "## 5. Bulk issuance (`mynacard issue`, default jobs)",
        "",
        "| Keys | cards | seconds | cards/s | jobs | projected s / 1,000 cards |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, what in (
        ("shared", "JPKI keys per card, other 4 shared by the run (default)"),
        ("unique", "all 6 keys per card (--unique-keys)"),
        ("pooled", "JPKI keys from a key pool made beforehand (--key-pool)"),
    ):
        if label not in res.issuance:
            continue
        r = res.issuance[label]
        lines.append(
            f"| {what} | {r['count']:,} | {r['seconds']:.1f} | {r['cards_per_second']:.1f} "
            f"| {r['jobs']} | {r['seconds_per_1000']:.1f} |"
        )
    if "pool" in res.issuance:
        pool = res.issuance["pool"]
        lines += [
            "",
            f"Key pool generated beforehand (`mynacard key-pool`): {pool['count']:,} RSA-2048 "
            f"keys in {pool['seconds']:.1f} s, {pool['keys_per_second']:.1f} keys/s with "
            f"{pool['jobs']} job(s) (not counted in the --key-pool row).",
        ]
    pooled = res.issuance.get("pooled", {})
    if "distinct_jpki_keys" in pooled:
        lines += [
            "",
            f"--key-pool run: {pooled['distinct_jpki_keys']:,} distinct public keys in the "
            f"{pooled['count']:,} cards' JPKI certificates ({2 * pooled['count']:,} expected); "
            f"{pooled['pool_keys_left']:,} key(s) left in the pool.",
        ]
    return lines


def _coldstart_section(res: Results) -> list[str]:
    c = res.coldstart
    return [
        "",
        "## 6. `mynacard serve --private-socket` cold start to a card a pyscard client sees",
        "",
        "| Runs | median | min | max | first run (creates the PKI) |",
        "|---:|---:|---:|---:|---:|",
        f"| {c['runs']:.0f} | {c['median_s']:.3f} s | {c['min_s']:.3f} s | {c['max_s']:.3f} s "
        f"| {c['first_run_s']:.3f} s |",
        "",
        "From starting the command (a fresh interpreter) until SCardGetStatusChange reports the "
        "card present; pcscd polls vpcd for a card every 400 ms, so the figure moves in steps.",
    ]


def _fleet_section(res: Results) -> list[str]:
    f = res.fleet
    one, two = f["first"], f["with_restarts"]
    where = "a network namespace each" if f["namespaces"] else "loopback ports"
    return [
        "",
        f"## 7. A fleet: {f['kiosks']} simulated kiosks served by one `mynacard fleet` process",
        "",
        f"Each kiosk is a pcscd of its own with one vpcd reader ({where}); one fleet process "
        "serves a card to each; one forked PC/SC client per kiosk runs the kiosk flow (select, "
        "read the certificate, verify, sign), all at the same moment.",
        "",
        "| Step | Value |",
        "|---|---:|",
        f"| kiosks started (pcscd each, 8 at a time) | {f['farm_start_s']:.1f} s |",
        f"| fleet process start to every kiosk connected | {f['fleet_ready_s']:.2f} s "
        f"({f['fleet_cpu_at_ready_s']:.2f} s CPU, {f['fleet_rss_mib']:.0f} MiB) |",
        f"| every kiosk's flow at once: total | {one['total_s']:.2f} s |",
        f"| slowest kiosk; median kiosk | {one['slowest_s']:.2f} s; {one['median_s']:.2f} s |",
        f"| kiosks done; failed | {one['ok']}; {one['failed']} |",
        f"| with restarts: every kiosk's flow again and again for {f['repeat_for_s']:.0f} s, "
        f"total | {two['total_s']:.2f} s |",
        f"| with restarts: flows done; kiosks done; failed | {two['flows']}; {two['ok']}; "
        f"{two['failed']} |",
        f"| with restarts: slowest single flow; median kiosk's slowest flow | "
        f"{two['slowest_flow_s']:.2f} s; {two['median_flow_s']:.2f} s |",
        f"| kiosks restarted (pcscd stopped and started again); of them mid-flow | "
        f"{f['restarted']}; {f['restarted_mid_flow']} |",
        f"| restart to card back in the reader (fleet's status line): max; median | "
        f"{f['reconnect_max_s']:.2f} s; {f['reconnect_median_s']:.2f} s |",
        "",
        "In the second round every kiosk runs the flow again and again; a restarted kiosk's "
        "client loses the card mid-flow and starts the flow again once the fleet has put the "
        "card back.",
    ]


def to_json(res: Results) -> dict[str, Any]:
    """``res`` as JSON data."""
    return asdict(res)
