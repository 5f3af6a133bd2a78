"""``mynacard pki …``: the test PKI from the command line.

Subcommands (every one takes ``--dir DIR``, default ``$MYNACARD_PKI`` or
``~/.local/share/mynacard/pki``, and ``--at WHEN``, the clock: ``2031-01-01`` = that day 00:00
JST, or an ISO datetime; the clock runs on from there)::

    init     [--declaration FILE] [--base-url URL]   make the state directory from a declaration
    status   [--persona LABEL] [--cert auth|sign|both]
    revoke   --persona LABEL | --serial HEX  [--cert auth|sign|both] [--reason REASON]
    moved    --persona LABEL                  the 署名用 certificate revoked for a move
                                              (affiliationChanged, 記載内容変更); auth stays valid
    hold     --persona LABEL | --serial HEX  [--cert …]   一時保留
    release  --persona LABEL | --serial HEX  [--cert …]   一時保留の解除
    crl      --cert auth|sign [--style S] [--generation N] [--arl] [--pem] [--out FILE]
    serve    [--host 127.0.0.1] [--port N] [--frozen] [--log]
                                              CRLs, ARLs, CA certificates and OCSP over HTTP;
                                              --frozen: the clock stands still at --at

``--cert`` defaults to ``both``. ``--persona`` takes a persona label or a persona file (its label
is used); every recorded card of that persona is changed. Reasons: the RFC 5280
names (``keyCompromise``, ``affiliationChanged``, …), snake_case, or 記載内容変更 / 更新.
Exit status: 0 done, 1 nothing changed, 2 bad input. Wire into ``mynacard`` with
``register(subparsers)``; ``python -m harness.commands.pki pki …`` runs it stand-alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding

from card_emulator import persona as persona_module
from card_emulator.persona import PersonaError
from harness.standalone import run_alone
from jpki.clock import (
    JST,
    Clock,
    FrozenClock,
    OffsetClock,
    default_clock,
    parse_moment,
    using_clock,
)
from jpki.database import CertificateRecord
from jpki.declaration import DeclarationError
from jpki.names import NameStyle, Tree
from jpki.pki_store import PkiError, PkiStore
from jpki.revocation import (
    CertificateState,
    CertificateStatus,
    EventKind,
    RevocationError,
    RevocationEvent,
    RevocationReason,
    parse_reason,
)
from jpki.service import DEFAULT_HOST, PkiServer

__all__ = ["main", "register"]

Handler = Callable[[argparse.Namespace], int]
_PORTS = range(65536)
_TREES = {"auth": (Tree.AUTH,), "sign": (Tree.SIGN,), "both": (Tree.AUTH, Tree.SIGN)}
_CERT_NAMES = {"auth": "auth", "sign": "sign", "both": "auth or sign"}
_ERRORS = (PkiError, DeclarationError, RevocationError, PersonaError, OSError, ValueError)


def _moment_text(moment: dt.datetime | None) -> str:
    return moment.astimezone(JST).isoformat(timespec="seconds") if moment else "-"


def _describe(status: CertificateStatus) -> str:
    revocation = status.revocation
    if status.state is CertificateState.VALID:
        return "valid"
    if status.state is CertificateState.HOLD:
        return f"hold (一時保留) since {_moment_text(revocation.since)}"
    if status.state is CertificateState.REVOKED:
        reason = revocation.reason
        named = f"{reason.value} {reason.japanese}" if reason else "?"
        return f"revoked ({named}) since {_moment_text(revocation.since)}"
    if status.state is CertificateState.EXPIRED:
        return "expired" + (" (was revoked)" if not revocation.good else "")
    return "not yet valid"


def _line(record: CertificateRecord, status: CertificateStatus) -> str:
    return (
        f"{record.persona:<12} {record.tree.value:<4} {record.authority:<18} "
        f"{record.serial_hex:>16}  to {_moment_text(record.not_after)}  {_describe(status)}"
    )


# --- argument types ----------------------------------------------------------------------------


def _port(text: str) -> int:
    """``--port``: a TCP port, 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if port not in _PORTS:
        raise argparse.ArgumentTypeError(f"{port} is out of range (0 to 65535; 0 = any free port)")
    return port


def _serial(text: str) -> str:
    """``--serial``: a certificate serial number in hex, kept as written."""
    try:
        serial = int(text, 16)
    except ValueError:
        serial = -1
    if serial < 0:
        raise argparse.ArgumentTypeError(f"not a hexadecimal serial number: {text!r}")
    return text


# --- common options ----------------------------------------------------------------------------


def _clock(args: argparse.Namespace) -> Clock:
    clock: Clock = args.clock
    return clock


def _store(args: argparse.Namespace) -> PkiStore:
    return PkiStore.open(args.dir)


def _persona_label(text: str) -> str:
    path = Path(text)
    if text.endswith(".toml") and path.is_file():
        return persona_module.load(path).label
    return text


def _records(args: argparse.Namespace, store: PkiStore) -> list[CertificateRecord]:
    trees = _TREES[args.cert]
    if args.serial is not None:
        serial = int(args.serial, 16)
        found = [r for tree in trees for r in store.certificates(serial=serial, tree=tree)]
        if not found:
            which = _CERT_NAMES[args.cert]
            raise PkiError(f"no {which} certificate with serial {args.serial} is recorded")
        return found
    label = _persona_label(args.persona)
    found = [r for tree in trees for r in store.certificates(persona=label, tree=tree)]
    if not found:
        raise PkiError(f"no {_CERT_NAMES[args.cert]} certificates recorded for persona {label!r}")
    return found


# --- subcommands -------------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    store = PkiStore.open(args.dir, declaration=args.declaration, base_url=args.base_url)
    print(f"{store.directory}: test PKI ready, certificates name {store.declaration.base_url}")
    for style in store.declaration.styles:
        for tree in Tree:
            for authority in store.authorities(tree, style):
                cert = authority.certificate
                print(
                    f"  {style.value}-{tree.value}-g{authority.generation}  "
                    f"{cert.not_valid_before_utc.astimezone(JST).date()} .. "
                    f"{cert.not_valid_after_utc.astimezone(JST).date()}"
                )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    store = _store(args)
    moment = _clock(args).now()
    label = _persona_label(args.persona) if args.persona else None
    records = [
        r for tree in _TREES[args.cert] for r in store.certificates(persona=label, tree=tree)
    ]
    print(f"at {_moment_text(moment)}")
    if not records:
        print("no certificates recorded" + (f" for persona {label!r}" if label else ""))
        return 1 if label else 0
    for record in sorted(records, key=lambda r: (r.persona, r.recorded_at)):
        print(_line(record, record.status(moment)))
    return 0


def _change(args: argparse.Namespace, kind: EventKind, reason: RevocationReason | None) -> int:
    store = _store(args)
    clock = _clock(args)
    changed = 0
    for record in _records(args, store):
        moment = clock.now()
        status = record.status(moment)
        if status.state is CertificateState.EXPIRED:
            print(f"{_line(record, status)}  (unchanged)")
            continue
        try:
            updated = store.change(record, RevocationEvent(kind, moment, reason), clock=clock)
        except RevocationError as exc:
            print(f"{_line(record, status)}  (unchanged: {exc})")
            continue
        print(_line(updated, updated.status(moment)))
        changed += 1
    return 0 if changed else 1


def _cmd_revoke(args: argparse.Namespace) -> int:
    return _change(args, EventKind.REVOKE, parse_reason(args.reason))


def _cmd_moved(args: argparse.Namespace) -> int:
    args.cert, args.serial = "sign", None
    return _change(args, EventKind.REVOKE, RevocationReason.AFFILIATION_CHANGED)


def _cmd_hold(args: argparse.Namespace) -> int:
    return _change(args, EventKind.HOLD, None)


def _cmd_release(args: argparse.Namespace) -> int:
    return _change(args, EventKind.RELEASE, None)


def _cmd_crl(args: argparse.Namespace) -> int:
    store = _store(args)
    tree, style = Tree(args.cert), NameStyle(args.style)
    moment = _clock(args).now()
    if args.generation is None:
        generation = store.authority_in_force(tree, style, moment).generation
    else:
        generation = args.generation
    make = store.arl if args.arl else store.crl
    crl = make(tree, style, generation, at=moment)
    data = crl.public_bytes(Encoding.PEM if args.pem else Encoding.DER)
    if args.out is None or str(args.out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.out.write_bytes(data)
        kind = "ARL" if args.arl else "CRL"
        print(
            f"{args.out}: {kind} of {style.value}-{tree.value}-g{generation}, "
            f"{len(list(crl))} entries, thisUpdate {_moment_text(moment)}"
        )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    store = _store(args)
    port = args.port
    if port is None:
        port = urlsplit(store.declaration.base_url).port or 80
    if args.log:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    clock = _clock(args)
    if args.frozen:
        if not args.at:
            raise PkiError("--frozen needs --at (the moment to stand still at)")
        clock = FrozenClock(clock.now())
    server = PkiServer(store, host=args.host, port=port, clock=clock)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"serving {server.url}", flush=True)
    print(server.index(), end="", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0


# --- wiring ------------------------------------------------------------------------------------


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            args.clock = OffsetClock(parse_moment(args.at)) if args.at else default_clock()
            if not args.at:
                return handler(args)
            with using_clock(args.clock):  # personalization in this process sees it too
                return handler(args)
        except _ERRORS as exc:
            print(f"mynacard pki: {exc}", file=sys.stderr)
            return 2

    return run


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=None, help="PKI state directory (default $MYNACARD_PKI)"
    )
    common.add_argument(
        "--at",
        metavar="WHEN",
        default=None,
        help="the clock: 2031-01-01 (00:00 JST) or an ISO datetime; default now",
    )
    return common


def _targets(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--persona", metavar="LABEL", help="persona label or persona file")
    who.add_argument(
        "--serial", metavar="HEX", type=_serial, help="one certificate's serial number (hex)"
    )
    parser.add_argument(
        "--cert",
        choices=tuple(_TREES),
        default="both",
        help="which certificate: auth (利用者証明用), sign (署名用) or both",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pki`` and its subcommands to a ``mynacard`` command line."""
    common = _common()
    pki = subparsers.add_parser("pki", help="the test PKI: revoke, hold, CRLs, OCSP, serve")
    sub = pki.add_subparsers(dest="pki_command", required=True, metavar="SUBCOMMAND")

    init = sub.add_parser("init", parents=[common], help="create the PKI state directory")
    init.add_argument("--declaration", type=Path, help="PKI declaration TOML (default: built in)")
    init.add_argument("--base-url", help="base of the OCSP / CRL URLs written into certificates")
    init.set_defaults(func=_guarded(_cmd_init))

    status = sub.add_parser("status", parents=[common], help="certificates and their state")
    status.add_argument("--persona", metavar="LABEL", help="persona label or persona file")
    status.add_argument("--cert", choices=tuple(_TREES), default="both")
    status.set_defaults(func=_guarded(_cmd_status))

    revoke = sub.add_parser("revoke", parents=[common], help="revoke certificates (失効)")
    _targets(revoke)
    revoke.add_argument(
        "--reason",
        default="unspecified",
        help="keyCompromise, cACompromise, affiliationChanged (記載内容変更), superseded (更新), "
        "cessationOfOperation, unspecified (default)",
    )
    revoke.set_defaults(func=_guarded(_cmd_revoke))

    moved = sub.add_parser(
        "moved",
        parents=[common],
        help="the holder moved: revoke the sign certificate (affiliationChanged), keep auth",
    )
    moved.add_argument("--persona", metavar="LABEL", required=True)
    moved.set_defaults(func=_guarded(_cmd_moved))

    hold = sub.add_parser("hold", parents=[common], help="put certificates on hold (一時保留)")
    _targets(hold)
    hold.set_defaults(func=_guarded(_cmd_hold))

    release = sub.add_parser("release", parents=[common], help="release a hold")
    _targets(release)
    release.set_defaults(func=_guarded(_cmd_release))

    crl = sub.add_parser("crl", parents=[common], help="write a CRL (or ARL), DER by default")
    crl.add_argument("--cert", choices=("auth", "sign"), required=True, help="which tree")
    crl.add_argument("--style", choices=[s.value for s in NameStyle], default="test")
    crl.add_argument("--generation", type=int, help="CA generation (default: in force)")
    crl.add_argument("--arl", action="store_true", help="the ARL instead of the CRL")
    crl.add_argument("--pem", action="store_true", help="PEM instead of DER")
    crl.add_argument("--out", type=Path, help="output file (default: stdout)")
    crl.set_defaults(func=_guarded(_cmd_crl))

    serve = sub.add_parser("serve", parents=[common], help="serve CRLs and OCSP over HTTP")
    serve.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port (default: the declaration's base URL port; 0 = any)"
    )
    serve.add_argument(
        "--frozen", action="store_true", help="the clock stands still at --at instead of running"
    )
    serve.add_argument("--log", action="store_true", help="log every request to stderr")
    serve.set_defaults(func=_guarded(_cmd_serve))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.commands.pki pki …``: the ``pki`` command alone."""
    return run_alone(register, argv, "The mynacard test PKI.")


if __name__ == "__main__":
    sys.exit(main())
