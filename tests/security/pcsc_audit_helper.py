"""Helper process: serve the demo card through a private pcscd + vpcd and audit it over PC/SC.

    python -m tests.security.pcsc_audit_helper PERSONA CREDENTIALS [audit args...]

Exit status: the audit's; 77 when pcscd or vpcd is not installed. Runs in its own process
because libpcsclite picks its pcscd socket once per process.
"""

from __future__ import annotations

import sys

from card_emulator import Card
from harness.audit import cli as audit_cli
from harness.card_server import CardServer
from readers.card_side.reader_conf import PcscdNotInstalledError

SKIP = 77


def main() -> int:
    persona, credentials, *extra = sys.argv[1:]
    server = CardServer([("demo", Card.from_persona(persona))], private_socket=True)
    try:
        server.start()
    except PcscdNotInstalledError as exc:
        print(exc, file=sys.stderr)
        return SKIP
    try:
        reader = server.served[0].endpoint.reader
        assert reader is not None
        return audit_cli.main(["audit", "--reader", reader, "--credentials", credentials, *extra])
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
