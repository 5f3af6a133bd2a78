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
bodies are refused (``501``). Content-Length is ASCII digits only (no sign, no inner space, no
``_``); repeated fields or a comma list must all state the same length (then that length is used,
as RFC 9112 section 6.3 allows), else ``400``. OCSP errors travel inside OCSP (``malformedRequest``
etc., HTTP ``200``), never as a crash. Every answer takes its moment from the clock it was given
(default :func:`~jpki.clock.default_clock`).

The server is threaded (:class:`~http.server.ThreadingHTTPServer`) and speaks HTTP/1.1
keep-alive, within two bounds against slow or piled-up clients:

* a deadline per request (``request_timeout``, default :data:`REQUEST_TIMEOUT`): its request
  line, headers and body must all arrive within it, counted from the end of the previous answer
  (so an idle keep-alive connection lasts no longer either), however slowly the bytes trickle
  in; then the connection is closed, after a ``408`` if part of a request (or nothing at all on
  a fresh connection) had come and nothing had been answered. An idle keep-alive connection is
  closed silently: a ``408`` there could cross the client's next request. Each answer, too, must
  be sent within the same bound.
* a cap on open connections (``max_connections``, default :data:`MAX_CONNECTIONS`): a connection
  beyond it is answered ``503`` (``Connection: close``, ``Retry-After``) from the accepting
  thread, without a handler thread, closed, and counted in
  :attr:`PkiServer.refused_connections`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

from cryptography.hazmat.primitives.serialization import Encoding

from jpki.clock import Clock, default_clock
from jpki.names import NameStyle, Tree
from jpki.ocsp import error_response
from jpki.pki_store import PkiStore

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["DEFAULT_HOST", "MAX_BODY", "MAX_CONNECTIONS", "REQUEST_TIMEOUT", "PkiServer"]

DEFAULT_HOST: Final = "127.0.0.1"
MAX_BODY: Final = 64 * 1024
REQUEST_TIMEOUT: Final = 10.0
"""Seconds a whole request (or the wait for the next one on a keep-alive connection) may take."""
MAX_CONNECTIONS: Final = 64
"""Connections served at once; more are answered ``503``."""
_LOG = logging.getLogger("jpki.service")
_DIGITS = re.compile(r"[0-9]+")
_BUSY_BODY = b"503 too many connections\n"
_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Server: mynacard-pki\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
    b"Cache-Control: no-store\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n" + _BUSY_BODY
)

_LIST = re.compile(r"/(crl|arl|ca)/(test|production)-(auth|sign)-g([0-9]{1,4})\.(crl|crt)")
_OCSP = re.compile(r"/ocsp/(test|production)-(auth|sign)(?:/(.*))?", re.DOTALL)
_SUFFIX = {"crl": "crl", "arl": "crl", "ca": "crt"}


class _DeadlineSocket(io.RawIOBase):
    """A connected socket as a raw stream whose every read and write ends by one deadline.

    A per-``recv`` timeout alone lets a client trickling a byte at a time hold the connection
    for ever; here each ``recv`` / ``send`` waits at most until the deadline set by :meth:`arm`.
    """

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        """Wrap ``connection`` (not closed with this stream), armed for ``seconds``."""
        super().__init__()
        self._connection = connection
        self._deadline = 0.0
        self.expired = False
        """The deadline passed (or a wait timed out) since the last :meth:`arm`."""
        self.received = 0
        """Bytes received since the last :meth:`arm`."""
        self.arm(seconds)

    def arm(self, seconds: float) -> None:
        """Every read and write from now on must be done within ``seconds``."""
        self._deadline = time.monotonic() + seconds
        self.expired = False
        self.received = 0

    def _wait_bound(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise TimeoutError("deadline passed")
        self._connection.settimeout(remaining)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._connection.fileno()

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._wait_bound()
        try:
            count = self._connection.recv_into(buffer)
        except TimeoutError:
            self.expired = True
            raise
        self.received += count
        return count

    def write(self, data: ReadableBuffer) -> int:
        self._wait_bound()
        try:
            return self._connection.send(data)
        except TimeoutError:
            self.expired = True
            raise


class _Handler(BaseHTTPRequestHandler):
    server: PkiServer
    protocol_version = "HTTP/1.1"
    # one segment per response (headers and body), sent at once: no Nagle / delayed-ACK stalls
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "mynacard-pki"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        _LOG.info("%s %s", self.address_string(), format % args)

    # --- deadlines --------------------------------------------------------------------------

    def setup(self) -> None:
        """The connection's streams, every read and write bounded by :class:`_DeadlineSocket`."""
        self.connection = self.request
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self._stream = _DeadlineSocket(self.connection, self.server.request_timeout)
        self._requests_begun = 0
        self._answered = False
        self.rfile = io.BufferedReader(self._stream)
        self.wfile = io.BufferedWriter(self._stream, self.wbufsize)

    def handle_one_request(self) -> None:
        """One request within the deadline; if it runs out unanswered, ``408`` and close."""
        self._requests_begun += 1
        self._answered = False
        # what a reply needs, before the request line has set them (if it ever arrives)
        self.requestline, self.command, self.request_version = "", "", self.protocol_version
        self._stream.arm(self.server.request_timeout)
        super().handle_one_request()  # a read past the deadline: TimeoutError, logged, closed
        if not self._stream.expired:
            return
        self.close_connection = True
        self.server.count_timeout()
        begun = self._stream.received > 0 or self._requests_begun == 1
        if begun and not self._answered:
            with contextlib.suppress(OSError):
                self._fail(HTTPStatus.REQUEST_TIMEOUT, "request not received in time")
                self.wfile.flush()

    def send_response(self, code: int, message: str | None = None) -> None:
        """Mark the request answered; the answer gets a deadline of its own."""
        self._answered = True
        self._stream.arm(self.server.request_timeout)
        super().send_response(code, message)

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
        length_fields = self.headers.get_all("Content-Length")
        if not length_fields:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "Content-Length required", close=True)
            return None
        length = _content_length(length_fields)
        if length is None:
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


def _content_length(fields: list[str]) -> int | None:
    """The one length all Content-Length ``fields`` state (each maybe a comma list), else None.

    Each value is ASCII digits with optional surrounding spaces / tabs; a sign, inner space or
    any other character, or two values that disagree, make the framing unusable (None).
    """
    lengths: set[int] = set()
    for field in fields:
        for item in field.split(","):
            digits = item.strip(" \t")
            if _DIGITS.fullmatch(digits) is None:
                return None
            significant = digits.lstrip("0") or "0"
            # past MAX_BODY either way; int() of thousands of digits would be refused anyway
            lengths.add(int(significant) if len(significant) <= 18 else MAX_BODY + 1)
    return lengths.pop() if len(lengths) == 1 else None


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
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """Bind ``host``:``port`` (0: any free port) now; serve once :meth:`start` is called.

        ``request_timeout``: seconds for each whole request (and each answer); ``max_connections``:
        connections served at once, more are refused with ``503``.
        """
        if not 0 < request_timeout < math.inf:
            raise ValueError(f"request_timeout must be a positive number, not {request_timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self.store = store
        self.clock: Clock = clock if clock is not None else default_clock()
        self.request_timeout = float(request_timeout)
        self.max_connections = max_connections
        self.refused_connections = 0
        """Connections answered ``503`` because :attr:`max_connections` were open."""
        self.timed_out_requests = 0
        """Requests (or answers) whose deadline passed; their connections were closed."""
        self._open = 0
        self._counts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def active_connections(self) -> int:
        """Connections being served now (each holds one handler thread)."""
        with self._counts_lock:
            return self._open

    def count_timeout(self) -> None:
        """Count one request whose deadline passed (called by the handler)."""
        with self._counts_lock:
            self.timed_out_requests += 1

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        """A handler thread for the connection, or ``503`` if :attr:`max_connections` are open."""
        with self._counts_lock:
            admitted = self._open < self.max_connections
            if admitted:
                self._open += 1
            else:
                self.refused_connections += 1
        if not admitted:
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._counts_lock:
            self._open -= 1

    def _refuse(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        """``503`` and close, in the accepting thread: nothing here may block."""
        _LOG.info("%s refused: %d connections open", client_address, self.max_connections)
        connection = request[1] if isinstance(request, tuple) else request
        with contextlib.suppress(OSError):
            connection.setblocking(False)
            connection.send(_BUSY)
            # what has already come is read, so that closing does not reset the connection
            connection.recv(MAX_BODY)
        self.shutdown_request(request)

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
