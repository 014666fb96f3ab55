"""Changes to a site's people that `edge-verify hub ...` and the hub's console share: one code path,
one audit record each (in the hub's table), every door of the site following through the change feed.

    enroll_photos   enroll a person from photos with the kiosk's own checks (edge.hub.enroll.SiteGallery)
    rename_person   give a person another name (templates sealed again for it: HubDB.rename_person)
    remove_person   erase a person (HubDB.remove_person)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from edge.enroll.capture import enroll, quiet
from edge.exc import GalleryError
from edge.gallery.inputs import check_name
from edge.hub.db import HubDB, new_uid
from edge.hub.enroll import SiteGallery
from edge.hub.home import site_cipher


def enroll_photos(home: Path, db: HubDB, site: str, name: str, shots: Iterable, actor: str, pipeline,
                  force: bool = False, report: Callable[[str], None] = quiet) -> dict:
    """Enroll ``name`` for every door of ``site`` from ``shots`` (edge.enroll.capture.image_shots or
    upload_shots): the quality gates, one-person and duplicate checks of a door (the duplicate check again
    under the site's lock at commit). Returns the EnrollResult's dict with the site and its change number."""
    cipher = site_cipher(home, db, site)
    gallery = SiteGallery(db, site, cipher, pipeline.threshold, origin=f"hub ({actor})", manifest=pipeline.manifest)
    result = enroll(name, pipeline, gallery, shots, force=force, actor=actor, report=report)
    return {**result.as_dict(), "site": site, "seq": db.site(site)["last_seq"]}


def rename_person(home: Path, db: HubDB, site: str, old: str, new: str, actor: str) -> dict:
    """Rename a person of ``site`` (the kiosks' own name rules); returns {name, was, site, seq, templates}."""
    new = check_name(new)
    if new == old:
        raise GalleryError(f"{old} already has that name; nothing was changed")
    cipher = site_cipher(home, db, site)

    def reseal(person: str, model: str, dim: int, sealed: list) -> tuple[str, list]:
        # The seal binds each template to the person's id and name: opened with the old (a template that
        # does not open raises SiteKeyError and nothing is renamed), sealed for the new.
        renamed = new_uid()
        vectors = [cipher.open(item, person, old, model, dim) for item in sealed]
        return renamed, [cipher.seal(vector, renamed, new, new_uid(), model) for vector in vectors]

    seq, count = db.rename_person(site, old, new, actor, reseal)
    return {"name": new, "was": old, "site": site, "seq": seq, "templates": count}


def remove_person(db: HubDB, site: str, name: str, actor: str) -> dict:
    seq, count = db.remove_person(site, name, actor)
    return {"name": name, "site": site, "seq": seq, "templates_erased": count}
