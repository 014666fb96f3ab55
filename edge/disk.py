"""A full disk, said as such: "no space left on ..." with what to free, instead of "disk I/O error"."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# Below this much free space an SQLite I/O error is taken for a full disk: SQLite reports
# a failed write as SQLITE_IOERR on some file systems (tmpfs) rather than SQLITE_FULL.
LOW_SPACE_BYTES = 1024 * 1024


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing folder); None if unknown."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def low_on_space(path: str | os.PathLike) -> bool:
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE_BYTES


def space_advice(path: str | os.PathLike) -> str:
    """One line: where the disk is full and what to do."""
    folder = Path(path).absolute().parent
    free = free_bytes(folder)
    left = f" ({free // 1024} KiB free)" if free is not None else ""
    return (f"no space left on the disk holding {folder}{left}: free some space (old event logs and face crops, "
            "backups, `sudo journalctl --vacuum-size=100M`), then try again")
