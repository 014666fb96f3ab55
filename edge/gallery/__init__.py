"""The gallery of enrolled people.

    store.py      Gallery: the SQLite file, transactions, load_matrix() for the daemon
    crypto.py     AES-GCM templates, the key file, the key check
    audit.py      the hash-chained audit log and its verifier
    auth.py       the admin token
    bundle.py     encrypted export bundles
    search.py     1:N nearest person and margin
    threshold.py  the 1:N open-set threshold rule; gallery_threshold() applies it to an engine manifest

``open_gallery`` is what commands use: it finds the key and the file at their
default places under $EDGE_VERIFY_HOME unless told otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path

from edge import paths
from edge.exc import GalleryError
from edge.gallery.crypto import create_key, default_key_path, load_key
from edge.gallery.search import Match, search
from edge.gallery.store import Gallery
from edge.gallery.threshold import choose_threshold, gallery_threshold, openset_threshold

__all__ = ["Gallery", "Match", "choose_threshold", "gallery_threshold", "open_gallery", "openset_threshold", "search"]


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
