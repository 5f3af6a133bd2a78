"""The test PKI over HTTP: DER CRLs and ARLs, CA certificates and an RFC 6960 OCSP responder.

Binds 127.0.0.1 unless told otherwise (port 0 = ephemeral). Routes, for every declared name
style, tree and CA generation (``<id>`` = ``test-auth-g3`` etc.)::

    GET  /crl/<id>.crl                 CRL, application/pkix-crl
    GET  /arl/<id>.crl                 ARL, application/pkix-crl
    GET  /ca/<id>.crt                  CA certificate, application/pkix-cert
    POST /ocsp/<style>-<tree>          OCSP, body application/ocsp-request (RFC 6960 A.1)
    GET  /ocsp/<style>-<tree>/<base64> OCSP, the request base64- then URL-encoded
    GET  /                             a plain-text index

Anything else is ``404``; a wrong method ``405``. A POST body must have a Content-Length (else
``411``) of at most :data:`MAX_BODY` bytes (else ``413``, unread, connection closed); chunked
bodies are refused (``501``). OCSP errors travel inside OCSP (``malformedRequest`` etc., HTTP
``200``), never as a crash. The server is threaded (:class:`~http.server.ThreadingHTTPServer`),
speaks HTTP/1.1 keep-alive, and times idle connections out. Every answer takes its moment from
the clock it was given (default :func:`~jpki.clock.default_clock`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import unquote

from cryptography.hazmat.primitives.serialization import Encoding

from jpki.clock import Clock, default_clock
from jpki.names import NameStyle, Tree
from jpki.ocsp import error_response
from jpki.pki_store import PkiStore

__all__ = ["DEFAULT_HOST", "MAX_BODY", "PkiServer"]

DEFAULT_HOST: Final = "127.0.0.1"
MAX_BODY: Final = 64 * 1024
IDLE_TIMEOUT: Final = 10.0
_LOG = logging.getLogger("jpki.service")

_LIST = re.compile(r"/(crl|arl|ca)/(test|production)-(auth|sign)-g([0-9]{1,4})\.(crl|crt)")
_OCSP = re.compile(r"/ocsp/(test|production)-(auth|sign)(?:/(.*))?", re.DOTALL)
_SUFFIX = {"crl": "crl", "arl": "crl", "ca": "crt"}


class _Handler(BaseHTTPRequestHandler):
    server: PkiServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    # one segment per response (headers and body), sent at once: no Nagle / delayed-ACK stalls
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "mynacard-pki"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        _LOG.info("%s %s", self.address_string(), format % args)

    # --- replies ----------------------------------------------------------------------------

    def _reply(
        self, status: HTTPStatus, body: bytes, content_type: str, *, allow: str | None = None
    ) -> None:
        self.send_response(status)
        if allow is not None:
            self.send_header("Allow", allow)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _fail(self, status: HTTPStatus, message: str, *, close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._reply(status, f"{status.value} {message}\n".encode(), "text/plain; charset=utf-8")

    # --- routing ----------------------------------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            _LOG.exception("internal error answering %s %s", self.command, self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _get(self) -> None:
        path = self._path()
        if path == "/":
            self._reply(HTTPStatus.OK, self.server.index().encode(), "text/plain; charset=utf-8")
            return
        listing = _LIST.fullmatch(path)
        if listing and _SUFFIX[listing.group(1)] == listing.group(5):
            self._publication(listing)
            return
        ocsp = _OCSP.fullmatch(self.path)  # the whole path: the encoded request may hold '/'s
        if ocsp and ocsp.group(3) is not None:
            self._ocsp(ocsp, _decode_get(ocsp.group(3)))
            return
        if ocsp:
            self._method_not_allowed("POST")
            return
        self._fail(HTTPStatus.NOT_FOUND, "not found")

    def _method_not_allowed(self, allowed: str) -> None:
        body = b"405 method not allowed\n"
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, body, "text/plain; charset=utf-8", allow=allowed)

    def _post(self) -> None:
        path = self._path()
        ocsp = _OCSP.fullmatch(path)
        if ocsp is None or ocsp.group(3) is not None:
            known = path == "/" or _LIST.fullmatch(path) is not None
            if known or ocsp is not None:
                self.close_connection = True  # the body is not read
                self._method_not_allowed("GET, HEAD")
            else:
                self._fail(HTTPStatus.NOT_FOUND, "not found", close=True)
            return
        body = self._body()
        if body is not None:
            self._ocsp(ocsp, body)

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._fail(HTTPStatus.NOT_IMPLEMENTED, "chunked bodies are not accepted", close=True)
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "Content-Length required", close=True)
            return None
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._fail(HTTPStatus.BAD_REQUEST, "bad Content-Length", close=True)
            return None
        if length > MAX_BODY:
            self._fail(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes", close=True
            )
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    # --- answers ----------------------------------------------------------------------------

    def _publication(self, match: re.Match[str]) -> None:
        kind, style, tree = match.group(1), NameStyle(match.group(2)), Tree(match.group(3))
        generation = int(match.group(4))
        store = self.server.store
        declared = [g.generation for g in store.declaration.trees[tree].generations]
        if style not in store.declaration.styles or generation not in declared:
            self._fail(HTTPStatus.NOT_FOUND, "no such CA generation")
            return
        moment = self.server.clock.now()
        if kind == "ca":
            body = store.authority(tree, style, generation).certificate.public_bytes(Encoding.DER)
            self._reply(HTTPStatus.OK, body, "application/pkix-cert")
            return
        make = store.crl if kind == "crl" else store.arl
        crl = make(tree, style, generation, at=moment)
        self._reply(HTTPStatus.OK, crl.public_bytes(Encoding.DER), "application/pkix-crl")

    def _ocsp(self, match: re.Match[str], request: bytes | None) -> None:
        style, tree = NameStyle(match.group(1)), Tree(match.group(2))
        store = self.server.store
        if style not in store.declaration.styles:
            self._fail(HTTPStatus.NOT_FOUND, "no such responder")
            return
        if request is None:
            answer = error_response("malformed_request")
        else:
            answer = store.ocsp_response(
                request, tree=tree, style=style, at=self.server.clock.now()
            )
        self._reply(HTTPStatus.OK, answer, "application/ocsp-response")


def _decode_get(text: str) -> bytes | None:
    """The DER of a GET request path segment (URL- then base64-encoded), None if not."""
    if len(text) > 2 * MAX_BODY:
        return None
    try:
        encoded = unquote(text, errors="strict").strip()
        encoded = encoded.replace("-", "+").replace("_", "/")  # accept base64url too
        encoded += "=" * (-len(encoded) % 4)
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


class PkiServer(ThreadingHTTPServer):
    """CRLs, ARLs, CA certificates and OCSP of one :class:`PkiStore` over HTTP."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        store: PkiStore,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        """Bind ``host``:``port`` (0: any free port) now; serve once :meth:`start` is called."""
        self.store = store
        self.clock: Clock = clock if clock is not None else default_clock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of this server."""
        host = str(self.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def index(self) -> str:
        """The plain-text index: every route this server answers."""
        named = self.store.declaration.base_url
        lines = [f"mynacard test PKI at {self.url} (its certificates name {named})"]
        for style in self.store.declaration.styles:
            for tree in Tree:
                lines.append(f"POST {self.store.ocsp_path(tree, style)}")
                for generation in self.store.declaration.trees[tree].generations:
                    name = f"{style.value}-{tree.value}-g{generation.generation}"
                    lines += [
                        f"GET  /{kind}/{name}.{_SUFFIX[kind]}" for kind in ("crl", "arl", "ca")
                    ]
        return "\n".join(lines) + "\n"

    def start(self) -> PkiServer:
        """Serve in a background daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name=f"pki-server-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> PkiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
