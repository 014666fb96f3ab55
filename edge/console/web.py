"""A small HTTPS server with a router: the console's whole web framework.

Why the standard library (http.server + ssl) and not a web framework: the console
serves a dozen pages to one or two people at a kiosk, on loopback or one interface;
the kiosk's runtime stays at its few dependencies (no framework, template engine or
WSGI server to keep patched on every door); and everything that matters for its
security is here in plain sight and tested: TLS on every connection, the headers of
every answer, the size and time limits, the number of connections. http.server's own
checks are basic, which is why these limits are set here:

* TLS is negotiated on the connection's own thread, with a time limit, so a client
  that never finishes its handshake holds no one else up;
* at most MAX_CONNECTIONS connections at once (more are closed at once), each read
  with a time limit (slow clients are cut off), headers limited by http.client (100
  lines of at most 64 KiB), bodies to MAX_BODY bytes (refused before they are read), an
  upload of photos (multipart/form-data) to MAX_UPLOAD bytes in at most MAX_PARTS parts;
* only GET, HEAD and POST; every answer carries the Content-Security-Policy (scripts,
  styles and images from the console itself only, no inline code, no framing) and
  ``Cache-Control: no-store`` (pages show faces and names).
"""
from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_UPLOAD = 16 * 1024 * 1024  # photos of one person for an enrollment at the hub: a few phone photos
MAX_PARTS = 24  # form fields and files of one upload
MULTIPART = "multipart/form-data"
MAX_CONNECTIONS = 16
READ_TIMEOUT_S = 30.0
HANDSHAKE_TIMEOUT_S = 10.0
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the console's own
    # form posts, and the origin check needs the real one
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


class HTTPError(Exception):
    """An answer other than 200, with a one-line reason shown to the user."""

    def __init__(self, status: int, message: str, headers: tuple = ()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    cookies: dict
    body: bytes
    client: str  # the peer's address
    params: dict = field(default_factory=dict)  # from the route pattern
    session: object = None
    _upload: Optional[tuple] = field(default=None, repr=False)

    @property
    def form(self) -> dict:
        """A url-encoded POST body, or the text fields of an upload: {name: first value}."""
        kind = self.media_type
        if kind == MULTIPART:
            return self._parsed_upload()[0]
        if kind != "application/x-www-form-urlencoded":
            return {}
        try:
            fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HTTPError(400, "the form is not UTF-8") from None
        return {name: values[0] for name, values in fields.items()}

    @property
    def media_type(self) -> str:
        """The body's media type, lower case, without its parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def files(self) -> list:
        """The files of an upload (multipart/form-data), in the order sent: [Upload]."""
        if self.media_type != MULTIPART:
            return []
        return self._parsed_upload()[1]

    def _parsed_upload(self) -> tuple:
        if self._upload is None:
            self._upload = parse_multipart(self.body, self.headers.get("content-type", ""))
        return self._upload

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list = field(default_factory=list)

    @classmethod
    def html(cls, text: str, status: int = 200) -> "Response":
        return cls(text.encode("utf-8"), status)

    @classmethod
    def json(cls, data, status: int = 200) -> "Response":
        return cls(json.dumps(data).encode(), status, "application/json")

    @classmethod
    def redirect(cls, location: str) -> "Response":
        # 303: after a POST the browser GETs the next page (no change is ever repeated by a reload)
        return cls(b"", 303, headers=[("Location", location)])

    def cookie(self, value: str) -> "Response":
        self.headers.append(("Set-Cookie", value))
        return self


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Upload:
    field: str
    filename: str  # as the browser names it: shown, never trusted as a path
    content_type: str
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> tuple[dict, list]:
    """(text fields, [Upload]) of a multipart/form-data body; HTTPError 400 when it is malformed.

    Written here rather than taken from the email package: the body is at most MAX_UPLOAD bytes, already
    read, and the few rules a browser's form upload follows are checked one by one."""
    boundary = _boundary(content_type)
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        raise HTTPError(400, "malformed upload: it does not start with its boundary")
    fields: dict = {}
    files: list = []
    sections = (b"\r\n" + body).split(b"\r\n" + delimiter)
    for number, section in enumerate(sections[1:]):
        if section.startswith(b"--"):
            return fields, files  # the closing delimiter; what follows it is an epilogue, ignored
        if number >= MAX_PARTS:
            raise HTTPError(413, f"the upload has too many parts (at most {MAX_PARTS})")
        head, separator, content = section.lstrip(b" \t").removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise HTTPError(400, "malformed upload: a part without its headers")
        headers = _part_headers(head)
        disposition = headers.get("content-disposition", "")
        name, filename = _parameter(disposition, "name"), _parameter(disposition, "filename")
        if not disposition.lower().startswith("form-data") or name is None:
            raise HTTPError(400, "malformed upload: a part that is not a form field")
        if filename is None:
            try:
                fields.setdefault(name, content.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPError(400, "the form is not UTF-8") from None
        elif content or filename:  # a file input left empty sends no name and no bytes: nothing chosen
            files.append(Upload(name, filename, headers.get("content-type", ""), content))
    raise HTTPError(400, "malformed upload: it ends without its closing boundary")


def _boundary(content_type: str) -> bytes:
    found = re.search(r';\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))', content_type, re.IGNORECASE)
    if found is None:
        raise HTTPError(400, "malformed upload: no boundary in its Content-Type")
    return (found.group(1) or found.group(2)).encode("latin-1")


def _part_headers(head: bytes) -> dict:
    headers = {}
    for line in head.split(b"\r\n"):
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if not colon:
            raise HTTPError(400, "malformed upload: a part's header without a colon")
        headers[name.strip().lower()] = value.strip()
    return headers


def _parameter(header: str, name: str) -> Optional[str]:
    """A quoted parameter of a Content-Disposition header (browsers quote them, a quote inside as %22)."""
    found = re.search(r'(?:^|;)\s*' + name + r'="((?:[^"\\]|\\.)*)"', header, re.IGNORECASE)
    return None if found is None else re.sub(r"\\(.)", r"\1", found.group(1))


class Router:
    """Routes by method and path; ``<name>`` matches one path segment."""

    def __init__(self):
        self._routes: list[tuple[str, re.Pattern, Handler, dict]] = []

    def add(self, method: str, pattern: str, handler: Handler, **options) -> None:
        regex = "^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method, re.compile(regex), handler, options))

    def match(self, method: str, path: str) -> tuple[Handler, dict, dict]:
        allowed = False
        for route_method, regex, handler, options in self._routes:
            found = regex.match(path)
            if not found:
                continue
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, found.groupdict(), options
            allowed = True
        if allowed:
            raise HTTPError(405, f"{method} is not allowed here", (("Allow", "GET, HEAD" if method == "POST"
                                                                          else "POST"),))
        raise HTTPError(404, "no such page")


class ConsoleServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with TLS per connection and a cap on connections."""

    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address: tuple[str, int], app, tls: Optional[ssl.SSLContext]):
        self.app = app
        self.tls = tls
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: refused, not queued
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                log.info("TLS handshake with %s failed: %s", client_address[0], error)
                return
        request.settimeout(READ_TIMEOUT_S)
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.tls is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        log.exception("console: error serving %s", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server_version = "edge-verify-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._serve("GET")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_POST(self):
        self._serve("POST")

    def _other(self):
        self._send(Response.html(_error_page(405, "only GET and POST are used here"), 405), "GET")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _other

    def _serve(self, method: str) -> None:
        try:
            request = self._request(method)
            response = self.server.app.handle(request)
        except HTTPError as error:
            response = Response.html(_error_page(error.status, error.message), error.status)
            response.headers.extend(error.headers)
        except (socket.timeout, ConnectionError):
            self.close_connection = True
            return
        except Exception:  # a bug in one page: said as such, logged, and the console keeps serving
            log.exception("console: %s %s failed", method, self.path)
            response = Response.html(_error_page(500, "the console failed on this page; see its log"), 500)
        self._send(response, method)

    def _request(self, method: str) -> Request:
        parts = urlsplit(self.path)
        length = self.headers.get("Content-Length")
        if method == "POST":
            try:
                size = int(length or 0)
            except ValueError:
                raise HTTPError(400, "bad Content-Length") from None
            kind = self.headers.get("Content-Type", "").lower()
            limit = MAX_UPLOAD if kind.startswith("image/") or kind.startswith(MULTIPART) else MAX_BODY
            if size < 0 or size > limit:
                self.close_connection = True
                raise HTTPError(413, f"the request is too large (at most {limit} bytes)")
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise HTTPError(411, "send a Content-Length")
            body = self.rfile.read(size) if size else b""
        elif length not in (None, "0"):
            self.close_connection = True
            raise HTTPError(400, f"a {method} request carries no body")
        else:
            body = b""
        cookies = {}
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
            cookies = {name: morsel.value for name, morsel in jar.items()}
        except CookieError:
            cookies = {}
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(method, parts.path, parse_qs(parts.query), headers, cookies, body, self.client_address[0])

    def _send(self, response: Response, method: str) -> None:
        self.send_response(response.status)
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format, *args):
        log.debug("console %s: %s", self.client_address[0], format % args)


def _error_page(status: int, message: str) -> str:
    title = f"{status} {HTTPStatus(status).phrase}" if status in HTTPStatus._value2member_map_ else str(status)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<link rel=\"icon\" href=\"/static/icon.svg\"><link rel=\"stylesheet\" href=\"/static/console.css\"></head><body><main><h1>{escape(title)}</h1>"
            f"<p class=\"error\">{escape(message)}</p><p><a href=\"/\">Back to the console</a></p></main></body></html>")


def tls_context(certificate, private_key) -> ssl.SSLContext:
    """Server-side TLS 1.2 or later with the console's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificate), str(private_key))
    return context
