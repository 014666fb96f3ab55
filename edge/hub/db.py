"""The hub's data in PostgreSQL: one class, one transaction per change.

Every change of a site's staff is one transaction that takes the site row's lock,
bumps ``last_seq``, writes the people/templates rows, the change-feed row and the
audit record, and sends ``NOTIFY edge_verify_changes`` (delivered at commit) so
`hub serve` publishes it at once. A name enrolled twice at the same moment (two
doors, or the hub and a door) is decided under that lock: the first commits, the
second is refused with EnrollConflict and the refusal is audited; nothing is
overwritten.
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg.types.json import Jsonb

from edge.fleet.errors import DeviceRevoked, EnrollConflict, FleetError, HubUnavailable
from edge.hub import schema

CHANNEL = "edge_verify_changes"


def connect(dsn: str, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HubUnavailable(f"cannot reach the hub's PostgreSQL ({first}); check [database] dsn in hub.toml "
                             "and that the server runs") from None


class HubDB:
    """The hub's tables. Open one per thread (psycopg connections are not shared here)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.connection = connect(dsn)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "HubDB":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.connection.transaction():
            yield self.connection

    # ---- schema and sites ----------------------------------------------------------------------

    def create_schema(self) -> None:
        with self.transaction() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('edge-verify schema'))")
            for statement in schema.STATEMENTS:
                connection.execute(statement)
            connection.execute("INSERT INTO hub_meta (key, value) VALUES ('schema', %s) ON CONFLICT (key) DO NOTHING",
                               (str(schema.SCHEMA_VERSION),))

    def add_site(self, name: str, key_check: str, actor: str, offline_policy: str = "keep",
                 max_silence_s: int = 3600) -> None:
        with self.transaction() as connection:
            if connection.execute("SELECT 1 FROM sites WHERE name = %s", (name,)).fetchone():
                raise FleetError(f"site {name!r} already exists on this hub")
            connection.execute("INSERT INTO sites (name, key_check, offline_policy, max_silence_s) VALUES (%s, %s, %s, %s)",
                               (name, key_check, offline_policy, max_silence_s))
            audit(connection, actor, "add-site", name, {"offline_policy": offline_policy, "max_silence_s": max_silence_s})

    def set_policy(self, site: str, offline_policy: str, max_silence_s: int, actor: str) -> None:
        with self.transaction() as connection:
            updated = connection.execute("UPDATE sites SET offline_policy = %s, max_silence_s = %s WHERE name = %s",
                                         (offline_policy, max_silence_s, site)).rowcount
            if not updated:
                raise FleetError(f"no site {site!r} on this hub (`edge-verify hub init --site {site}` adds one)")
            audit(connection, actor, "set-policy", site, {"offline_policy": offline_policy,
                                                            "max_silence_s": max_silence_s})

    def site(self, name: str) -> dict:
        row = self.connection.execute("SELECT name, last_seq, key_check, offline_policy, max_silence_s FROM sites "
                                      "WHERE name = %s", (name,)).fetchone()
        self.connection.commit()
        if row is None:
            raise FleetError(f"no site {name!r} on this hub (`edge-verify hub init --site {name}` adds one)")
        return dict(zip(("name", "last_seq", "key_check", "offline_policy", "max_silence_s"), row))

    def sites(self) -> list[dict]:
        rows = self.connection.execute("SELECT name, last_seq, offline_policy, max_silence_s FROM sites "
                                       "ORDER BY name").fetchall()
        self.connection.commit()
        return [dict(zip(("name", "last_seq", "offline_policy", "max_silence_s"), row)) for row in rows]

    # ---- people: the change feed ---------------------------------------------------------------

    def people(self, site: str) -> list[dict]:
        rows = self.connection.execute(
            "SELECT p.uid, p.name, p.model, p.dim, p.origin, p.enrolled_at, count(t.uid) FROM people p "
            "LEFT JOIN templates t ON t.person = p.uid WHERE p.site = %s GROUP BY p.uid ORDER BY p.name",
            (site,)).fetchall()
        self.connection.commit()
        return [{"uid": uid, "name": name, "model": model, "dim": dim, "origin": origin,
                 "enrolled_at": enrolled.isoformat(), "templates": count}
                for uid, name, model, dim, origin, enrolled, count in rows]

    def sealed_people(self, site: str) -> tuple[int, list[dict]]:
        """(last_seq, every person with their sealed templates), read in one consistent snapshot."""
        with self.transaction() as connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = connection.execute("SELECT last_seq FROM sites WHERE name = %s", (site,)).fetchone()
            if row is None:
                raise FleetError(f"no site {site!r} on this hub")
            people = {}
            for uid, name, model, dim in connection.execute(
                    "SELECT uid, name, model, dim FROM people WHERE site = %s ORDER BY name", (site,)).fetchall():
                people[uid] = {"person": uid, "name": name, "model": model, "dim": dim, "templates": []}
            for template, person, nonce, ciphertext in connection.execute(
                    "SELECT t.uid, t.person, t.nonce, t.ciphertext FROM templates t JOIN people p ON p.uid = t.person "
                    "WHERE p.site = %s ORDER BY t.uid", (site,)).fetchall():
                people[person]["templates"].append({"id": template, "nonce": nonce, "ct": ciphertext})
        return int(row[0]), list(people.values())

    def add_person(self, site: str, name: str, model: str, dim: int, sealed: list[dict], person: str, actor: str,
                   origin: str, details: dict | None = None, check=None) -> int:
        """Commit one enrollment; returns its sequence number.

        ``sealed``: templates sealed under the site key for ``person`` (edge.fleet.sitekey).
        ``check(connection, site, seq_before)``: called under the site lock before anything is
        written, to run the duplicate check against everyone enrolled by then; it raises to refuse.
        """
        if not sealed:
            raise FleetError("an enrollment needs at least one template")
        taken = None
        with self.transaction() as connection:
            before = _lock_site(connection, site)
            taken = connection.execute("SELECT origin, enrolled_at FROM people WHERE site = %s AND name = %s",
                                       (site, name)).fetchone()
            if taken is None:
                if check is not None:
                    check(connection, site, before)
                seq = _insert_person(connection, site, before, person, name, model, dim, origin, sealed)
                audit(connection, actor, "enroll", person, {"site": site, "seq": seq, "templates": len(sealed),
                                                            "origin": origin, **(details or {})})
        if taken is not None:
            # Refused under the lock, never overwritten; the refusal itself is on record.
            self.record(actor, "conflict", name, {"site": site, "origin": origin, "enrolled_by": taken[0],
                                                  "enrolled_at": taken[1].isoformat()})
            raise EnrollConflict(f"{name} is already enrolled at site {site!r} (by {taken[0]} at "
                                 f"{taken[1]:%Y-%m-%d %H:%M:%S}); nothing was stored. Remove that person first, "
                                 "or choose another name")
        return seq

    def remove_person(self, site: str, name: str, actor: str) -> tuple[int, int]:
        """Erase a person (people, templates, and their earlier feed bodies); returns (seq, templates erased)."""
        with self.transaction() as connection:
            before = _lock_site(connection, site)
            row = connection.execute("SELECT uid FROM people WHERE site = %s AND name = %s", (site, name)).fetchone()
            if row is None:
                raise FleetError(f"{name} is not enrolled at site {site!r} (`edge-verify hub list --site {site}`)")
            person = row[0]
            count = connection.execute("SELECT count(*) FROM templates WHERE person = %s", (person,)).fetchone()[0]
            seq = _erase_person(connection, site, before, person)
            audit(connection, actor, "remove", person, {"site": site, "seq": seq, "templates_erased": count})
        return seq, count

    def rename_person(self, site: str, old: str, new: str, actor: str, reseal) -> tuple[int, int]:
        """Give a person another name; returns (seq of the change that adds them under it, templates).

        A template's seal names the person (edge.fleet.sitekey), so the templates are sealed again:
        ``reseal(person, model, dim, sealed)`` gets the person's sealed templates under the site lock and
        returns (new person id, the templates sealed for the new name). The doors follow as they follow a
        removal and an enrollment: one "remove" change for the old person, one "add" change for the new
        name, in one transaction (a door that applies the first before the second only misses the person
        meanwhile: the door stays locked for them, never open for someone else). The old name leaves the
        feed as at a removal; one audit record ("rename") names both person ids and both changes.
        """
        with self.transaction() as connection:
            before = _lock_site(connection, site)
            row = connection.execute("SELECT uid, model, dim, origin, enrolled_at FROM people WHERE site = %s AND "
                                     "name = %s", (site, old)).fetchone()
            if row is None:
                raise FleetError(f"{old} is not enrolled at site {site!r} (`edge-verify hub list --site {site}`)")
            if old != new and connection.execute("SELECT 1 FROM people WHERE site = %s AND name = %s",
                                                 (site, new)).fetchone() is not None:
                raise EnrollConflict(f"{new} is already enrolled at site {site!r}; choose another name, or remove "
                                     "that person first")
            was, model, dim, origin, enrolled_at = row
            sealed = [{"id": template, "nonce": nonce, "ct": ciphertext} for template, nonce, ciphertext in
                      connection.execute("SELECT uid, nonce, ciphertext FROM templates WHERE person = %s ORDER BY uid",
                                         (was,)).fetchall()]
            person, resealed = reseal(was, model, int(dim), sealed)
            removed = _erase_person(connection, site, before, was)
            seq = _insert_person(connection, site, removed, person, new, model, int(dim), origin, resealed,
                                 enrolled_at)
            audit(connection, actor, "rename", person, {"site": site, "seq": seq, "removed_seq": removed,
                                                        "was": was, "templates": len(resealed)})
        return seq, len(resealed)

    def changes_after(self, site: str, after: int, limit: int = 200) -> list[dict]:
        rows = self.connection.execute(
            "SELECT seq, kind, person, body, committed_at FROM changes WHERE site = %s AND seq > %s "
            "ORDER BY seq LIMIT %s", (site, after, limit)).fetchall()
        self.connection.commit()
        return [change_message(site, *row) for row in rows]

    def first_seq(self, site: str) -> int | None:
        row = self.connection.execute("SELECT min(seq) FROM changes WHERE site = %s", (site,)).fetchone()
        self.connection.commit()
        return row[0]

    # ---- devices ------------------------------------------------------------------------------

    def add_device(self, name: str, site: str, password_line: str, wrap_public: bytes, wrapped_key: bytes,
                   actor: str) -> None:
        with self.transaction() as connection:
            _lock_site(connection, site)
            row = connection.execute("SELECT revoked_at FROM devices WHERE name = %s", (name,)).fetchone()
            if row is not None:
                state = "revoked" if row[0] is not None else "active"
                raise FleetError(f"device {name!r} already exists ({state}); device names are never reused: "
                                 "choose another name")
            connection.execute("INSERT INTO devices (name, site, password_line, wrap_public, wrapped_key) "
                               "VALUES (%s, %s, %s, %s, %s)", (name, site, password_line, wrap_public, wrapped_key))
            audit(connection, actor, "add-device", name, {"site": site})

    def revoke_device(self, name: str, actor: str) -> str:
        with self.transaction() as connection:
            row = connection.execute("SELECT site, revoked_at FROM devices WHERE name = %s FOR UPDATE",
                                     (name,)).fetchone()
            if row is None:
                raise FleetError(f"no device {name!r} on this hub (`edge-verify hub list --devices`)")
            if row[1] is not None:
                raise FleetError(f"device {name!r} was already revoked at {row[1]:%Y-%m-%d %H:%M:%S}")
            connection.execute("UPDATE devices SET revoked_at = now() WHERE name = %s", (name,))
            audit(connection, actor, "revoke-device", name, {"site": row[0]})
        return row[0]

    def devices(self, site: str | None = None) -> list[dict]:
        rows = self.connection.execute(
            "SELECT name, site, created_at, revoked_at, last_seen, status FROM devices "
            "WHERE %s::text IS NULL OR site = %s ORDER BY name", (site, site)).fetchall()
        self.connection.commit()
        return [{"name": name, "site": where, "created_at": made.isoformat(),
                 "revoked_at": revoked.isoformat() if revoked else None,
                 "last_seen": seen.isoformat() if seen else None, "status": status}
                for name, where, made, revoked, seen, status in rows]

    def active_device(self, name: str, site: str) -> None:
        """DeviceRevoked unless ``name`` is an active device of ``site``."""
        row = self.connection.execute("SELECT site, revoked_at FROM devices WHERE name = %s", (name,)).fetchone()
        self.connection.commit()
        if row is None or row[0] != site:
            raise DeviceRevoked(f"device {name!r} is not a device of site {site!r}")
        if row[1] is not None:
            raise DeviceRevoked(f"device {name!r} was revoked")

    def broker_users(self) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """({device: password line}, [(device, site)]) of the active devices."""
        rows = self.connection.execute("SELECT name, site, password_line FROM devices WHERE revoked_at IS NULL").fetchall()
        self.connection.commit()
        return {name: line for name, _, line in rows}, [(name, site) for name, site, _ in rows]

    def device_seen(self, name: str, status: str | None) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE devices SET last_seen = now(), status = coalesce(%s, status) WHERE name = %s",
                               (status, name))

    # ---- events --------------------------------------------------------------------------------

    def store_events(self, site: str, device: str, events: list[dict]) -> tuple[list[str], int]:
        """Insert events once each (by id); returns (every id now stored, how many were already there)."""
        stored, duplicates = [], 0
        with self.transaction() as connection:
            for event in events:
                event_id = str(event.get("id", ""))
                if not event_id:
                    continue
                inserted = connection.execute(
                    "INSERT INTO events (id, site, device, time, person, unlock, body) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    (event_id, site, device, event.get("time"), event.get("person"),
                     event.get("unlock") if isinstance(event.get("unlock"), bool) else None, Jsonb(event))).rowcount
                duplicates += 0 if inserted else 1
                stored.append(event_id)
        return stored, duplicates

    def event_counts(self) -> dict:
        row = self.connection.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        self.connection.commit()
        return {"rows": row[0], "distinct": row[1]}

    # ---- audit ---------------------------------------------------------------------------------

    def audit_records(self, limit: int = 50) -> list[dict]:
        rows = self.connection.execute("SELECT id, time, actor, action, subject, details FROM audit "
                                       "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        self.connection.commit()
        return [{"id": row_id, "time": when.isoformat(), "actor": actor, "action": action, "subject": subject,
                 "details": details} for row_id, when, actor, action, subject, details in reversed(rows)]

    def record(self, actor: str, action: str, subject: str, details: dict | None = None) -> None:
        with self.transaction() as connection:
            audit(connection, actor, action, subject, details)


def audit(connection, actor: str, action: str, subject: str, details: dict | None = None) -> None:
    connection.execute("INSERT INTO audit (actor, action, subject, details) VALUES (%s, %s, %s, %s)",
                       (actor, action, subject, Jsonb(details or {})))


def new_uid() -> str:
    return uuid.uuid4().hex


def change_message(site: str, seq: int, kind: str, person: str, body, committed_at) -> dict:
    """What a kiosk receives for one change (also the MQTT payload, as JSON)."""
    message = {"site": site, "seq": int(seq), "kind": kind, "person": person,
               "committed_at": committed_at.timestamp()}
    if kind == "add":
        if body is None:
            message["redacted"] = True  # the person was removed later; the removal follows in the feed
        else:
            message.update(body)
    return message


def _lock_site(connection, site: str) -> int:
    """Take the site's row lock (serialises its changes); returns its last sequence number."""
    row = connection.execute("SELECT last_seq FROM sites WHERE name = %s FOR UPDATE", (site,)).fetchone()
    if row is None:
        raise FleetError(f"no site {site!r} on this hub (`edge-verify hub init --site {site}` adds one)")
    return int(row[0])


def _insert_person(connection, site: str, before: int, person: str, name: str, model: str, dim: int, origin: str,
                   sealed: list[dict], enrolled_at=None) -> int:
    """Store a person and their sealed templates, and the feed's 'add' change; returns its seq.
    ``enrolled_at``: kept from an earlier row (a rename); None is now."""
    connection.execute("INSERT INTO people (uid, site, name, model, dim, origin, enrolled_at) "
                       "VALUES (%s, %s, %s, %s, %s, %s, COALESCE(%s::timestamptz, now()))",
                       (person, site, name, model, dim, origin, enrolled_at))
    for item in sealed:
        connection.execute("INSERT INTO templates (uid, person, nonce, ciphertext) VALUES (%s, %s, %s, %s)",
                           (item["id"], person, item["nonce"], item["ct"]))
    body = {"name": name, "model": model, "dim": dim, "templates": sealed}
    return _append_change(connection, site, before, "add", person, body)


def _erase_person(connection, site: str, before: int, person: str) -> int:
    """Delete a person (their templates go with them) and append the feed's 'remove' change; returns its seq."""
    connection.execute("DELETE FROM people WHERE uid = %s", (person,))
    # The feed must not keep the name or templates of someone who left: their 'add' bodies go.
    connection.execute("UPDATE changes SET body = NULL WHERE site = %s AND person = %s AND kind = 'add'",
                       (site, person))
    return _append_change(connection, site, before, "remove", person, None)


def _append_change(connection, site: str, before: int, kind: str, person: str, body) -> int:
    seq = before + 1
    connection.execute("UPDATE sites SET last_seq = %s WHERE name = %s", (seq, site))
    connection.execute("INSERT INTO changes (site, seq, kind, person, body) VALUES (%s, %s, %s, %s, %s)",
                       (site, seq, kind, person, None if body is None else Jsonb(body)))
    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"site": site, "seq": seq})))
    return seq
