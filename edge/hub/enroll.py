"""Enrollment at the hub, with the kiosk's own code and checks.

``SiteGallery`` gives edge.enroll.capture.enroll what it expects of a gallery
(list_people, load_matrix, add_person_templates), backed by one site in
PostgreSQL: the same quality gates, one-person check and duplicate check run
as at a door. Templates are sealed under the site key before they reach the
database. The duplicate check runs again under the site's lock at commit time
against everyone enrolled since the first look, so two doors enrolling the same
face under two names at once cannot both get in; the same name at once is
refused by the database step (EnrollConflict).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.engines.manifest import read_manifest
from edge.enroll.capture import door_rule, duplicate_problem, duplicate_threshold
from edge.enroll.one_person import check_frames
from edge.exc import DuplicateFaceError, EdgeVerifyError, EnrollmentError
from edge.fleet.errors import EnrollConflict
from edge.fleet.sitekey import SiteCipher, SiteKeyError
from edge.hub.db import HubDB, new_uid
from edge.hub.home import site_cipher
from edge.models import registry
from edge.verify.api import embedding_space

log = logging.getLogger(__name__)


class SiteGallery:
    """``threshold``: the duplicate recheck's threshold; with ``manifest`` (the embedding engine's) the
    door's threshold for combined probes at the site's size then (edge.enroll.capture.duplicate_threshold),
    compared as the door compares (``rule``: edge.enroll.capture.door_rule, its cohort decoded once here,
    not in the recheck that runs under the site's lock)."""

    def __init__(self, db: HubDB, site: str, cipher: SiteCipher, threshold: float, origin: str = "hub",
                 manifest: dict | None = None):
        self.db, self.site, self.cipher = db, site, cipher
        self.threshold = float(threshold)
        self.manifest = manifest
        self.rule = door_rule(manifest)
        self.origin = origin
        self.path = f"site {site}"

    def list_people(self) -> list[dict]:
        return [{"name": person["name"], "templates": person["templates"]} for person in self.db.people(self.site)]

    def load_matrix(self, model: str | None = None):
        _, people = self.db.sealed_people(self.site)
        return self._matrix(people, model)

    def _matrix(self, people: list[dict], model: str | None):
        names, index, vectors = [], [], []
        for person in sorted(people, key=lambda item: item["name"]):
            if model is not None and person["model"] != model:
                continue
            rows = [self.cipher.open(item, person["person"], person["name"], person["model"], person["dim"])
                    for item in person["templates"]]
            if not rows:
                continue
            names.append(person["name"])
            index += [len(names) - 1] * len(rows)
            vectors += rows
        dim = len(vectors[0]) if vectors else 0
        return names, np.asarray(index, dtype=np.intp), (np.stack(vectors) if vectors else np.zeros((0, dim), np.float32))

    def add_person_templates(self, name: str, vectors, model: str, actor: str, quality=None, *, append: bool = False,
                             audit_details: dict | None = None) -> int:
        matrix = np.asarray(vectors, dtype=np.float32)
        person = new_uid()
        sealed = [self.cipher.seal(vector, person, name, new_uid(), model) for vector in matrix]
        forced = bool(audit_details and "forced_duplicate" in audit_details)

        def recheck(connection, site, seq_before):
            if forced:
                return
            _, people = self.db_snapshot(connection)
            names, index, gallery = self._matrix(people, model)
            threshold = self.threshold if self.manifest is None else \
                duplicate_threshold(self.manifest, len(gallery) + len(matrix)).threshold
            problem, _ = duplicate_problem(matrix, names, index, gallery, name, threshold, **self.rule)
            if problem:
                raise DuplicateFaceError(f"{problem} (enrolled meanwhile at another station); nothing was stored")

        self.db.add_person(self.site, name, model, int(matrix.shape[1]), sealed, person, actor, self.origin,
                           details=audit_details, check=recheck)
        return len(matrix)

    def db_snapshot(self, connection):
        """Everyone of the site as the locking transaction sees them."""
        people = {}
        for uid, name, model, dim in connection.execute(
                "SELECT uid, name, model, dim FROM people WHERE site = %s", (self.site,)).fetchall():
            people[uid] = {"person": uid, "name": name, "model": model, "dim": dim, "templates": []}
        for template, person, nonce, ciphertext in connection.execute(
                "SELECT t.uid, t.person, t.nonce, t.ciphertext FROM templates t JOIN people p ON p.uid = t.person "
                "WHERE p.site = %s", (self.site,)).fetchall():
            people[person]["templates"].append({"id": template, "nonce": nonce, "ct": ciphertext})
        return None, list(people.values())


class KioskEnrollments:
    """Enrollments sent by kiosks (edge.fleet.enroll.HubSite), checked again here before they count:
    one person in the frames (never forced), nobody of the site the door would take that face for
    under another name (unless the kiosk's admin forced it, which is audited), the name free.
    Thresholds come from the hub's own copy of the embedding engine's manifest, never from the kiosk."""

    def __init__(self, home: Path, db: HubDB):
        self.home, self.db = Path(home), db
        self._manifest: dict | None = None

    def manifest(self) -> dict:
        if self._manifest is None:
            self._manifest = read_manifest(registry.engine_path(registry.EMBEDDING))
        return self._manifest

    def handle(self, site: str, device: str, request: dict) -> dict:
        """{"ok": True, "seq", "templates"} or {"ok": False, "why", "reason"}; never raises."""
        try:
            return self._enroll(site, device, request)
        except EnrollConflict as error:
            return {"ok": False, "why": "conflict", "reason": str(error)}
        except DuplicateFaceError as error:
            return {"ok": False, "why": "duplicate", "reason": str(error)}
        except (EdgeVerifyError, SiteKeyError, KeyError, TypeError, ValueError) as error:
            log.warning("refused an enrollment from %s: %s", device, error)
            return {"ok": False, "why": "refused", "reason": str(error)}

    def _enroll(self, site: str, device: str, request: dict) -> dict:
        manifest = self.manifest()
        model = embedding_space(manifest)
        if request["model"] != model:
            raise EnrollmentError(f"templates of model {request['model']!r}; this site enrolls {model!r}")
        cipher = site_cipher(self.home, self.db, site)
        matrix = np.stack([cipher.open(item, request["person"], request["name"], model, int(request["dim"]))
                           for item in request["templates"]])
        threshold = float(manifest["threshold"])
        force = bool(request.get("force"))
        details = {"kiosk": device}
        problem = frames_problem(matrix, threshold)
        if problem:
            raise EnrollmentError(f"{problem}; nothing was stored")
        gallery = SiteGallery(self.db, site, cipher, threshold, origin=f"kiosk {device}", manifest=manifest)
        names, index, stored = gallery.load_matrix(model)
        door = duplicate_threshold(manifest, len(stored) + len(matrix)).threshold
        duplicate, other = duplicate_problem(matrix, names, index, stored, request["name"], door, **gallery.rule)
        if duplicate and not force:
            raise DuplicateFaceError(f"{duplicate}; nothing was stored")
        if duplicate:
            details["forced_duplicate"] = other
        actor = f"kiosk {device}: {request.get('actor', 'unknown')}"
        count = gallery.add_person_templates(request["name"], matrix, model, actor, audit_details=details)
        return {"ok": True, "seq": self.db.site(site)["last_seq"], "templates": count}


def frames_problem(matrix: np.ndarray, threshold: float) -> str | None:
    """The kiosk's one-person check again: it has already set aside any odd frame, so here
    an odd frame, like two groups of frames, is a reason to refuse."""
    verdict = check_frames(matrix, threshold)
    if verdict.problem or not verdict.odd:
        return verdict.problem
    row, distance, limit = verdict.odd[0]
    return f"good frame {row + 1} is not the same person as the others ({distance:.3f} from them > {limit:.3f})"
