"""The hub's console: the people of every site (the doors share them), the devices and their status,
and the decisions the doors reported.

Logins are hub admin accounts (edge.hub.admins.authenticate: salted scrypt, growing waits
and the lockout kept in PostgreSQL, every refusal audited there). Every change is the
call `edge-verify hub` makes (edge.hub.people): enrolling a person for a site from
uploaded photos (`hub enroll --images`: the kiosk's quality gates, one-person and
duplicate checks), renaming (`hub rename`) and removing (`hub remove`); each is one
change in the site's feed and one audit row, and reaches every door of the site through
the feed. Enrollment at the camera stays at the kiosks, where the person stands.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from edge.console import html
from edge.console.app import ConsoleApp
from edge.console.html import esc
from edge.console.settings import ConsoleSettings, from_table
from edge.console.web import Request, Response, Router
from edge.enroll.capture import upload_shots
from edge.exc import ConfigError, EdgeVerifyError
from edge.hub import admins, people
from edge.hub.db import HubDB
from edge.hub.home import load_settings
from edge.pipeline import FacePipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

RECENT_EVENTS = 50
MAX_PHOTOS = 12  # photos of one person in one enrollment


def console_settings(home: Path) -> ConsoleSettings:
    """The [console] table of HOME/hub.toml (absent: the console is off)."""
    path = home / "hub.toml"
    try:
        table = tomllib.loads(path.read_text()).get("console", {})
    except FileNotFoundError:
        raise ConfigError(f"no hub at {home} (no hub.toml): run `edge-verify hub init` first") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [console] must be a table")
    return from_table(table, home)


class HubConsole(ConsoleApp):
    product = "edge-verify hub console"
    nav = (("/people", "People"), ("/devices", "Devices"), ("/decisions", "Decisions"))
    login_fields = (html.field("Admin", "admin", extra=' autocomplete="username"')
                    + html.field("Password", "password", kind="password", extra=' autocomplete="current-password"'))
    home = "/people"

    def __init__(self, home: Path, idle_s: float | None = None, pipeline=None):
        self.settings = load_settings(Path(home))
        self._pipeline = pipeline
        self._pipeline_lock = threading.Lock()
        super().__init__(idle_s if idle_s is not None else console_settings(Path(home)).session_s)

    def routes(self, router: Router) -> None:
        router.add("GET", "/people", self.people_page)
        router.add("POST", "/people/enroll", self.people_enroll)
        router.add("POST", "/people/rename", self.people_rename)
        router.add("POST", "/people/remove", self.people_remove)
        router.add("GET", "/devices", self.devices_page)
        router.add("GET", "/decisions", self.decisions_page)

    def db(self) -> HubDB:
        return HubDB(self.settings.dsn)  # one connection per request: psycopg connections are not shared

    def pipeline(self):
        """The face pipeline for enrollments from photos (the default engine, as `hub enroll` loads it)."""
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = FacePipeline.load()
            return self._pipeline

    def authenticate(self, form: dict, peer: str) -> str:
        with self.db() as db:
            actor = admins.authenticate(db, form.get("admin", ""), form.get("password") or None)
        return f"{actor} (console, {peer})"

    def record(self, actor: str, action: str, details: dict) -> None:
        with self.db() as db:
            db.record(actor, action, "console", details)

    def people_page(self, request: Request) -> Response:
        csrf = request.session.csrf
        with self.db() as db:
            sites = db.sites()
            devices = db.devices()
            sections = []
            for site in sites:
                doors = [device["name"] for device in devices if device["site"] == site["name"]
                         and device["revoked_at"] is None]
                rows = []
                where = f'<input type="hidden" name="site" value="{esc(site["name"])}">'
                for person in db.people(site["name"]):
                    who = f'<input type="hidden" name="name" value="{esc(person["name"])}">'
                    rename = html.form("/people/rename", csrf, where + who + html.field(
                        "New name", "new", extra=' maxlength="200"'), "Rename", css="inline rename")
                    remove = html.form("/people/remove", csrf, where + who, "Remove…", css="inline danger")
                    rows.append([f'<span class="person">{esc(person["name"])}</span>', esc(person["templates"]),
                                 esc(person["origin"]), esc(person["enrolled_at"][:19]), rename + remove])
                table = (html.table(["Name", "Templates", "Enrolled by", "Enrolled (UTC)", ""], rows, css="people")
                         if rows else html.notice("Nobody is enrolled at this site.", "info"))
                enroll = html.form("/people/enroll", csrf, where + html.field(
                    "Name", "name", extra=' autocomplete="off" maxlength="200"') + html.field(
                    f"Photos of this person only (1 to {MAX_PHOTOS}; JPEG, PNG, BMP or WebP)", "photos", kind="file",
                    extra=' accept="image/jpeg,image/png,image/bmp,image/webp" multiple'),
                    "Enroll for every door", css="enroll", upload=True)
                sections.append(f'<h2>Site {esc(site["name"])}</h2><p class="muted">Doors: '
                                f'{esc(", ".join(doors) or "none yet")}; offline policy {esc(site["offline_policy"])}; '
                                f'change {esc(site["last_seq"])}.</p>{table}<h3>Enroll a person at site '
                                f'{esc(site["name"])} from photos</h3><p class="muted">The photos pass the '
                                'checks of a door (quality, one person, nobody enrolled under another name); the '
                                'person is then enrolled at every door of the site.</p>' + enroll)
        return self.page(request, "People across the doors", "".join(sections) or html.notice("No sites yet.", "info"))

    def people_enroll(self, request: Request) -> Response:
        """`edge-verify hub enroll NAME --site SITE --images ...` with the uploaded photos."""
        form = request.form
        site, name = form.get("site", ""), form.get("name", "")
        photos = [(upload.filename, upload.data) for upload in request.files if upload.field == "photos"]
        if not photos or len(photos) > MAX_PHOTOS:
            self.flash(request, "error", f"choose 1 to {MAX_PHOTOS} photos of the person (got {len(photos)})")
            return Response.redirect("/people")
        lines: list[str] = []
        try:
            with self.db() as db:
                result = people.enroll_photos(self.settings.home, db, site, name, upload_shots(photos),
                                              request.session.actor, self.pipeline(), report=lines.append)
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            rejected = "".join(f"; {item['frame']} not used: {'; '.join(item['reasons'])}"
                               for item in result["rejected"])
            self.flash(request, "ok", f"enrolled {result['name']} at site {site}: {result['templates']} templates "
                                      f"from {len(photos)} photos (change {result['seq']}); every door of the site "
                                      f"follows{rejected}")
        return Response.redirect("/people")

    def people_rename(self, request: Request) -> Response:
        """`edge-verify hub rename NAME NEW_NAME --site SITE`."""
        form = request.form
        site, old, new = form.get("site", ""), form.get("name", ""), form.get("new", "")
        try:
            with self.db() as db:
                result = people.rename_person(self.settings.home, db, site, old, new, request.session.actor)
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            self.flash(request, "ok", f"renamed {old} to {result['name']} at site {site} (change {result['seq']}); "
                                      "every door of the site follows")
        return Response.redirect("/people")

    def people_remove(self, request: Request) -> Response:
        form, session = request.form, request.session
        site, name = form.get("site", ""), form.get("name", "")
        if form.get("confirm") != "yes":
            return self.page(request, "Remove a person", self.confirm(
                "/people/remove", session.csrf, f"Erase {name} at site {site}, at every door of it? This cannot be "
                "undone.", {"site": site, "name": name}, f"Erase {name}", "/people"), active="/people")
        try:
            with self.db() as db:
                result = people.remove_person(db, site, name, session.actor)
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            self.flash(request, "ok", f"removed {name} at site {site}: {result['templates_erased']} templates erased "
                                      f"(change {result['seq']}); every door of the site follows")
        return Response.redirect("/people")

    def devices_page(self, request: Request) -> Response:
        with self.db() as db:
            devices = db.devices()
        rows = [[esc(device["name"]), esc(device["site"]),
                 html.status_word(None if device["revoked_at"] else device["status"] == "online", "online",
                                  device["status"] or "never seen", "revoked"),
                 esc((device["last_seen"] or "never")[:19]), esc(device["created_at"][:19]),
                 esc((device["revoked_at"] or "")[:19])] for device in devices]
        body = (html.table(["Device", "Site", "Status", "Last seen (UTC)", "Added", "Revoked"], rows, css="devices")
                if rows else html.notice("No devices yet (edge-verify hub add-device).", "info"))
        return self.page(request, "Devices", body)

    def decisions_page(self, request: Request) -> Response:
        with self.db() as db:
            rows = db.connection.execute(
                "SELECT device, site, time, person, unlock, body->>'reason', body->>'distance' FROM events "
                "ORDER BY received_at DESC LIMIT %s", (RECENT_EVENTS,)).fetchall()
            db.connection.commit()
        cells = [[esc(time_ or ""), esc(device), esc(site), esc(person or "nobody"),
                  '<span class="badge pass">unlocked</span>' if unlock else esc(reason or "refused"),
                  esc("" if distance is None else f"{float(distance):.3f}")]
                 for device, site, time_, person, unlock, reason, distance in rows]
        body = (html.table(["When (UTC)", "Door", "Site", "Who", "Decision", "Distance"], cells, css="decisions")
                if cells else html.notice("No decisions reported yet.", "info"))
        return self.page(request, "Recent decisions at every door", body)
