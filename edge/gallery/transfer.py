"""Moving people in and out of a gallery: export bundles, backups, and import of either.

A mixin of Gallery (store.py), kept apart so each file stays readable. Import is
all or nothing: one transaction, and a name already enrolled stops it.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from edge.exc import GalleryCorrupt, GalleryError
from edge.gallery.audit import person_ref
from edge.gallery.bundle import is_bundle, read_bundle, write_bundle
from edge.gallery.crypto import TemplateCipher
from edge.gallery.destination import check_destination, owned_files
from edge.gallery.files import fsync_folder
from edge.gallery.inputs import check_name, check_quality
from edge.gallery.schema import sqlite_errors


class GalleryTransfers:
    """export, import_ and backup for Gallery."""

    @sqlite_errors
    def export(self, path: str | os.PathLike, actor: str, overwrite: bool = False) -> dict:
        """Write every person and template into an encrypted bundle (sealed with this gallery's key)."""
        path = self._destination(path, overwrite)
        people = self._read_people()
        write_bundle(path, self._cipher, self.id, people)
        counts = {"people": len(people), "templates": sum(len(person["templates"]) for person in people)}
        with self._transaction() as connection:
            self._record(connection, actor, "export", os.path.abspath(path), counts, change=False)
        return counts

    @sqlite_errors
    def import_(self, path: str | os.PathLike, actor: str, key: bytes | None = None) -> dict:
        """Merge a bundle (from ``export``) or a backup file (from ``backup``) into this gallery.

        ``key``: the key the source was sealed with (default: this gallery's). All or nothing:
        a name that is already enrolled here stops the import with the list of conflicts.
        """
        path = Path(path)
        if path.is_file() and path.resolve() == self.path.resolve():
            raise GalleryError(f"{path} is this gallery itself; import a bundle or a backup")
        return self.merge(read_source(type(self), path, key or self._key), actor, os.path.abspath(path))

    @sqlite_errors
    def backup(self, path: str | os.PathLike, actor: str, overwrite: bool = False) -> Path:
        """Copy the gallery with SQLite's online backup (consistent even while in use); mode 0600.

        The copy opens with the same key; restore it with ``import_`` or by copying it back.
        """
        target = self._destination(path, overwrite)
        # A fresh folder of mode 0700 holds the copy until it is whole: SQLite opens files by
        # name, and nobody else can plant anything in there.
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        partial = folder / "backup.sqlite"
        try:
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            destination = sqlite3.connect(partial)
            try:
                self._connection.backup(destination)
            finally:
                destination.close()
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
            type(self).open(partial, self._key, readonly=True).close()  # a backup that does not open is no backup
            os.replace(partial, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        fsync_folder(target.parent)
        with self._transaction() as connection:
            self._record(connection, actor, "backup", os.path.abspath(target), {}, change=False)
        return target

    def _destination(self, path, overwrite: bool) -> Path:
        """Where a backup or bundle may go: never over the gallery's own files (destination.py)."""
        path = check_destination(path, owned_files(self.path, self.key_path), overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _read_people(self) -> list[dict]:
        """Every person with decrypted templates, for export and import."""
        rows = self._connection.execute(
            "SELECT t.id, p.id, p.name, t.model, t.dim, t.nonce, t.ciphertext, t.quality, t.created_at, p.created_at "
            "FROM templates t JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id").fetchall()
        people: dict[str, dict] = {}
        for row in rows:
            person = people.setdefault(row[2], {"name": row[2], "created_at": row[9], "templates": []})
            person["templates"].append({"model": row[3], "vector": self._open_template(*row[:7]),
                                        "quality": None if row[7] is None else json.loads(row[7]), "created_at": row[8]})
        return list(people.values())

    def merge(self, people: list[dict], actor: str, source: str) -> dict:
        """Add the people read from a bundle or backup (read_source), all or nothing."""
        return self._merge(people, actor, source)

    def _merge(self, people: list[dict], actor: str, source: str) -> dict:
        names, models, dims = check_people(people, source)
        count = sum(len(person["templates"]) for person in people)
        with self._transaction() as connection:
            taken = [name for name in names if connection.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone()]
            if taken:
                raise GalleryError(f"already enrolled in {self.path}: {', '.join(taken)}; nothing was imported "
                                   "(remove or rename them first)")
            if models:
                self._check_model(connection, models.pop(), dims.pop())
            added = []
            for person in people:
                person_id = connection.execute("INSERT INTO people (name, created_at) VALUES (?, ?)",
                                               (person["name"], person["created_at"])).lastrowid
                added.append(person_ref(person_id))
                for template in person["templates"]:
                    quality = check_quality(template["quality"], 1)[0]
                    self._insert_template(connection, person_id, person["name"], template["vector"],
                                          template["model"], quality, template["created_at"])
            self._record(connection, actor, "import", source, {"people": added, "templates": count})
        return {"people": len(names), "templates": count}


def check_people(people: list[dict], source: str) -> tuple[list[str], set, set]:
    """(names, models, dimensions) of people to import, or GalleryError: checked before anything is made."""
    names = [check_name(person["name"]) for person in people]
    if len(set(names)) != len(names):
        raise GalleryError(f"{source} lists a name twice; nothing was imported")
    models = {template["model"] for person in people for template in person["templates"]}
    dims = {len(template["vector"]) for person in people for template in person["templates"]}
    if len(models) > 1 or len(dims) > 1:
        raise GalleryError(f"{source} mixes embedding models {sorted(models)}; nothing was imported")
    return names, models, dims


def read_source(gallery_class, path: Path, key: bytes) -> list[dict]:
    """Every person of a bundle or backup, decrypted with ``key``; the source is only read (a backup
    on read-only media works). A damaged source is said to be the source, with nothing imported."""
    path = Path(path)
    if not path.is_file():
        raise GalleryError(f"no bundle or backup at {path}")
    if is_bundle(path):
        return read_bundle(path, TemplateCipher(key))
    try:
        with gallery_class.open(path, key, readonly=True) as source:
            return source._read_people()
    except GalleryCorrupt as error:
        raise GalleryError(f"{path} is neither an intact backup nor an intact bundle ({_reason(error)}); nothing was "
                           "imported: use another backup") from None


def _reason(error: GalleryCorrupt) -> str:
    """The damage, without the recovery advice meant for a live gallery."""
    return str(error).split("; recovery:", 1)[0]
