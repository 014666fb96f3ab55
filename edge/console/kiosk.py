"""The kiosk's console: installers, technicians, and everyone's view of the recent decisions.

Logins use the kiosk's admin token (edge.gallery.auth: the same token, the same waits
after wrong tries, the same audit log as the command line). Every change is the
command line's own library call: enrollment is edge.enroll.capture.enroll with the
pose plan of `edge-verify enroll --camera` (edge.enroll.poses) and the frames of
edge.enroll.kiosk (the running daemon's, door held locked meanwhile); a person's
coverage is edge.enroll.coverage's, in the words of `edge-verify gallery show NAME`;
removal and renaming are Gallery.remove_person and Gallery.rename; the self-test is
edge.selftest.runner.run_selftest; the door test pulse is the daemon's own door (or,
with no daemon running, the self-test's door check). Each writes the audit record it
writes for the command line, with the console session as its actor.

While the daemon runs it holds the camera and the relay: the live view, the camera
hints, the identify check and enrollment take its frames (edge.daemon.share).
"""
from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode

import cv2
import numpy as np

from edge import paths
from edge.console import html
from edge.console.app import ConsoleApp
from edge.console.enrollment import EnrollJob
from edge.console.html import esc
from edge.console.web import HTTPError, Request, Response, Router
from edge.daemon import parts
from edge.daemon.decision import combined_cohort, door_threshold
from edge.daemon.share import ShareClient, socket_path
from edge.daemon.watch import LiveGallery
from edge.engines.manifest import read_manifest
from edge.enroll.capture import DEFAULT_COUNT, enroll
from edge.enroll.coverage import describe, person_coverage, verdict_words
from edge.enroll.identify import identify_rgb
from edge.enroll.kiosk import DAEMON, kiosk_frames
from edge.enroll.liveness_check import door_cues
from edge.enroll.poses import PER_POSE, PoseProgress, pose_plan
from edge.enroll.quality import MAX_YAW_DEG, MIN_SHARPNESS
from edge.exc import EdgeVerifyError, GalleryError, SourceError
from edge.gallery import authorise, open_gallery
from edge.gallery.inputs import check_name
from edge.models import registry
from edge.selftest.context import Context
from edge.selftest.runner import GROUPS, run_selftest
from edge.selftest.settings import Settings as SelftestSettings
from edge.vision.image import to_rgb

log = logging.getLogger(__name__)

ENROLL_TIMEOUT_S = 60.0
ENROLL_INTERVAL_S = 0.3
RECENT_EVENTS = 50
EVENTS_TAIL_BYTES = 256 * 1024
# Whole-frame exposure: share of pixels at the ends of the range that means the picture is clipped.
CLIPPED_SHARE = 0.05
DARK_FRAME, BRIGHT_FRAME = 50.0, 200.0


class KioskConsole(ConsoleApp):
    product = "edge-verify kiosk console"
    nav = (("/live", "Live view"), ("/enroll", "Enroll"), ("/people", "People"), ("/identify", "Identify"),
           ("/decisions", "Decisions"), ("/camera", "Camera"), ("/liveness", "Liveness"),
           ("/selftest", "Self-test"), ("/door", "Door"))
    login_fields = html.field("Admin token", "token", kind="password", extra=' autocomplete="current-password"')
    home = "/live"

    def __init__(self, settings, idle_s: float, pipeline=None):
        """``settings``: the daemon's (edge.daemon.config), so the console works on what the daemon uses."""
        self.settings = settings
        self.gallery_path = Path(settings["gallery.path"]) if settings["gallery.path"] else paths.gallery_path()
        self.key_path = Path(settings["gallery.key"]) if settings["gallery.key"] else None
        self.socket = socket_path(settings)
        self._pipeline = pipeline
        self._pipeline_lock = threading.Lock()
        self._job: Optional[EnrollJob] = None
        self._job_lock = threading.Lock()
        super().__init__(idle_s)

    def routes(self, router: Router) -> None:
        router.add("GET", "/live", self.live_page)
        router.add("GET", "/api/live/frame", self.live_frame)
        router.add("GET", "/enroll", self.enroll_page)
        router.add("POST", "/enroll", self.enroll_start)
        router.add("POST", "/enroll/cancel", self.enroll_cancel)
        router.add("GET", "/api/enroll", self.enroll_status)
        router.add("GET", "/people", self.people_page)
        router.add("GET", "/person", self.person_page)
        router.add("POST", "/people/remove", self.people_remove)
        router.add("POST", "/people/rename", self.people_rename)
        router.add("GET", "/identify", self.identify_page)
        router.add("POST", "/identify", self.identify_check)
        router.add("GET", "/decisions", self.decisions_page)
        router.add("GET", "/decisions/face/<name>", self.decision_face)
        router.add("GET", "/camera", self.camera_page)
        router.add("GET", "/liveness", self.liveness_page)
        router.add("GET", "/selftest", self.selftest_page)
        router.add("POST", "/selftest", self.selftest_run)
        router.add("GET", "/door", self.door_page)
        router.add("POST", "/door/pulse", self.door_pulse)

    # -- login and audit: the admin token's own rules -------------------------------------------------
    def authenticate(self, form: dict, peer: str) -> str:
        """The command line's check (edge.gallery.authorise): the growing wait after each wrong token, kept
        beside the gallery for every process, the lockout, a token-refused audit record per wrong token."""
        actor = authorise(self.gallery_path, form.get("token") or None, self.key_path)
        return f"{actor} (console, {peer})"

    def record(self, actor: str, action: str, details: dict) -> None:
        """Into the gallery's audit log, beside the changes; before any gallery exists, the service log only."""
        if not self.gallery_path.exists():
            log.warning("console: %s by %s %s (no gallery yet to audit in)", action, actor, details)
            return
        try:
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                gallery.audited(actor, action, "console", details, apply=lambda: None)
        except EdgeVerifyError as error:
            log.error("console: could not audit %s by %s: %s", action, actor, error)

    # -- the parts ------------------------------------------------------------------------------------
    def pipeline(self):
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = parts.load_pipeline(self.settings)
            return self._pipeline

    def manifest(self) -> dict:
        """The embedding engine's manifest (its thresholds): the loaded pipeline's, else read from the file
        the daemon's settings name, so a list of people does not load the models."""
        if self._pipeline is not None:
            return self._pipeline.manifest
        engine = self.settings.engine
        path = engine["path"] or registry.require_engine(registry.EMBEDDING, engine["precision"], engine["backend"])
        return read_manifest(path)

    def coverage(self, gallery, names: list) -> dict:
        """{name: coverage} at the door's threshold for this gallery's size (combined probes, the daemon's
        [decision] settings): edge.enroll.coverage, as `edge-verify gallery show NAME` measures it."""
        loaded = gallery.load_matrix()
        decision = self.settings.decision
        cohort = None
        try:
            manifest = self.manifest()
            threshold = door_threshold(manifest, len(loaded[2]), decision["threshold"],
                                       decision["stranger_rate"], combined=True).threshold
            cohort = combined_cohort(manifest)
        except EdgeVerifyError as error:
            log.warning("console: coverage without the door's threshold: %s", error)
            threshold = None
        return {name: person_coverage(gallery, gallery.show(name), threshold, loaded, cohort) for name in names}

    def daemon(self) -> Optional[dict]:
        """The running daemon's status, or None when none answers."""
        client = ShareClient.running(self.socket)
        if client is None:
            return None
        with client:
            try:
                return client.status()
            except SourceError:
                return None

    def shared_frame(self, form: str = "raw", after: int = 0, wait_s: float = 2.0):
        client = ShareClient.running(self.socket)
        if client is None:
            raise SourceError(f"the door daemon is not running (nothing answers on {self.socket}): start it with "
                              "`systemctl start edge-verify`; the camera is the daemon's")
        with client:
            frame = client.frame(after=after, form=form, wait_s=wait_s)
        if frame is None:
            raise SourceError("the door daemon has no new frame: check the camera (Camera page, self-test)")
        return frame

    def daemon_line(self, status: Optional[dict]) -> str:
        if status is None:
            return html.notice(f"The door daemon is not running (nothing answers on {self.socket}).", "warning")
        held = f"; {status['held']}" if status.get("held") else ""
        latency = f" ({status['frame_latency']})" if status.get("frame_latency") else ""  # absent before a face
        return (f'<p class="muted">Daemon pid {esc(status["pid"])}: camera {esc(status["source"])}, '
                f'{esc(status["fps"])} fps{esc(latency)}; door {esc(status["door"])} '
                f'{"locked" if status["locked"] else "OPEN"}; {esc(status["gallery"])}{esc(held)}</p>')

    # -- live view --------------------------------------------------------------------------------------
    def live_page(self, request: Request) -> Response:
        body = self.daemon_line(self.daemon()) + live_view()
        return self.page(request, "Live view", body)

    def live_frame(self, request: Request) -> Response:
        """The newest frame (JPEG) with what was seen on it in the X-Frame-Info header; JSON when there is none."""
        try:
            after = int(request.arg("after", "0") or 0)
        except ValueError:
            raise HTTPError(400, "after must be a frame number") from None
        try:
            frame = self.shared_frame("jpeg", after, wait_s=1.0)
        except SourceError as error:
            return Response.json({"error": str(error), "seq": after})
        info = {**frame.meta, "guidance": guidance(frame.meta, self.settings["decision.min_face_px"])}
        job = self._job
        if job is not None and job.running:
            info["enrolling"] = job.progress.name
        return Response(frame.payload, 200, "image/jpeg",
                        headers=[("X-Frame-Info", json.dumps(info, ensure_ascii=True))])

    # -- enrollment -------------------------------------------------------------------------------------
    def enroll_page(self, request: Request) -> Response:
        job = self._job
        parts_ = [live_view(small=True)]
        if job is not None:
            parts_.append(f'<section id="enroll-progress" data-poll="/api/enroll">{progress_html(job.progress)}'
                          '</section>')
        if job is not None and job.running:
            parts_.append(html.form("/enroll/cancel", request.session.csrf, "", "Stop the enrollment"))
        else:
            fields = (html.field("Name", "name", extra=' autocomplete="off" maxlength="200"')
                      + html.field("Templates to keep", "count", str(DEFAULT_COUNT), kind="number",
                                   extra=' min="3" max="20"')
                      + '<label class="check"><input type="checkbox" name="glasses" value="yes"> '
                        'The person wears glasses (keep them on at first; a look without them is asked for '
                        'last)</label>')
            looks = ", ".join(pose.prompt for pose in pose_plan(glasses=True))
            parts_.append('<p>Ask the person to stand at arm\'s length. The page then says which look to give, in '
                          f'turn ({esc(looks)}), {PER_POSE} good frames each, and ticks each look done; the '
                          'templates that cover the face best are kept. The door stays locked while the '
                          'enrollment runs.</p>'
                          + html.form("/enroll", request.session.csrf, fields, "Start enrollment", css="enroll"))
        return self.page(request, "Enroll a person", "".join(parts_))

    def enroll_start(self, request: Request) -> Response:
        form = request.form
        try:
            name = check_name(form.get("name", ""))
            count = int(form.get("count") or DEFAULT_COUNT)
        except (GalleryError, ValueError) as error:
            self.flash(request, "error", str(error) if isinstance(error, GalleryError) else "the count is a number")
            return Response.redirect("/enroll")
        if not 3 <= count <= 20:
            self.flash(request, "error", f"templates to keep must be 3 to 20, got {count}")
            return Response.redirect("/enroll")
        plan = pose_plan(glasses=form.get("glasses") == "yes")
        poses = PoseProgress(plan, PER_POSE)
        actor = request.session.actor
        with self._job_lock:
            if self._job is not None and self._job.running:
                self.flash(request, "error", f"the enrollment of {self._job.progress.name} is still running")
                return Response.redirect("/enroll")
            self._job = EnrollJob(name, len(plan) * PER_POSE,
                                  lambda report, stop: self._enroll(name, count, plan, poses, actor, report, stop),
                                  describe_result, poses=poses).start()
        return Response.redirect("/enroll")

    def _enroll(self, name: str, count: int, plan: list, poses: PoseProgress, actor: str, report, stop):
        """What `edge-verify enroll NAME --camera [--glasses]` does, with the console's session as the actor;
        returns (EnrollResult, the person's coverage)."""
        pipeline = self.pipeline()
        uri = DAEMON if self.daemon() is not None else self.settings["source.uri"]
        with kiosk_frames(uri, self.socket, actor, f"enrollment of {name} from the console", ENROLL_TIMEOUT_S,
                          ENROLL_INTERVAL_S, report=report, stop=stop) as frames, \
                open_gallery(self.gallery_path, self.key_path, create=True, actor=actor) as gallery:
            result = enroll(name, pipeline, gallery, frames, count=count, actor=actor, report=report,
                            decision=self.settings.decision, poses=plan, per_pose=PER_POSE, progress=poses,
                            liveness=door_cues(self.settings, pipeline, report))
            return result, self.coverage(gallery, [result.name])[result.name]

    def enroll_cancel(self, request: Request) -> Response:
        job = self._job
        if job is not None:
            job.stop.set()
        return Response.redirect("/enroll")

    def enroll_status(self, request: Request) -> Response:
        job = self._job
        return Response.json(job.progress.as_dict() if job is not None else {"state": "none"})

    def wait_for_enrollment(self, timeout: Optional[float] = None) -> None:
        job = self._job
        if job is not None:
            job.join(timeout)

    # -- people -----------------------------------------------------------------------------------------
    def people_page(self, request: Request) -> Response:
        csrf = request.session.csrf
        if not self.gallery_path.exists():
            return self.page(request, "People", html.notice("Nobody is enrolled yet (no gallery).", "info"))
        try:
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                people = gallery.list_people()
                covered = self.coverage(gallery, [person["name"] for person in people])
        except EdgeVerifyError as error:
            return self.page(request, "People", self.failure(error))
        rows = []
        for person in people:
            name = person["name"]
            rename = html.form("/people/rename", csrf, f'<input type="hidden" name="old" value="{esc(name)}">'
                               + html.field("New name", "new", extra=' maxlength="200"'), "Rename", css="inline")
            remove = html.form("/people/remove", csrf, f'<input type="hidden" name="name" value="{esc(name)}">',
                               "Remove…", css="inline danger")
            found = covered[name]
            link = f'<a class="coverage {esc(found["verdict"])}" href="/person?{urlencode({"name": name})}">' \
                   f'{esc(verdict_words(found))}</a>'
            rows.append([f'<span class="person">{esc(name)}</span>', esc(person["templates"]), link,
                         esc(person["created_at"]), rename + remove])
        body = (html.table(["Name", "Templates", "Coverage", "Enrolled", ""], rows, css="people") if rows
                else html.notice("Nobody is enrolled.", "info"))
        return self.page(request, "People", f'<p>{len(people)} people enrolled.</p>{body}')

    def person_page(self, request: Request) -> Response:
        """One person: their templates (pose and yaw when taken) and the coverage of `gallery show NAME`."""
        name = request.arg("name")
        try:
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                shown = gallery.show(name)
                found = self.coverage(gallery, [shown["name"]])[shown["name"]]
        except EdgeVerifyError as error:
            return self.page(request, "Person", self.failure(error), active="/people")
        rows = [[esc(template["id"]), esc((template["quality"] or {}).get("pose", "")),
                 esc(yaw_text((template["quality"] or {}).get("yaw_deg"))), esc(template["created_at"])]
                for template in shown["templates"]]
        words, _, advice = describe(found).partition("\n")
        body = (f'<p id="person-coverage" class="coverage {esc(found["verdict"])}">{esc(words)}</p>'
                + (f'<p id="person-advice">{esc(advice.strip())}</p>' if advice else "")
                + html.table(["Template", "Pose asked", "Yaw", "Taken (UTC)"], rows, css="templates")
                + '<p><a href="/people">Back to the people</a></p>')
        return self.page(request, shown["name"], body, active="/people")

    def people_remove(self, request: Request) -> Response:
        form, session = request.form, request.session
        name = form.get("name", "")
        if form.get("confirm") != "yes":
            return self.page(request, "Remove a person", self.confirm(
                "/people/remove", session.csrf, f"Erase {name} and every template of theirs? This cannot be undone.",
                {"name": name}, f"Erase {name}", "/people"), active="/people")
        try:
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                count = gallery.remove_person(name, session.actor)
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            self.flash(request, "ok", f"removed {name}: erased {count} template{'s' if count != 1 else ''}")
        return Response.redirect("/people")

    def people_rename(self, request: Request) -> Response:
        form = request.form
        old, new = form.get("old", ""), form.get("new", "")
        try:
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                gallery.rename(old, new, request.session.actor)
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            self.flash(request, "ok", f"renamed {old} to {new}")
        return Response.redirect("/people")

    # -- identify ---------------------------------------------------------------------------------------
    def identify_page(self, request: Request) -> Response:
        answer = request.session.data.pop("identify", None)
        body = live_view(small=True) + html.form("/identify", request.session.csrf, "",
                                                 "Who is at the camera now?", css="identify")
        if answer is not None:
            body = f'<p class="answer" id="identify-answer">{esc(door_would_say(answer))}</p>' + body
        return self.page(request, "Identify check", body)

    def identify_check(self, request: Request) -> Response:
        """The door's own decision for one face (edge.enroll.identify, as `edge-verify identify`)."""
        decision = self.settings.decision
        try:
            frame = self.shared_frame("raw", wait_s=2.0)
            pipeline = self.pipeline()
            with open_gallery(self.gallery_path, self.key_path) as gallery:
                live = LiveGallery(gallery, pipeline.manifest, threshold=decision["threshold"],
                                   stranger_rate=decision["stranger_rate"])
                live.load()
                answer = identify_rgb(pipeline, live, to_rgb(frame.bgr()), f"frame {frame.meta['frame']}")
        except EdgeVerifyError as error:
            self.flash(request, "error", str(error))
        else:
            request.session.data["identify"] = answer
        return Response.redirect("/identify")

    # -- decisions ----------------------------------------------------------------------------------------
    def decisions_page(self, request: Request) -> Response:
        path = self.settings["events.file"]
        if path is None:
            return self.page(request, "Recent decisions", html.notice(
                "No events file is set ([events] file): the decisions are in the journal only "
                "(journalctl -u edge-verify).", "info"))
        events = recent_events(Path(path), RECENT_EVENTS)
        faces = self.settings["events.store_faces"]
        rows = []
        for event in reversed(events):
            cells = [esc(event.get("time", "")), esc(event.get("person") or "nobody"), decision_words(event),
                     esc("" if event.get("distance") is None else f"{event['distance']:.3f}"),
                     esc(event.get("frames_agreed", "")), esc(refusing_cue(event))]
            if faces:
                picture = Path(event["face_image"]).name if event.get("face_image") else None
                cells.append(f'<img class="face" alt="face" src="/decisions/face/{esc(picture)}">' if picture else "")
            rows.append(cells)
        headings = ["When (UTC)", "Who", "Decision", "Distance", "Frames agreed", "Cue that refused"]
        note = ("Face pictures are shown because [events] store_faces is on." if faces
                else "No face pictures: [events] store_faces is off.")
        body = (f'<p class="muted">The last {len(rows)} decisions from {esc(path)}. {esc(note)}</p>'
                + (html.table(headings + (["Face"] if faces else []), rows, css="decisions") if rows
                   else html.notice("No decisions yet.", "info")))
        return self.page(request, "Recent decisions", body)

    def decision_face(self, request: Request) -> Response:
        if not self.settings["events.store_faces"] or self.settings["events.file"] is None:
            raise HTTPError(404, "face pictures are not kept ([events] store_faces is off)")
        name = request.params["name"]
        folder = Path(self.settings["events.file"]).parent / "faces"
        if not name.endswith(".jpg") or name.startswith(".") or "/" in name:
            raise HTTPError(404, "no such picture")
        try:
            return Response((folder / name).read_bytes(), 200, "image/jpeg")
        except OSError:
            raise HTTPError(404, "no such picture") from None

    # -- technicians --------------------------------------------------------------------------------------
    def camera_page(self, request: Request) -> Response:
        status = self.daemon()
        body = self.daemon_line(status)
        if status is not None:
            try:
                frame = self.shared_frame("raw", wait_s=2.0)
            except SourceError as error:
                body += self.failure(error)
            else:
                body += html.table(["Measure", "Value", "Hint"], [[esc(a), esc(b), esc(c)]
                                                                  for a, b, c in camera_hints(frame.bgr(), frame.meta)],
                                   css="hints")
        return self.page(request, "Camera", body + live_view(small=True))

    def liveness_page(self, request: Request) -> Response:
        status = self.daemon()
        mode = self.settings["decision.liveness"]
        rows = []
        last_score = None
        if status is not None:
            try:
                last_score = self.shared_frame("none", wait_s=1.0).meta.get("live_score")
            except SourceError:
                last_score = None
        engine = (status or {}).get("liveness")
        if engine is not None:
            for line in engine["cues"]:
                name, _, figures = line.partition(": ")
                rows.append([esc(name), html.status_word(True, "ON"), esc(figures),
                             esc("-" if last_score is None or name != "colour" else f"{last_score:.3f}"), ""])
        else:
            why = ("the daemon is not running" if status is None else
                   "off in the config" if mode == "off" else "no liveness model is trained or built")
            rows.append(["liveness", html.status_word(False, no="OFF"), "-", "-", esc(why)])
        refusals = sum(1 for event in self._events() if event.get("refused_by") or event.get("reason") == "not live")
        body = (f'<p>[decision] liveness = <code>{esc(mode)}</code>. Refusals by a liveness cue among the recent '
                f'decisions: {refusals}.</p>'
                + html.table(["Cue", "Enabled", "Settings and validated figures", "Last figure", "Note"], rows, css="liveness"))
        return self.page(request, "Liveness cues", body)

    def _events(self) -> list:
        path = self.settings["events.file"]
        return recent_events(Path(path), RECENT_EVENTS) if path else []

    def selftest_page(self, request: Request) -> Response:
        report = request.session.data.pop("selftest", None)
        body = ('<p>Runs the technician\'s checks (edge-verify selftest) with the daemon\'s settings. While the '
                'daemon runs, the door checks (and those of a live camera) are skipped: it holds them (use the Camera and '
                'Door pages).'
                '</p>' + html.form("/selftest", request.session.csrf, "", "Run the self-test", css="selftest"))
        if report is not None:
            rows = [[html.status_word(None if check["status"] == "SKIP" else check["status"] == "PASS"),
                     f'<code>{esc(check["name"])}</code>', esc(check["detail"]), esc(f'{check["ms"]:.0f} ms')]
                    for check in report["checks"]]
            summary = report["summary"]
            body += (f'<p id="selftest-summary">{summary["passed"]} passed, {summary["failed"]} failed, '
                     f'{summary["skipped"]} skipped in {summary["seconds"]:.1f} s</p>'
                     + html.table(["Result", "Check", "Reason", "Time"], rows, css="selftest"))
        return self.page(request, "Self-test", body)

    def selftest_run(self, request: Request) -> Response:
        status = self.daemon()
        context = Context(settings=SelftestSettings(daemon=self.settings), yes=False, confirm=lambda question: False)
        if status is not None:
            context._holder = f"the door daemon is running (pid {status['pid']}, answering on {self.socket})"
        report = run_selftest(context, GROUPS)
        request.session.data["selftest"] = report.as_json()
        self.record(request.session.actor, "console-selftest", {"summary": report.summary()})
        return Response.redirect("/selftest")

    def door_page(self, request: Request) -> Response:
        status = self.daemon()
        body = (self.daemon_line(status) + f'<p>Door: {esc(self.settings["door.kind"])} on '
                f'{esc(self.settings["door.pin"])}, pulse {self.settings["door.pulse_s"]:g} s.</p>'
                + html.form("/door/pulse", request.session.csrf, "", "Test pulse…", css="danger"))
        return self.page(request, "Door", body)

    def door_pulse(self, request: Request) -> Response:
        session = request.session
        if request.form.get("confirm") != "yes":
            return self.page(request, "Door test pulse", self.confirm(
                "/door/pulse", session.csrf, "Open the door for one pulse now? Make sure nobody relies on it staying "
                "locked for these seconds.", {}, "Pulse the door now", "/door"), active="/door")
        status = self.daemon()
        if status is not None:
            with ShareClient(self.socket) as client:
                answer = client.pulse(session.actor)
            ok, text = bool(answer.get("ok")), (f"pulsed {answer.get('door')} through the daemon" if answer.get("ok")
                                                else answer.get("error", "refused"))
        else:
            context = Context(settings=SelftestSettings(daemon=self.settings), yes=True)
            report = run_selftest(context, ("door",))
            relay = [check for check in report.checks if check.name == "door.relay"]
            ok = bool(relay) and relay[0].status == "PASS"
            text = relay[0].detail if relay else "the door check did not run"
        self.record(session.actor, "console-door-pulse", {"ok": ok, "detail": text})
        self.flash(request, "ok" if ok else "error", text)
        return Response.redirect("/door")


# ---- what pages show ----------------------------------------------------------------------------------

def live_view(small: bool = False) -> str:
    size = ' class="small"' if small else ""
    return (f'<div class="live"><canvas id="live"{size} width="640" height="480" data-src="/api/live/frame">'
            '</canvas><aside><p id="guidance" class="guidance">waiting for the camera…</p>'
            '<p id="decision" class="decision"></p><ul id="gates" class="gates"></ul></aside></div>')


def guidance(meta: dict, min_face_px: float) -> dict:
    """One line telling the person at the camera what to do, and whether this frame would be a good one."""
    seen = meta.get("sighting")
    if seen == "no face":
        return {"text": "No face: stand in front of the camera, at arm's length", "good": False}
    if seen == "unusable frame":
        return {"text": "The camera sent an unusable frame", "good": False}
    quality = meta.get("quality")
    face = meta.get("face") or {}
    if seen == "face too small" or quality is None:
        return {"text": f"Come closer: the face is {face.get('px', 0):.0f} px, the door needs {min_face_px:.0f} px",
                "good": False}
    failing = [gate for gate in quality["gates"] if not gate["ok"]]
    if failing:
        return {"text": failing[0]["reason"], "good": False}
    yaw = quality["measures"].get("yaw_deg", 0.0)
    turn = "" if abs(yaw) < MAX_YAW_DEG / 5 else f" (head turned {abs(yaw):.0f} deg)"
    return {"text": f"Good frame{turn}", "good": True}


def progress_html(progress) -> str:
    """The enrollment's progress as the page first shows it (console.js then redraws it from /api/enroll)."""
    shown = progress.as_dict()
    lines = "".join(f'<li class="{esc(line["kind"])}">{esc(line["text"])}</li>' for line in shown["lines"])
    poses = "".join(f'<li class="{esc(line["state"])}">{esc(line["text"])}</li>' for line in shown["poses"])
    prompt = f'<p class="prompt" id="enroll-prompt">{esc(shown["prompt"])}</p>' if shown["prompt"] else ""
    result = f'<p class="result" id="enroll-result">{esc(progress.result)}</p>' if progress.result else ""
    covered = f'<p class="coverage" id="enroll-coverage">{esc(progress.coverage)}</p>' if progress.coverage else ""
    error = f'<p class="notice error" id="enroll-error">{esc(progress.error)}</p>' if progress.error else ""
    verdicts = "".join(f"<li>{esc(text)}</li>" for text in progress.verdicts)
    return (f'<p id="enroll-state" data-state="{esc(progress.state)}">{esc(progress.name)}: {esc(progress.state)}, '
            f'{progress.good}/{progress.count} good frames</p>{prompt}<ol id="enroll-poses" class="poses">{poses}</ol>'
            f'{result}{covered}{error}'
            f'<ul id="enroll-verdicts" class="verdicts">{verdicts}</ul><ol id="enroll-lines" class="lines">{lines}</ol>')


def describe_result(outcome) -> tuple[str, str, list[str]]:
    """(the result line, the person's coverage in the words of `gallery show NAME`, the checks' verdicts)."""
    result, found = outcome
    frames = len(result.quality)
    verb = "templates added" if result.appended else "templates"
    line = f"{result.name} enrolled: {result.templates} {verb}, {verdict_words(found)}"
    verdicts = [f"One-person check: passed — the {frames} good frames all show the same person.",
                "Duplicate check: passed — the door would take this face for nobody enrolled under another name."]
    verdicts += [f"Warning: {warning}" for warning in result.warnings]
    return line, describe(found), verdicts


def yaw_text(yaw) -> str:
    return "" if yaw is None else f"{yaw:+.0f} deg"


def door_would_say(answer: dict) -> str:
    if answer.get("person") is not None:
        return (f"the door would say: {answer['person']}, {answer['distance']:.2f} from their templates "
                f"(threshold {answer['threshold']:.2f})")
    return f"the door would say: nobody ({answer.get('reason', 'no match')})"


def recent_events(path: Path, count: int) -> list[dict]:
    """The last ``count`` events of the events file (its tail only: the file may be large)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - EVENTS_TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise GalleryError(f"cannot read the events file {path}: {error.strerror or error}") from None
    lines = data.splitlines()
    if size > EVENTS_TAIL_BYTES and lines:
        lines = lines[1:]  # the first may be cut
    events: deque = deque(maxlen=count)
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return list(events)


def decision_words(event: dict) -> str:
    if event.get("unlock"):
        return '<span class="badge pass">unlocked</span>'
    return esc(event.get("reason") or "refused")


def refusing_cue(event: dict) -> str:
    """The liveness cue that refused the unlock, when one did."""
    cue = event.get("refused_by") or event.get("cue")
    if cue:
        return str(cue)
    return "live" if event.get("reason") == "not live" else ""


def camera_hints(bgr: np.ndarray, meta: dict) -> list[tuple[str, str, str]]:
    """Exposure and focus hints from one frame and its face's quality measures."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    mean = float(grey.mean())
    dark, bright = float((grey < 16).mean()), float((grey > 245).mean())
    if mean < DARK_FRAME or dark > CLIPPED_SHARE:
        exposure = "too dark: more light at the door, or a longer exposure / higher gain"
    elif mean > BRIGHT_FRAME or bright > CLIPPED_SHARE:
        exposure = "too bright: less light, a shorter exposure, or no window behind the person"
    else:
        exposure = "fine"
    hints = [("Frame brightness", f"{mean:.0f} of 255", exposure),
             ("Clipped pixels", f"{dark:.1%} black, {bright:.1%} white", "fine" if max(dark, bright) <= CLIPPED_SHARE
              else "part of the picture is clipped: adjust the exposure")]
    frame_sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    quality = meta.get("quality")
    if quality is not None:
        sharp = quality["measures"].get("sharpness", math.nan)
        hints.append(("Face sharpness", f"{sharp:.1f} (gate {MIN_SHARPNESS:g})",
                      "fine" if sharp >= MIN_SHARPNESS else "blurred: clean the lens, then focus on a face at arm's "
                      "length"))
        hints.append(("Face brightness", f"{quality['measures'].get('brightness', math.nan):.0f}",
                      next((gate["reason"] for gate in quality["gates"] if gate["name"] == "brightness"), "")))
    else:
        hints.append(("Face sharpness", "no face in view", "stand in front of the camera to judge the focus"))
    hints.append(("Frame sharpness", f"{frame_sharpness:.0f}", "for comparison before and after focusing"))
    return hints
