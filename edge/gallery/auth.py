"""The admin token that guards enrollment, removal and the other gallery changes.

The token itself is never stored: a file holds a salted scrypt hash and its
parameters, so a copy of that file does not let anyone in. Tokens reach the CLI
through ``--token`` or ``$EDGE_VERIFY_ADMIN_TOKEN``.

Where that file is: beside the gallery (gallery.admin-token, mode 0600), except
for an installed kiosk's gallery, whose token is where /etc/edge-verify/config.toml
says ([gallery] admin_token; the shipped file says /etc/edge-verify/admin-token):
root's folder, readable by the service's group, so the daemon's account can
neither delete nor replace it.

Who may set the token (`edge-verify admin set-token`):
  * root, always (the installer, or an admin who lost the token);
  * anyone holding the current token and allowed to write the token's folder (on
    an installed kiosk: root only);
  * while no token exists yet, whoever can create the token file: on an installed
    kiosk that is root, at install time; on a developer's machine, its user.
Every change of the token writes an audit record.

Wrong tokens: after each one the next try must wait longer (1, 2, 4 ... s, at most
MAX_WAIT_S), which is kept in gallery.admin-failures beside the gallery so that a new
process waits too; each writes a ``token-refused`` audit record; after LOCKOUT in a
row even the right token is refused until root lifts the lockout (`sudo edge-verify
admin unlock`). Tries without any token, or before the wait is over, are refused
without being checked and are not counted.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import math
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edge import paths
from edge.exc import AuthError
from edge.gallery.audit import default_actor
from edge.gallery.files import adopt_owner, commit_private, permission_advice, stage_private

ENV = "EDGE_VERIFY_ADMIN_TOKEN"
LOCKOUT = 10
MAX_WAIT_S = 300
MIN_LENGTH = 8
HOW_TO_PASS = f"pass it with --token TOKEN or in ${ENV}"
# scrypt cost: about 16 MiB and tens of milliseconds per check, stored in the file so it can rise later.
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def token_path(gallery_path: str | os.PathLike) -> Path:
    """Beside the gallery (gallery.sqlite -> gallery.admin-token); for the installed kiosk's gallery,
    the config file's [gallery] admin_token (see the module docstring)."""
    gallery_path = Path(gallery_path)
    configured = paths.installed("admin_token")
    if configured is not None and os.path.abspath(gallery_path) == os.path.abspath(paths.gallery_path()):
        return configured
    return gallery_path.with_suffix(".admin-token")


def failures_path(gallery_path: str | os.PathLike) -> Path:
    """Wrong tokens tried against this gallery: gallery.sqlite -> gallery.admin-failures."""
    return Path(gallery_path).with_suffix(".admin-failures")


def now() -> float:
    """Wall-clock seconds: the waits between tries are kept across processes."""
    return time.time()


def wait_after(failures: int) -> float:
    """Seconds to wait after ``failures`` wrong tokens in a row before the next try is checked."""
    return 0.0 if failures <= 0 else float(min(2 ** (failures - 1), MAX_WAIT_S))


def attempt(token_file: str | os.PathLike, failures_file: str | os.PathLike, token: str | None,
            on_refusal: Callable[[int], None] | None = None) -> None:
    """require_token, with the waits and the lockout of the module docstring.

    ``on_refusal(failures)`` records a wrong token (the gallery's audit log).
    """
    token_file = Path(token_file)
    if _read(token_file) is None or not token:
        require_token(token_file, token)  # no token set, or none given: says how, counts nothing
    with failure_state(Path(failures_file)) as state:
        failures = state["failures"]
        if failures >= LOCKOUT:
            raise AuthError(f"admin commands are locked after {failures} wrong tokens in a row; root lifts the lock "
                            "with `sudo edge-verify admin unlock`")
        wait = state["last"] + wait_after(failures) - now()
        if wait > 0:
            raise AuthError(f"{failures} wrong admin token{'s' if failures != 1 else ''} in a row: try again in "
                            f"{math.ceil(wait)} s")
        if check_token(token_file, token):
            state["failures"] = 0
            return
        state["failures"], state["last"] = failures + 1, now()
    if on_refusal is not None:
        on_refusal(failures + 1)
    left = LOCKOUT - failures - 1
    raise AuthError(f"the admin token is wrong; {HOW_TO_PASS} (next try in {wait_after(failures + 1):.0f} s; "
                    + (f"{left} more wrong before the lockout)" if left else "admin commands are now locked: root "
                       "lifts the lock with `sudo edge-verify admin unlock`)"))


def unlock(failures_file: str | os.PathLike, on_unlock: Callable[[int], None] | None = None) -> int:
    """Root lifts a lockout (and any wait); returns how many wrong tokens were forgiven."""
    if os.geteuid() != 0:
        raise AuthError("only root may lift the lock after wrong admin tokens: run `sudo edge-verify admin unlock`")
    with failure_state(Path(failures_file)) as state:
        forgiven = state["failures"]
        state["failures"], state["last"] = 0, 0.0
    if on_unlock is not None:
        on_unlock(forgiven)
    return forgiven


@contextmanager
def failure_state(path: Path) -> Iterator[dict]:
    """{"failures", "last"} of ``path``, locked against other processes, written back when changed.

    No file is made until something is counted. A damaged file counts as a lockout: only
    root can clear it, never a stray edit."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        descriptor = None
    except PermissionError:
        raise AuthError(permission_advice(path, "record admin token tries in")) from None
    try:
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        state = _parse_failures(os.pread(descriptor, 4096, 0) if descriptor is not None else b"")
        before = dict(state)
        yield state
        if state == before:
            return
        if descriptor is None:
            descriptor = _new_failures_file(path)
        data = (json.dumps(state) + "\n").encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, data, 0)
        os.fsync(descriptor)
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _parse_failures(raw: bytes) -> dict:
    if not raw.strip():
        return {"failures": 0, "last": 0.0}
    try:
        stored = json.loads(raw)
        return {"failures": int(stored["failures"]), "last": float(stored["last"])}
    except (ValueError, KeyError, TypeError):
        return {"failures": LOCKOUT, "last": 0.0}


def _new_failures_file(path: Path) -> int:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except PermissionError:
        raise AuthError(permission_advice(path, "record admin token tries in")) from None
    adopt_owner(descriptor, path.parent)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def token_from(explicit: str | None) -> str | None:
    """The token given on the command line, else the one in the environment. An empty --token is a
    mistake (an unset shell variable), said as such rather than hiding the environment's token."""
    if explicit is not None and not explicit.strip():
        raise AuthError(f"--token was given empty (an unset variable?); give the token, or leave --token out to use "
                        f"${ENV}")
    return explicit if explicit is not None else os.environ.get(ENV)


def check_token(token_file: str | os.PathLike, token: str | None) -> bool:
    """True when ``token`` matches the stored hash (compared in constant time)."""
    stored = _read(Path(token_file))
    if stored is None or not token:
        return False
    return hmac.compare_digest(_hash(token, bytes.fromhex(stored["salt"]), stored), bytes.fromhex(stored["hash"]))


def require_token(token_file: str | os.PathLike, token: str | None) -> None:
    """Raise AuthError, with a one-line how-to, unless ``token`` is the admin token."""
    token_file = Path(token_file)
    if _read(token_file) is None:
        raise AuthError(f"no admin token is set for this gallery ({token_file}); set one with `edge-verify admin set-token`")
    if not token:
        raise AuthError(f"this command needs the admin token: {HOW_TO_PASS}")
    if not check_token(token_file, token):
        raise AuthError(f"the admin token is wrong; {HOW_TO_PASS} (root can set a new one with `edge-verify admin set-token`)")


def set_token(token_file: str | os.PathLike, new: str, current: str | None = None, *,
              audit=None, actor: str | None = None) -> str:
    """Store a new admin token; returns how the change was authorised.

    Allowed as root, with the valid current token, or when no token exists yet.
    ``audit``: the gallery (or, before there is one, its AuditLog) that records the change:
    the new file is written aside first, then the record, then the file is put in place,
    so a full disk leaves neither a record of a change that did not happen nor a change
    without its record.
    """
    token_file = Path(token_file)
    _check_new(new)
    grounds = _grounds(token_file, current)
    salt = os.urandom(16)
    record = {"scheme": "scrypt", **_SCRYPT, "salt": salt.hex(), "hash": _hash(new, salt, _SCRYPT).hex(),
              "set_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        staged = stage_private(token_file, (json.dumps(record, indent=2) + "\n").encode())
    except PermissionError:
        raise AuthError(f"cannot write the admin token file {token_file}: permission denied (its folder is "
                        f"{'root' if token_file.parent.stat().st_uid == 0 else 'another user'}'s); run "
                        "`sudo edge-verify admin set-token`") from None
    try:
        details = {"authorised_by": grounds, "replaced": token_file.exists()}
        if audit is None:
            commit_private(staged, token_file)
        else:
            audit.audited(actor or default_actor(), "set-token", "admin token", details,
                          apply=lambda: commit_private(staged, token_file))
    finally:
        staged.unlink(missing_ok=True)
    return grounds


def token_set_at(token_file: str | os.PathLike) -> str | None:
    """When the token in ``token_file`` was set (None without a readable token file)."""
    try:
        return str(json.loads(Path(token_file).read_text())["set_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _grounds(token_file: Path, current: str | None) -> str:
    if os.geteuid() == 0:
        return "root"  # without reading the old file: root must be able to replace a damaged one
    if _read(token_file) is None:
        if not os.access(token_file.parent, os.W_OK | os.X_OK):
            raise AuthError(f"no admin token is set and only root may set the first one ({token_file.parent} is "
                            "root's): run `sudo edge-verify admin set-token` at install time")
        return "first token"
    if check_token(token_file, current):
        return "current token"
    if current:
        raise AuthError(f"the current admin token is wrong; {HOW_TO_PASS}, or run as root")
    raise AuthError(f"changing the admin token needs the current one ({HOW_TO_PASS}) or root")


def _check_new(new: str) -> None:
    if not isinstance(new, str) or not new.strip():
        raise AuthError("the new admin token is empty")
    if len(new) < MIN_LENGTH:
        raise AuthError(f"the new admin token is too short ({len(new)} characters; use at least {MIN_LENGTH})")
    if new != new.strip() or any(ord(character) < 32 for character in new):
        raise AuthError("the new admin token must not start or end with spaces or contain control characters")


def _hash(token: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(token.encode(), salt=salt, n=int(params["n"]), r=int(params["r"]), p=int(params["p"]),
                          maxmem=64 * 1024 * 1024, dklen=32)


def _check_cost(stored: dict) -> None:
    """scrypt parameters this code could have written: n a power of two from 2**10 to 2**20, r 1-32,
    p 1-16 (larger ones would take gigabytes or hours, or make scrypt refuse)."""
    n, r, p = (stored[key] for key in ("n", "r", "p"))
    if not all(type(value) is int for value in (n, r, p)):
        raise ValueError("n, r and p must be whole numbers")
    if not (2 ** 10 <= n <= 2 ** 20 and n & (n - 1) == 0):
        raise ValueError(f"n = {n} is not a power of two from 1024 to 1048576")
    if not (1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError(f"r = {r} or p = {p} is out of range")


def _read(token_file: Path) -> dict | None:
    try:
        info = token_file.stat()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise AuthError(permission_advice(token_file, "read the admin token")) from None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AuthError(f"the admin token file {token_file} is writable by others; run `chmod 600 {token_file}` "
                        "and set the token again as root")
    try:
        text = token_file.read_text()
    except PermissionError:
        raise AuthError(permission_advice(token_file, "read the admin token")) from None
    try:
        stored = json.loads(text)
        if stored.get("scheme") != "scrypt":
            raise ValueError(f"unknown scheme {stored.get('scheme')!r}")
        bytes.fromhex(stored["salt"]), bytes.fromhex(stored["hash"])
        _check_cost(stored)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as error:
        raise AuthError(f"the admin token file {token_file} is damaged ({error}); set the token again as root") from error
    return stored
