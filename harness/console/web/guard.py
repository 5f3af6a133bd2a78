"""What every request passes first (an ASGI middleware): the Host header, the bearer token, a
body size limit; and the headers every answer carries.

1. ``Host`` must be exactly ``127.0.0.1:<port>`` or ``localhost:<port>``, else 403 (field
   ``host``): a page of another origin that rebinds its DNS name to 127.0.0.1 cannot talk to us.
2. ``/api/...`` and ``/`` need ``Authorization: Bearer <token>`` (``GET /`` also takes
   ``?token=<token>``), else 401 (field ``authorization``) with ``WWW-Authenticate: Bearer``;
   compared with :func:`hmac.compare_digest`.
3. A body of more than :data:`MAX_BODY` bytes is refused (413, field ``body``); a chunked one
   is cut there (and then fails to parse).
4. Every answer gets ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``,
   ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``; no CORS header ever.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness.console.web.errors import error_body

MAX_BODY = 512 * 1024
"""Largest request body: a persona or scenario TOML (at most 256 KiB) as a JSON string."""

SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class Guard:
    """The ASGI middleware of the module docstring, around the whole app."""

    def __init__(self, app: ASGIApp, *, token: str, port: int) -> None:
        self.app = app
        self._token = token.encode()
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no websocket routes: refuse before any check
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("host") not in self.hosts:
            await _refuse(send, 403, "wrong Host header: use 127.0.0.1 or localhost", "host")
            return
        path: str = scope["path"]
        guarded = path in {"/", "/api"} or path.startswith("/api/")
        if guarded and not self._authorized(scope, headers):
            await _refuse(
                send,
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                "authorization",
                ((b"www-authenticate", b"Bearer"),),
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await _refuse(send, 413, f"body larger than {MAX_BODY // 1024} KiB", "body")
            return
        await self.app(scope, _limited(receive), _with_headers(send))

    def _authorized(self, scope: Scope, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._same(given.strip()):
            return True
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            return any(self._same(value) for value in query.get("token", ())[:1])
        return False

    def _same(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._token)


def _limited(receive: Receive) -> Receive:
    """``receive`` that stops a (chunked) body after :data:`MAX_BODY` bytes."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                return {"type": "http.request", "body": b"", "more_body": False}
        return message

    return limited


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _refuse(
    send: Send,
    status: int,
    message: str,
    field: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = error_body(message, field)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
