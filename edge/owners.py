"""Who owns the product's files, and what to say when a user may not touch them.

The owner model (README, "Who owns what"): every file the product writes takes the
owner and group of the folder it is written into. The service user owns the state
folder (/var/lib/edge-verify), so what root writes there through sudo stays the
service's; root owns /etc/edge-verify (group: the service's), so the admin token
root writes there can be read, but neither changed nor deleted, by the service.
SQLite's own -wal and -shm files need nothing from us: when root opens a database, SQLite gives
them the database file's owner and mode itself. They must not be opened and closed beside
SQLite either: closing a descriptor drops this process's POSIX locks on the file, SQLite's too.
"""
from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def adopt_owner(descriptor: int, folder: str | os.PathLike) -> None:
    """As root, give a new file the owner and group of its folder (see the module docstring).

    In a folder that root owns but another group shares (/etc/edge-verify, group
    edge-verify) the file also becomes readable, never writable, by that group (0640).
    Run as anyone else, nothing changes: the file is already the caller's.
    """
    if os.geteuid() != 0:
        return
    info = os.stat(folder)
    os.fchown(descriptor, info.st_uid, info.st_gid)
    if info.st_uid == 0 and info.st_gid != 0 and stat.S_IMODE(os.fstat(descriptor).st_mode) == 0o600:
        os.fchmod(descriptor, 0o640)


def permission_advice(path: str | os.PathLike, doing: str = "use") -> str:
    path = Path(path)
    user, group = owner_of(path if os.path.exists(path) else path.parent)
    service = user if user not in (None, "root") else group if group not in (None, "root") else "edge-verify"
    whom = f"it belongs to {user}; " if user else ""
    return (f"cannot {doing} {path}: permission denied ({whom}run this as root, e.g. `sudo edge-verify ...`, or as "
            f"the service user, `sudo -u {service} edge-verify ...`)")


def owner_of(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(user, group) names owning ``path``; numbers when they have no name, Nones when it cannot be seen."""
    try:
        info = os.stat(path)
    except OSError:
        return None, None
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return user, group
