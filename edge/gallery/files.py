"""Small file helpers for the gallery's private files (key, token, bundles)."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a new or renamed file's directory entry durable across a power cut."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_private(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` atomically with ``data``, mode 0600 from the first byte.

    A crash leaves either the old file or the new one, never half of either.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    fsync_folder(path.parent)
    return path
