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

import numpy as np

from edge.enroll.capture import duplicate_problem
from edge.exc import DuplicateFaceError
from edge.fleet.sitekey import SiteCipher
from edge.hub.db import HubDB, new_uid


class SiteGallery:
    def __init__(self, db: HubDB, site: str, cipher: SiteCipher, threshold: float, origin: str = "hub"):
        self.db, self.site, self.cipher = db, site, cipher
        self.threshold = float(threshold)
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
            problem, _ = duplicate_problem(matrix, names, index, gallery, name, self.threshold)
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
