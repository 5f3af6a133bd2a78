"""The console's web layer: a FastAPI app over a :class:`~harness.console.CardController`
(:mod:`.app`), served by uvicorn on 127.0.0.1 — in a process of its own linked to the cards'
(:mod:`.process`, what ``mynacard serve --console`` runs) or in a thread of the cards' process
(:mod:`.server`) — with its one page (``page/``) and its guard (:mod:`.guard`: host check,
bearer token, headers)."""

from harness.console.web.app import create_app
from harness.console.web.process import ConsoleProcess
from harness.console.web.server import ConsoleServer, ConsoleServerError

__all__ = ["ConsoleProcess", "ConsoleServer", "ConsoleServerError", "create_app"]
