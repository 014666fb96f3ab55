"""Small file helpers for the gallery's private files (key, token, bundles).

Who ends up owning them: edge/owners.py.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from edge.disk import is_no_space, space_advice
from edge.exc import GalleryError
from edge.owners import adopt_owner, permission_advice

__all__ = ["adopt_owner", "commit_private", "fsync_folder", "new_private_file", "no_permission",
           "permission_advice", "stage_private", "write_all", "write_private"]


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a new or renamed file's directory entry durable across a power cut."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_private(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` atomically with ``data``, mode 0600 from the first byte.

    A crash leaves either the old file or the new one, never half of either. The
    temporary file has a random name and is made with O_EXCL and O_NOFOLLOW in the
    destination's folder, so nothing planted there (a symbolic link) is followed or truncated.
    """
    path = Path(path)
    staged = stage_private(path, data)
    try:
        commit_private(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path


def write_all(descriptor: int, data: bytes) -> None:
    """Write every byte of ``data`` (os.write may write fewer than asked), then fsync."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]
    os.fsync(descriptor)


def stage_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new private file beside ``path`` (fsynced) and return its name: the part of
    a replacement that needs disk space, done before anything is recorded or replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, descriptor = new_private_file(path)
    try:
        try:
            adopt_owner(descriptor, path.parent)
            write_all(descriptor, data)
        finally:
            os.close(descriptor)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if is_no_space(error):
            raise GalleryError(f"cannot write {path}: {space_advice(path)}; nothing was changed") from None
        raise
    return temporary


def commit_private(staged: Path, path: Path) -> None:
    """Put a staged file in place of ``path`` (a rename: needs no space, cannot be half done)."""
    os.replace(staged, path)
    fsync_folder(path.parent)


def new_private_file(beside: Path) -> tuple[Path, int]:
    """(path, descriptor) of a new, empty, mode 0600 file with a random name in ``beside``'s folder."""
    while True:
        temporary = beside.with_name(f".{beside.name}.{secrets.token_hex(8)}.partial")
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      0o600)
        except FileExistsError:
            continue


def no_permission(path: str | os.PathLike, doing: str = "use") -> GalleryError:
    """A one-line error for a file or folder this user may not read or write, saying what to run."""
    return GalleryError(permission_advice(path, doing))
