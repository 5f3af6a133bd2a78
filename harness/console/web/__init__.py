"""The console's web layer: a FastAPI app over a :class:`~harness.console.CardController`
(:mod:`.app`), served by uvicorn in a thread of its own on 127.0.0.1 (:mod:`.server`), with
its one page (``page/``) and its guard (:mod:`.guard`: host check, bearer token, headers)."""

from harness.console.web.app import create_app
from harness.console.web.server import ConsoleServer, ConsoleServerError

__all__ = ["ConsoleServer", "ConsoleServerError", "create_app"]
