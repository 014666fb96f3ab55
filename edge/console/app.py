"""What the kiosk's and the hub's consoles share: login, sessions, CSRF, static files.

Every request goes through ``ConsoleApp.handle``: static files and the login page are
open; every other page needs a session; every POST (every change: no GET ever
changes anything) must carry the session's CSRF token and, when the browser sends
an Origin, come from the console's own origin. A subclass supplies the pages
(``routes``), the credential check (``authenticate``) and the audit record
(``record``), so logins, refusals and logouts are audited where that console keeps
its audit trail (the gallery's log on a kiosk, the hub's table on the hub).
"""
from __future__ import annotations

import logging
import secrets
from importlib import resources
from edge.console import html
from edge.console.html import esc
from edge.console.sessions import COOKIE, LOGIN_COOKIE, LoginThrottle, Sessions, cookie_header, same
from edge.console.web import HTTPError, Request, Response, Router
from edge.exc import AuthError, EdgeVerifyError

log = logging.getLogger(__name__)

STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}


class ConsoleApp:
    product = "edge-verify console"
    nav: tuple = ()
    login_fields = ""  # the credential fields of the login form (HTML)
    home = "/"

    def __init__(self, idle_s: float, origin_hosts: tuple[str, ...] = ()):
        self.sessions = Sessions(idle_s)
        self.throttle = LoginThrottle()
        self.origin_hosts = origin_hosts  # host[:port] values an Origin header may name
        self.router = Router()
        self.router.add("GET", "/login", self.login_page, open=True)
        self.router.add("POST", "/login", self.login, open=True)
        self.router.add("POST", "/logout", self.logout)
        self.router.add("GET", "/static/<name>", self.static, open=True)
        self.router.add("GET", "/", lambda request: Response.redirect(self.home), open=True)
        self.routes(self.router)

    # -- for subclasses ---------------------------------------------------------------------------
    def routes(self, router: Router) -> None:
        raise NotImplementedError

    def authenticate(self, form: dict, peer: str) -> str:
        """The actor for the audit log, or AuthError (counted and audited by the credential's own rules)."""
        raise NotImplementedError

    def record(self, actor: str, action: str, details: dict) -> None:
        """Write an audit record (login, logout, refusal)."""
        raise NotImplementedError

    # -- every request ------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        handler, params, options = self.router.match(request.method, request.path)
        request.params = params
        request.session = self.sessions.get(request.cookies.get(COOKIE))
        if request.method == "POST":
            self._check_origin(request)
        if not options.get("open"):
            if request.session is None:
                if request.method == "GET" and not request.path.startswith("/api/"):
                    return Response.redirect("/login")
                raise HTTPError(401, "log in first (your session ended or was never started)")
            if request.method == "POST":
                self._check_csrf(request, request.session.csrf)
        try:
            return handler(request)
        except AuthError as error:
            raise HTTPError(403, str(error)) from None

    def _check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return  # not sent by every client; the CSRF token still guards the change
        host = origin.split("://", 1)[-1]
        if not origin.startswith("https://") or host not in self.allowed_hosts(request):
            raise HTTPError(403, f"refused: this change came from another site ({origin})")

    def allowed_hosts(self, request: Request) -> tuple:
        return self.origin_hosts + ((request.headers["host"],) if "host" in request.headers else ())

    @staticmethod
    def _check_csrf(request: Request, expected: str) -> None:
        given = request.headers.get("x-csrf-token") or request.form.get("csrf")
        if not same(expected, given):
            raise HTTPError(403, "refused: the form's security token is missing or stale; reload the page and "
                                 "try again")

    # -- pages every console has ------------------------------------------------------------------------
    @staticmethod
    def flash(request: Request, kind: str, text: str) -> None:
        """A one-line notice for the next page of this session (after a change's redirect)."""
        request.session.data["flash"] = (kind, text)

    def page(self, request: Request, title: str, body: str, active: str = "") -> Response:
        session = request.session
        flash = session.data.pop("flash", None) if session else None
        if flash is not None:
            body = html.notice(flash[1], flash[0]) + body
        return Response.html(html.layout(title, body, self.nav, active or request.path,
                                         csrf=session.csrf if session else None,
                                         who=session.actor if session else None, product=self.product))

    def login_page(self, request: Request, message: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        body = (html.notice(message, "error") if message else "") + html.form(
            "/login", token, self.login_fields, "Log in", css="login")
        response = Response.html(html.layout("Log in", body, product=self.product), status)
        return response.cookie(cookie_header(LOGIN_COOKIE, token))

    def login(self, request: Request) -> Response:
        form = request.form
        if not same(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
            raise HTTPError(403, "refused: the login form's security token is missing or stale; reload the page")
        peer = request.client
        wait = self.throttle.wait_left(peer)
        if wait > 0:
            self.record(f"console user at {peer}", "console-login-throttled", {"peer": peer, "wait_s": round(wait)})
            response = self.login_page(request, f"too many wrong logins from {peer}: try again in {wait:.0f} s", 429)
            response.headers.append(("Retry-After", str(int(wait) + 1)))
            return response
        with self.throttle.checking:
            try:
                actor = self.authenticate(form, peer)
            except AuthError as error:
                failures = self.throttle.failed(peer)
                self.record(f"console user at {peer}", "console-login-refused", {"peer": peer, "failures": failures,
                                                                                 "reason": str(error)})
                return self.login_page(request, str(error), 403)
        self.throttle.succeeded(peer)
        session = self.sessions.create(actor, peer)
        self.record(actor, "console-login", {"peer": peer})
        return Response.redirect(self.home).cookie(cookie_header(COOKIE, session.id)).cookie(
            cookie_header(LOGIN_COOKIE, "", max_age=0))

    def logout(self, request: Request) -> Response:
        self.sessions.drop(request.session.id)
        self.record(request.session.actor, "console-logout", {"peer": request.client})
        return Response.redirect("/login").cookie(cookie_header(COOKIE, "", max_age=0))

    def static(self, request: Request) -> Response:
        name = request.params["name"]
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if suffix not in STATIC_TYPES or "/" in name or name.startswith("."):
            raise HTTPError(404, "no such file")
        try:
            data = resources.files("edge.console").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise HTTPError(404, "no such file") from None
        return Response(data, 200, STATIC_TYPES[suffix])

    # -- helpers for pages ------------------------------------------------------------------------------
    @staticmethod
    def failure(error: EdgeVerifyError) -> str:
        return html.notice(str(error), "error")

    @staticmethod
    def confirm(action: str, csrf: str, question: str, fields: dict, button: str, back: str) -> str:
        hidden = "".join(f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'
                         for name, value in {**fields, "confirm": "yes"}.items())
        return (f'<p class="question">{esc(question)}</p>' + html.form(action, csrf, hidden, button, css="confirm")
                + f'<p><a href="{esc(back)}">Cancel</a></p>')

