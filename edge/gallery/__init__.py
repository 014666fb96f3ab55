"""The gallery of enrolled people.

    store.py      Gallery: the SQLite file, transactions, load_matrix() for the daemon
    crypto.py     AES-GCM templates, the key file, the key check
    audit.py      the HMAC-chained audit log, its breaks and its verifier
    auth.py       the admin token, waits and lockout after wrong ones
    bundle.py     encrypted export bundles
    destination.py  where a backup or bundle may be written (never over the gallery's own files)
    search.py     1:N nearest person and margin
    threshold.py  the 1:N open-set threshold rule; gallery_threshold() applies it to an engine manifest

``open_gallery`` is what commands use: it finds the key and the file at their
default places (the installed config's, else under $EDGE_VERIFY_HOME) unless told
otherwise; ``authorise`` checks the admin token, ``import_into`` restores.
"""
from __future__ import annotations

import os
from pathlib import Path

from edge import paths
from edge.exc import GalleryError
from edge.gallery import auth
from edge.gallery.audit import audit_path, default_actor
from edge.gallery.crypto import create_key, default_key_path, load_key
from edge.gallery.search import Match, search
from edge.gallery.store import Gallery
from edge.gallery.threshold import choose_threshold, gallery_threshold, openset_threshold
from edge.gallery.transfer import check_people, read_source

__all__ = ["Gallery", "Match", "authorise", "choose_threshold", "gallery_threshold", "import_into", "lift_lockout",
           "open_gallery", "openset_threshold", "search"]


def open_gallery(path: str | os.PathLike | None = None, key_path: str | os.PathLike | None = None,
                 create: bool = False, actor: str | None = None) -> Gallery:
    """Open the gallery (default $EDGE_VERIFY_HOME/gallery.sqlite) with its key (default .../gallery.key).

    With ``create``, a missing gallery is made, and so is a missing key, but only
    when the gallery is new too: a new key can never open an existing gallery.
    """
    path = Path(path) if path is not None else paths.gallery_path()
    key_path = Path(key_path) if key_path is not None else default_key_path()
    if path.exists():
        gallery = Gallery.open(path, load_key(key_path))
    elif not create:
        raise GalleryError(f"no gallery at {path}; enroll someone first (`edge-verify enroll NAME ...`) "
                           "or pass --gallery PATH")
    else:
        new_key = not key_path.exists()
        key = create_key(key_path) if new_key else load_key(key_path)
        try:
            gallery = Gallery.create(path, key, actor=actor)
        except BaseException:
            if new_key:  # a key made for a gallery that was never made is no use to anyone
                key_path.unlink(missing_ok=True)
            raise
    gallery.key_path = key_path
    return gallery


def authorise(gallery_path: str | os.PathLike | None, token: str | None,
              key_path: str | os.PathLike | None = None) -> str:
    """Check the admin token of this gallery (waits and lockout: auth.attempt); returns the actor to
    record. A wrong token is recorded in the gallery's audit log when the gallery exists."""
    path = Path(gallery_path) if gallery_path is not None else paths.gallery_path()
    actor = default_actor()

    def record_refusal(failures: int) -> None:
        _record_if_there(path, key_path, actor, "token-refused", {"failures_in_a_row": failures})

    auth.attempt(auth.token_path(path), auth.failures_path(path), token, on_refusal=record_refusal)
    return f"{actor} with admin token"


def lift_lockout(gallery_path: str | os.PathLike | None, key_path: str | os.PathLike | None = None) -> int:
    """Root lifts the lock after wrong tokens; recorded in the audit log. Returns the tries forgiven."""
    path = Path(gallery_path) if gallery_path is not None else paths.gallery_path()
    return auth.unlock(auth.failures_path(path), on_unlock=lambda forgiven: _record_if_there(
        path, key_path, default_actor(), "token-unlocked", {"failures_forgiven": forgiven}))


def _record_if_there(path: Path, key_path, actor: str, action: str, details: dict) -> None:
    if not path.exists():
        return  # no gallery yet, so no log to sign: the count beside it still holds
    with open_gallery(path, key_path) as gallery:
        gallery.audited(actor, action, "admin token", details, apply=lambda: None)


def import_into(gallery_path: str | os.PathLike | None, key_path: str | os.PathLike | None,
                source: str | os.PathLike, actor: str, bundle_key: bytes | None = None) -> dict:
    """`gallery import`: merge a bundle or backup into the gallery, making the gallery when there is none
    (a restore). A new gallery is made only once the whole source has been read and checked, and a
    failure after that removes what was made for it (gallery, key, log): nothing is left behind."""
    path = Path(gallery_path) if gallery_path is not None else paths.gallery_path()
    key_path = Path(key_path) if key_path is not None else default_key_path()
    if path.exists():
        with open_gallery(path, key_path) as gallery:
            return gallery.import_(source, actor, key=bundle_key)
    if bundle_key is None and not key_path.exists():
        raise GalleryError(f"no key at {key_path} to read {source} with; pass the key it was sealed with "
                           "(--bundle-key PATH) or the gallery's key (--key PATH); nothing was imported")
    people = read_source(Gallery, Path(source), bundle_key if bundle_key is not None else load_key(key_path))
    check_people(people, str(source))
    made = [file for file in (key_path, audit_path(path)) if not file.exists()] + [path]
    try:
        with open_gallery(path, key_path, create=True, actor=actor) as gallery:
            return gallery.merge(people, actor, os.path.abspath(source))
    except BaseException:
        for file in made:  # only what this import made
            file.unlink(missing_ok=True)
        raise
