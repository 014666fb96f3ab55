"""Hub admin accounts: one per person, salted scrypt hashes, slowed down and locked after wrong passwords.

Every hub command that changes something names its admin (--admin NAME; the
password from $EDGE_VERIFY_HUB_PASSWORD or a prompt). Each wrong password is
audited and makes the account wait longer before the next try (2, 4, 8 ... s, at
most 5 minutes); after LOCK_AFTER wrong passwords in a row the account is locked
until another admin unlocks it (`hub unlock-admin NAME`). A right password
resets the count. The waiting is kept in PostgreSQL, so a new process does not
reset it.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import os

from psycopg.types.json import Jsonb

from edge.exc import AuthError
from edge.fleet.errors import AdminLocked, FleetError
from edge.hub.db import HubDB, audit

PASSWORD_ENV = "EDGE_VERIFY_HUB_PASSWORD"
MIN_LENGTH = 12
LOCK_AFTER = 10
MAX_WAIT_S = 300
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=int(params["n"]), r=int(params["r"]), p=int(params["p"]),
                          maxmem=64 * 1024 * 1024, dklen=32)


def check_new_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise AuthError(f"an admin password needs at least {MIN_LENGTH} characters")
    if password != password.strip() or any(ord(character) < 32 for character in password):
        raise AuthError("an admin password must not start or end with spaces or hold control characters")
    return password


def add_admin(db: HubDB, name: str, password: str, actor: str) -> None:
    check_new_password(password)
    salt = os.urandom(16)
    with db.transaction() as connection:
        if connection.execute("SELECT 1 FROM admins WHERE name = %s", (name,)).fetchone():
            raise FleetError(f"admin {name!r} already exists")
        connection.execute("INSERT INTO admins (name, salt, hash, params) VALUES (%s, %s, %s, %s)",
                           (name, salt, hash_password(password, salt, _SCRYPT), Jsonb(_SCRYPT)))
        audit(connection, actor, "add-admin", name)


def has_admins(db: HubDB) -> bool:
    row = db.connection.execute("SELECT count(*) FROM admins").fetchone()
    db.connection.commit()
    return row[0] > 0


def authenticate(db: HubDB, name: str, password: str | None, now: datetime.datetime | None = None) -> str:
    """The actor string for audit records, or AuthError/AdminLocked. Every outcome but success is audited."""
    if not password:
        raise AuthError(f"hub commands need an admin password: set ${PASSWORD_ENV} or type it when asked")
    refusal = None
    with db.transaction() as connection:
        now = now or connection.execute("SELECT now()").fetchone()[0]
        row = connection.execute("SELECT salt, hash, params, failures, locked_until FROM admins WHERE name = %s "
                                 "FOR UPDATE", (name,)).fetchone()
        if row is None:
            audit(connection, f"unknown admin {name!r}", "login-refused", name, {"reason": "no such admin"})
            refusal = AuthError(f"no hub admin {name!r}; wrong name or password")
        else:
            salt, stored, params, failures, locked_until = row
            if locked_until is not None and locked_until > now:
                audit(connection, name, "login-refused", name, {"reason": "locked", "failures": failures})
                refusal = _locked(name, failures, locked_until, now)
            elif hmac.compare_digest(hash_password(password, bytes(salt), params), bytes(stored)):
                connection.execute("UPDATE admins SET failures = 0, locked_until = NULL WHERE name = %s", (name,))
            else:
                failures += 1
                until = _wait_until(failures, now)
                connection.execute("UPDATE admins SET failures = %s, locked_until = %s WHERE name = %s",
                                   (failures, until, name))
                audit(connection, name, "login-failed", name, {"failures": failures})
                refusal = AuthError(f"wrong password for hub admin {name!r} ({failures} in a row; "
                                    f"{'locked: another admin must run `edge-verify hub unlock-admin`' if failures >= LOCK_AFTER else 'the next try must wait'})")
    if refusal is not None:
        raise refusal
    return f"hub admin {name}"


def unlock_admin(db: HubDB, name: str, actor: str) -> None:
    with db.transaction() as connection:
        if not connection.execute("UPDATE admins SET failures = 0, locked_until = NULL WHERE name = %s",
                                  (name,)).rowcount:
            raise FleetError(f"no hub admin {name!r}")
        audit(connection, actor, "unlock-admin", name)


def _wait_until(failures: int, now: datetime.datetime) -> datetime.datetime:
    if failures >= LOCK_AFTER:
        return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return now + datetime.timedelta(seconds=min(2 ** failures, MAX_WAIT_S))


def _locked(name: str, failures: int, until: datetime.datetime, now: datetime.datetime) -> AdminLocked:
    if failures >= LOCK_AFTER:
        return AdminLocked(f"hub admin {name!r} is locked after {failures} wrong passwords; another admin must run "
                           f"`edge-verify hub unlock-admin {name}`")
    wait = max(1, int((until - now).total_seconds() + 0.999))
    return AdminLocked(f"hub admin {name!r}: too many wrong passwords; wait {wait} s before the next try")
