"""Where a backup or an export may be written: never over the product's own files.

A backup or bundle written over the key, the gallery, the admin token or the
audit log destroys the gallery or its history, so those (and the files SQLite
keeps beside the gallery) are refused, with or without --force. With --force only
an earlier backup or bundle is replaced; any other existing file is refused. A
symbolic link as the destination is refused too: it could point anywhere.
"""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from edge.exc import GalleryError
from edge.gallery.audit import audit_path
from edge.gallery.auth import failures_path, token_path
from edge.gallery.bundle import is_bundle
from edge.gallery.schema import SQLITE_MAGIC


def owned_files(gallery_path: str | os.PathLike, key_path: str | os.PathLike | None = None) -> list[Path]:
    """The files the product keeps for this gallery: the gallery and SQLite's files beside it,
    the key, the admin token and its failure count, the audit log."""
    gallery_path = Path(gallery_path)
    owned = [gallery_path, *(Path(f"{gallery_path}{suffix}") for suffix in ("-wal", "-shm", "-journal")),
             gallery_path.with_name("gallery.key"), audit_path(gallery_path), token_path(gallery_path),
             failures_path(gallery_path)]
    return owned + ([Path(key_path)] if key_path is not None else [])


def check_destination(path: str | os.PathLike, owned: list[Path], overwrite: bool) -> Path:
    """``path`` if a backup or bundle may be written there, else GalleryError saying why."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise GalleryError(f"{path} is a symbolic link; refusing to write through it: give the real file name")
    if _is_owned(path, owned):
        raise GalleryError(f"{path} is one of the gallery's own files (gallery, key, token or audit log); refusing "
                           "to write a backup or bundle over it, with or without --force: choose a file elsewhere")
    if info is None:
        return path
    if not overwrite:
        raise GalleryError(f"{path} already exists; choose another file, or pass --force to replace an earlier "
                           "backup or bundle")
    if not stat.S_ISREG(info.st_mode) or not (_is_bundle(path) or is_backup(path)):
        raise GalleryError(f"{path} exists and is not an edge-verify backup or bundle; refusing to overwrite it, even "
                           "with --force: choose another file")
    return path


def is_backup(path: str | os.PathLike) -> bool:
    """True for an SQLite file holding an edge-verify gallery (read only; never changes the file)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                return False
        connection = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro&immutable=1", uri=True)
    except (OSError, sqlite3.Error):
        return False
    try:
        return connection.execute("SELECT value FROM meta WHERE key = 'gallery_id'").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def _is_bundle(path: Path) -> bool:
    try:
        return is_bundle(path)
    except OSError:
        return False


def _is_owned(path: Path, owned: list[Path]) -> bool:
    """Same file (device and inode) as an owned one, or the same absolute path, or the
    audit log's kept evidence (gallery.audit.jsonl.broken-...)."""
    target = Path(os.path.abspath(path))
    try:
        target_info = os.stat(target)
    except OSError:
        target_info = None
    for candidate in owned:
        absolute = Path(os.path.abspath(candidate))
        if target == absolute or target.name.startswith(f"{absolute.name}.") and target.parent == absolute.parent \
                and absolute.name.endswith(".audit.jsonl"):
            return True
        try:
            info = os.stat(absolute)
        except OSError:
            continue
        if target_info is not None and (info.st_dev, info.st_ino) == (target_info.st_dev, target_info.st_ino):
            return True
    return False
