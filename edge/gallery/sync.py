"""Applying the hub's change feed to a kiosk's gallery (edge/fleet/agent.py is the caller).

A mixin of Gallery (store.py), like transfer.py. The gallery remembers which site
it follows and the sequence number of the last change applied (meta
``fleet_site``, ``fleet_seq``), and each hub person's id (meta
``fleet_person:ID`` -> name). Changes are applied in one transaction together with
the new sequence number, after checking that they continue exactly where the
gallery stands: a change is never applied twice and none is skipped, whatever
order messages arrive in or however often the kiosk was killed. Each batch is
one audit record (person ids, not names) and one generation step, so a running
daemon reloads once.
"""
from __future__ import annotations

import time

from edge.exc import GalleryError
from edge.gallery.inputs import check_model, check_name, check_vectors
from edge.gallery.schema import sqlite_errors

_PERSON = "fleet_person:"


class GalleryFleetSync:
    """fleet_position, apply_fleet_changes and apply_fleet_snapshot for Gallery."""

    @sqlite_errors
    def fleet_position(self) -> tuple[str | None, int]:
        """(site followed, last applied sequence number); (None, 0) for a gallery not in a fleet."""
        seq = self._meta("fleet_seq")
        return self._meta("fleet_site"), 0 if seq is None else int(seq)

    @sqlite_errors
    def apply_fleet_changes(self, site: str, after: int, changes: list[dict], actor: str) -> int:
        """Apply ``changes`` (consecutive, the first numbered ``after`` + 1) in one transaction; returns
        the new sequence number. GalleryError, with nothing changed, if the gallery is not at ``after``.

        A change: {"seq", "kind": "add", "person", "name", "model", "vectors"}, {"seq", "kind":
        "remove", "person"} or {"seq", "kind": "skip"} (an enrollment erased at the hub since)."""
        if not changes:
            return after
        for offset, change in enumerate(changes, start=1):
            if change["seq"] != after + offset:
                raise GalleryError(f"fleet changes must follow on from {after} without gaps; got {change['seq']} "
                                   f"at position {offset}")
        added, removed = [], []
        with self._transaction() as connection:
            self._check_position(connection, site, after)
            for change in changes:
                if change["kind"] == "add":
                    self._fleet_add(connection, change)
                    added.append(change["person"])
                elif change["kind"] == "remove":
                    if self._fleet_remove(connection, change["person"]):
                        removed.append(change["person"])
                elif change["kind"] != "skip":
                    raise GalleryError(f"unknown fleet change kind {change['kind']!r}")
            last = changes[-1]["seq"]
            self._set_position(connection, site, last)
            self._record(connection, actor, "fleet-sync", site,
                         {"from": after, "to": last, "added": added, "removed": removed})
        if removed:
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as remove_person: erased rows leave the WAL
        return last

    @sqlite_errors
    def apply_fleet_snapshot(self, site: str, seq: int, people: list[dict], actor: str) -> int:
        """Make the gallery hold exactly ``people`` (each {"person", "name", "model", "vectors"}) of
        ``site`` at sequence ``seq``, in one transaction: everyone else is erased."""
        with self._transaction() as connection:
            before = connection.execute("SELECT count(*) FROM people").fetchone()[0]
            connection.execute("DELETE FROM people")
            connection.execute("DELETE FROM meta WHERE key IN ('model', 'dim') OR key LIKE ?", (_PERSON + "%",))
            for person in people:
                self._fleet_add(connection, person)
            self._set_position(connection, site, seq)
            self._record(connection, actor, "fleet-snapshot", site,
                         {"seq": seq, "people": len(people), "replaced": before})
        self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return seq

    # ---- internals -----------------------------------------------------------------------------

    def _check_position(self, connection, site: str, after: int) -> None:
        followed, seq = self.fleet_position()
        if followed is not None and followed != site:
            raise GalleryError(f"gallery {self.path} follows site {followed!r}, not {site!r}: a kiosk belongs to one "
                               "site (provision it again to move it)")
        if seq != after:
            raise GalleryError(f"gallery {self.path} is at fleet change {seq}, not {after}; nothing was applied")

    def _set_position(self, connection, site: str, seq: int) -> None:
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('fleet_site', ?)", (site,))
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('fleet_seq', ?)", (str(int(seq)),))

    def _fleet_add(self, connection, person: dict) -> None:
        name, model = check_name(person["name"]), check_model(person["model"])
        matrix = check_vectors(person["vectors"])
        self._check_model(connection, model, matrix.shape[1])
        # The hub is the truth: a person of the same name from before (a local enrollment) makes way.
        connection.execute("DELETE FROM people WHERE name = ?", (name,))
        connection.execute("DELETE FROM meta WHERE key LIKE ? AND value = ?", (_PERSON + "%", name))
        person_id = connection.execute("INSERT INTO people (name, created_at) VALUES (?, ?)",
                                       (name, _now())).lastrowid
        for vector in matrix:
            self._insert_template(connection, person_id, name, vector, model, None, _now())
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_PERSON + person["person"], name))

    def _fleet_remove(self, connection, person: str) -> bool:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (_PERSON + person,)).fetchone()
        if row is None:
            return False  # enrolled and removed while this kiosk was away: it never had them
        connection.execute("DELETE FROM people WHERE name = ?", (row[0],))
        connection.execute("DELETE FROM meta WHERE key = ?", (_PERSON + person,))
        if connection.execute("SELECT count(*) FROM templates").fetchone()[0] == 0:
            connection.execute("DELETE FROM meta WHERE key IN ('model', 'dim')")
        return True


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
