"""The gallery: enrolled people and their encrypted templates in one SQLite file.

Every change is one transaction that also writes its audit record (before the
commit) and bumps a change counter, so kill -9 at any moment leaves the gallery as
it was or fully updated, and a running daemon sees a change by polling
``version()`` and calling ``load_matrix()`` again, without a restart. Read
``version()`` before ``load_matrix()``: a change in between then only causes one
extra reload.

The audit log names a person "person #N" (their row number, never reused), not by name:
removing the person erases the only place that number's name is kept.

Templates are float32 vectors of any dimension (stored with each template),
sealed with AES-GCM (see crypto.py). Templates of one embedding model only:
mixing models gives meaningless distances, so another model id is refused.
"""
from __future__ import annotations

import hmac
import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from edge.exc import GalleryError, GalleryKeyMismatch
from edge.gallery import schema
from edge.gallery.audit import (ACKNOWLEDGE, AuditLog, Head, audit_path, breaks_acknowledged_last, default_actor,
                                head_mac, person_ref)
from edge.gallery.auth import token_path, token_set_at
from edge.gallery.crypto import (InvalidTag, TemplateCipher, audit_key, template_context, template_contexts,
                                 vector_to_bytes)
from edge.gallery.files import adopt_owner, fsync_folder, no_permission
from edge.gallery.inputs import check_model, check_name, check_quality, check_vectors, normal_name
from edge.gallery.schema import sqlite_errors
from edge.gallery.sync import GalleryFleetSync
from edge.gallery.transfer import GalleryTransfers


class Gallery(GalleryTransfers, GalleryFleetSync):
    """An open gallery file. Use ``Gallery.open`` or ``Gallery.create``; close it (or use ``with``).

    One thread at a time: the daemon may open it in one thread and poll it in another,
    but not use it from two at once. Other processes may have the file open at the same
    time (the fleet agent writes while the daemon reads); within one process, open a
    file's Gallery only while no other Gallery of that file is open (opening reads the
    header with a plain open and close, which drops the POSIX locks of every SQLite
    connection of this process to that file).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, key: bytes, meta: dict,
                 identity: tuple[int, int] | None = None):
        self._connection = connection
        self._key = key
        self._cipher = TemplateCipher(key)
        self.path = path
        self.id = meta["gallery_id"]
        self.audit = AuditLog(audit_path(path), key)
        self.file_id = identity if identity is not None else file_id(path)
        self.key_path: Path | None = None  # set by open_gallery: the key file, so nothing writes over it

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, key: bytes, readonly: bool = False) -> "Gallery":
        """Open an existing gallery; GalleryCorrupt for a damaged file, GalleryKeyMismatch for a wrong key.

        ``readonly``: for reading a backup, which is then never changed (nor its folder written).
        """
        path = Path(path)
        cipher = TemplateCipher(key)
        # Taken before connecting: if the file is swapped in between, the next replaced() says so.
        identity = file_id(path)
        # SQLite's -wal and -shm take the owner and mode of the gallery file when root opens it (its unix
        # VFS chowns them), so they follow the owner model without us. Never open and close them here:
        # closing any descriptor of the -shm drops the POSIX locks SQLite holds on it for this process,
        # and the next process to open the gallery then rebuilds the shared WAL index under every other
        # (SIGBUS, "locking protocol", stale reads).
        connection = schema.connect_readonly(path) if readonly else schema.connect(path)
        try:
            meta = schema.validate(connection, path)
            if not cipher.matches(f"gallery:{meta['gallery_id']}", meta["key_check"]):
                raise GalleryKeyMismatch(f"the key does not match this gallery {path} (wrong --key file, or the key "
                                         "was replaced); nothing was decrypted. Use the key the gallery was made with")
        except BaseException:
            connection.close()
            raise
        return cls(connection, path, bytes(key), meta, identity)

    @classmethod
    def create(cls, path: str | os.PathLike, key: bytes, actor: str | None = None) -> "Gallery":
        """Make a new, empty gallery (mode 0600). It is built aside and renamed, so no half-made file is left."""
        path = Path(path)
        if path.exists():
            raise GalleryError(f"gallery {path} already exists; open it, or move it aside to start a new one")
        path.parent.mkdir(parents=True, exist_ok=True)
        cipher = TemplateCipher(key)
        building = path.with_name(f".{path.name}.creating")
        leftovers = (building, Path(f"{building}-wal"), Path(f"{building}-shm"))
        try:
            for leftover in leftovers:
                leftover.unlink(missing_ok=True)
            descriptor = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except PermissionError:
            raise no_permission(path.parent, "create the gallery in") from None
        try:
            adopt_owner(descriptor, path.parent)
        finally:
            os.close(descriptor)
        try:
            cls._build(building, path, cipher, key, actor)
            os.replace(building, path)
        finally:
            for leftover in leftovers:  # nothing half made is left behind, whatever failed
                leftover.unlink(missing_ok=True)
        fsync_folder(path.parent)
        return cls.open(path, key)

    @classmethod
    def _build(cls, building: Path, path: Path, cipher: TemplateCipher, key: bytes, actor: str | None) -> None:
        """Tables, meta and the audit record of a new gallery, in the file being built."""
        connection = schema.connect(building, create=True)
        gallery_id = uuid.uuid4().hex
        try:
            connection.execute("BEGIN IMMEDIATE")
            schema.initialise(connection)
            meta = {"gallery_id": gallery_id, "key_check": cipher.key_check(f"gallery:{gallery_id}"),
                    "created_at": _now(), "generation": "0"}
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            details = {"gallery_id": gallery_id, "admin_token_set_at": token_set_at(token_path(path))}
            records = AuditLog(audit_path(path), key).append(actor or default_actor(), "create",
                                                             os.path.abspath(path), details)
            _set_head(connection, records[-1], audit_key(key), gallery_id, 0)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise schema.database_error(building, error) from error
        finally:
            connection.close()

    def close(self) -> None:
        self._connection.close()

    @property
    def key(self) -> bytes:
        """The gallery key (for checks that need it, e.g. of the audit chain)."""
        return self._key

    def reopen(self) -> "Gallery":
        """Open whatever gallery file is at this gallery's path now, with the same key."""
        return type(self).open(self.path, self._key)

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------------------------

    @sqlite_errors
    def version(self) -> int:
        """A counter bumped by every change; cheap enough to poll every second."""
        return int(self._meta("generation"))

    @sqlite_errors
    def state(self) -> tuple:
        """What changes with every change, whoever made it: (gallery id, generation, audit head).

        Also different when another gallery's content was copied over this file."""
        meta = dict(self._connection.execute(
            "SELECT key, value FROM meta WHERE key IN ('gallery_id', 'generation', 'audit_hash')"))
        return meta.get("gallery_id"), meta.get("generation"), meta.get("audit_hash")

    def replaced(self) -> bool:
        """True when the file at ``path`` is not the one this connection reads any more: moved
        aside, deleted, or replaced by another file (a restore). Then reopen the path."""
        return file_id(self.path) != self.file_id

    @sqlite_errors
    def model(self) -> str | None:
        """The embedding model id of the stored templates (None while the gallery is empty)."""
        return self._meta("model")

    @sqlite_errors
    def list_people(self) -> list[dict]:
        rows = self._connection.execute(
            "SELECT p.name, count(t.id), p.created_at FROM people p LEFT JOIN templates t ON t.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name")
        return [{"name": name, "templates": count, "created_at": created} for name, count, created in rows]

    @sqlite_errors
    def person_ref(self, name: str) -> str:
        """How the audit log and, after a removal, the events name this person: "person #N"."""
        return person_ref(self._person(self._connection, name)[0])

    @sqlite_errors
    def show(self, name: str) -> dict:
        person_id, created = self._person(self._connection, name)
        name = normal_name(name)
        rows = self._connection.execute(
            "SELECT id, model, dim, quality, created_at FROM templates WHERE person_id = ? ORDER BY id", (person_id,))
        templates = [{"id": template_id, "model": model, "dim": dim, "created_at": made,
                      "quality": None if quality is None else json.loads(quality)}
                     for template_id, model, dim, quality, made in rows]
        return {"name": name, "person": person_ref(person_id), "created_at": created, "templates": templates}

    @sqlite_errors
    def summary(self) -> dict:
        people, templates = self._connection.execute(
            "SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM templates)").fetchone()
        dim = self._meta("dim")
        return {"path": str(self.path), "gallery_id": self.id, "created_at": self._meta("created_at"),
                "model": self._meta("model"), "dim": None if dim is None else int(dim),
                "people": people, "templates": templates, "version": self.version(),
                "audit_log": str(self.audit.path), "audit_seq": self.audit_head()[0]}

    @sqlite_errors
    def audit_head(self) -> tuple[int, str | None]:
        """(seq, hash) of the audit record of the last change; (0, None) before any."""
        seq = self._meta("audit_seq")
        return (0, None) if seq is None else (int(seq), self._meta("audit_hash"))

    @sqlite_errors
    def integrity_check(self) -> list[str]:
        return schema.integrity_check(self._connection, self.path)

    @sqlite_errors
    def load_matrix(self, model: str | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Decrypt every template once: (names, person index per row, float32 matrix (M, D)).

        ``names`` holds each person with templates once, sorted; row r belongs to
        ``names[person_index[r]]``. With ``model`` given, a gallery of another model is refused.
        Any template that fails authentication fails the whole load: never a partial gallery.
        """
        connection = self._connection
        connection.execute("BEGIN")  # one snapshot, even while an enrollment commits
        try:
            self._check_model(connection, model, None)
            rows = connection.execute(
                "SELECT t.id, p.id, p.name, t.model, t.dim, t.nonce, t.ciphertext FROM templates t "
                "JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id").fetchall()
            dim = self._meta("dim")
        finally:
            connection.execute("COMMIT")
        models = {row[3] for row in rows}
        if len(models) > 1 or (model is not None and models and models != {model}):
            raise GalleryError(f"gallery {self.path} holds templates of models {sorted(models)}; the engine is "
                               f"{model!r}: enroll everyone again with one model")
        names, index = [], []
        for row in rows:
            if not names or names[-1] != row[2]:
                names.append(row[2])
            index.append(len(names) - 1)
        matrix = self._open_templates(rows) if rows else np.zeros((0, int(dim or 0)), np.float32)
        return names, np.asarray(index, dtype=np.intp), matrix

    # ---- changing ------------------------------------------------------------------------------

    @sqlite_errors
    def add_person_templates(self, name: str, vectors, model: str, actor: str, quality=None, *,
                             append: bool = False, audit_details: dict | None = None) -> int:
        """Enroll ``name`` with K templates (K, D) in one transaction; returns K.

        An enrolled name is refused unless ``append`` (more templates for that person).
        ``quality``: None, one dict for all templates, or one dict per template.
        ``audit_details``: more for the audit record (e.g. a duplicate warning overridden with --force).
        """
        name, model = check_name(name), check_model(model)
        matrix = check_vectors(vectors)
        qualities = check_quality(quality, len(matrix))
        created = _now()
        with self._transaction() as connection:
            self._check_model(connection, model, matrix.shape[1])
            found = connection.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if found and not append:
                count = connection.execute("SELECT count(*) FROM templates WHERE person_id = ?", found).fetchone()[0]
                raise GalleryError(f"{name} is already enrolled ({count} templates); remove them first, or add "
                                   "templates to the existing person")
            person_id = found[0] if found else connection.execute(
                "INSERT INTO people (name, created_at) VALUES (?, ?)", (name, created)).lastrowid
            for vector, note in zip(matrix, qualities):
                self._insert_template(connection, person_id, name, vector, model, note, created)
            self._record(connection, actor, "add", person_ref(person_id),
                         {**(audit_details or {}), "templates": len(matrix), "model": model, "new_person": not found})
        return len(matrix)

    @sqlite_errors
    def remove_person(self, name: str, actor: str) -> int:
        """Erase a person and every template of theirs; returns how many templates were erased."""
        with self._transaction() as connection:
            person_id, _ = self._person(connection, name)
            count = connection.execute("SELECT count(*) FROM templates WHERE person_id = ?", (person_id,)).fetchone()[0]
            connection.execute("DELETE FROM people WHERE id = ?", (person_id,))  # templates go by ON DELETE CASCADE
            if connection.execute("SELECT count(*) FROM templates").fetchone()[0] == 0:
                connection.execute("DELETE FROM meta WHERE key IN ('model', 'dim')")  # empty: any model may come next
            self._record(connection, actor, "remove", person_ref(person_id), {"templates_erased": count})
        # Old pages of the erased rows also live in the WAL until a checkpoint; best effort
        # (a reading daemon can hold it back; secure_delete has zeroed the main file's copy).
        self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    @sqlite_errors
    def rename(self, old: str, new: str, actor: str) -> None:
        """Rename a person; templates are sealed again, because the name is part of their associated data."""
        new = check_name(new)
        with self._transaction() as connection:
            person_id, _ = self._person(connection, old)
            if connection.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise GalleryError(f"{new} is already enrolled; choose another name or remove that person first")
            rows = connection.execute("SELECT t.id, p.id, p.name, t.model, t.dim, t.nonce, t.ciphertext FROM templates t "
                                      "JOIN people p ON p.id = t.person_id WHERE p.id = ?", (person_id,)).fetchall()
            connection.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))
            for row in rows:
                vector = self._open_template(*row)
                self._seal_into(connection, row[0], person_id, new, vector, row[3])
            self._record(connection, actor, "rename", person_ref(person_id), {"templates": len(rows)})

    # ---- internals -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE takes the write lock first, so the audit log is appended in commit order."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
            self._connection.execute("COMMIT")
        except BaseException:
            if self._connection.in_transaction:  # a failed COMMIT may already have rolled back
                self._connection.execute("ROLLBACK")
            raise

    def _record(self, connection, actor: str, action: str, subject: str, details: dict, change: bool = True) -> None:
        """Audit record first (after checking the log still ends as this gallery left it), then the head
        and change counter, all before the caller's COMMIT."""
        records = self.audit.append(actor or default_actor(), action, subject, details, head=self.checked_head())
        generation = int(self._meta("generation")) + (1 if change else 0)
        _set_meta(connection, "generation", str(generation))
        _set_head(connection, records[-1], self.audit.mac_key, self.id, generation)

    @sqlite_errors
    def checked_head(self) -> Head | None:
        """The head of the audit chain as this gallery stored it, with whether its HMAC checks out."""
        seq, digest = self.audit_head()
        if seq == 0:
            return None
        expected = head_mac(self.audit.mac_key, self.id, self._meta("generation"), seq, digest)
        stored = self._meta("audit_head_mac") or ""
        return Head(seq, digest, hmac.compare_digest(stored, expected))

    @sqlite_errors
    def acknowledge_audit_breaks(self, actor: str) -> list[dict]:
        """An admin has looked at the reported breaks of the audit log: record that; returns the break
        records acknowledged (a break found only now is recorded first, and acknowledged too)."""
        with self._transaction() as connection:
            self._record(connection, actor, ACKNOWLEDGE, "audit log", {}, change=False)
        return breaks_acknowledged_last(self.audit.path)

    @sqlite_errors
    def audited(self, actor: str, action: str, subject: str, details: dict, apply: Callable[[], None]) -> None:
        """Record a change kept outside the gallery file (the admin token), and make it with ``apply``
        inside the same transaction: a failed ``apply`` leaves the head where it was."""
        with self._transaction() as connection:
            self._record(connection, actor, action, subject, details, change=False)
            apply()

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _person(self, connection, name: str) -> tuple[int, str]:
        row = connection.execute("SELECT id, created_at FROM people WHERE name = ?", (normal_name(name),)).fetchone()
        if row is None:
            raise GalleryError(f"nobody named {name!r} is enrolled in {self.path} (see `edge-verify gallery list`)")
        return row

    def _check_model(self, connection, model: str | None, dim: int | None) -> None:
        stored_model, stored_dim = self._meta("model"), self._meta("dim")
        if model is not None and stored_model is not None and model != stored_model:
            raise GalleryError(f"gallery {self.path} holds templates of model {stored_model!r}, not {model!r}; "
                               "templates of different models cannot be compared: enroll everyone again into a new gallery")
        if dim is not None and stored_dim is not None and dim != int(stored_dim):
            raise GalleryError(f"gallery {self.path} holds {stored_dim}-d templates; these are {dim}-d")
        if dim is not None and stored_model is None:
            _set_meta(connection, "model", model)
            _set_meta(connection, "dim", str(dim))

    def _insert_template(self, connection, person_id, name, vector, model, quality, created) -> None:
        # The row id is part of the associated data, so the row exists before it is sealed.
        template_id = connection.execute(
            "INSERT INTO templates (person_id, model, dim, nonce, ciphertext, quality, created_at) "
            "VALUES (?, ?, ?, x'', x'', ?, ?)", (person_id, model, len(vector), quality, created)).lastrowid
        self._seal_into(connection, template_id, person_id, name, vector, model)

    def _seal_into(self, connection, template_id, person_id, name, vector, model) -> None:
        context = template_context(self.id, person_id, name, template_id, model, len(vector))
        nonce, sealed = self._cipher.seal(vector_to_bytes(vector), context)
        connection.execute("UPDATE templates SET nonce = ?, ciphertext = ? WHERE id = ?", (nonce, sealed, template_id))

    def _open_templates(self, rows: list) -> np.ndarray:
        """The (M, D) matrix of template rows (id, person id, name, model, dim, nonce, ciphertext), with the
        checks of :meth:`_open_template` on every row; only the decryption is done row by row."""
        contexts = template_contexts(self.id, (row[:5] for row in rows))
        plaintexts = [self._plaintext(row, context) for row, context in zip(rows, contexts)]
        dims = {row[4] for row in rows}
        if len(dims) > 1:
            raise schema.corrupt(self.path, f"has templates of different dimensions ({sorted(dims)})")
        # a bytearray makes the matrix writable without a second copy (as np.stack's was)
        joined = bytearray().join(plaintexts)
        del plaintexts
        matrix = np.frombuffer(joined, dtype="<f4").astype(np.float32, copy=False).reshape(len(rows), dims.pop())
        broken = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if broken.size:
            template_id, _, name = rows[broken[0]][:3]
            raise schema.corrupt(self.path, f"has a template ({template_id}, of {name!r}) that is not finite")
        return matrix

    def _plaintext(self, row, context: bytes) -> bytes:
        template_id, _, name, _, dim, nonce, ciphertext = row
        try:
            data = self._cipher.open(nonce, ciphertext, context)
        except InvalidTag:
            data = None
        if data is None or len(data) != 4 * dim:
            raise schema.corrupt(self.path, f"has a template ({template_id}, of {name!r}) that fails authentication "
                                 "(altered, or moved from another row)")
        return data

    def _open_template(self, template_id, person_id, name, model, dim, nonce, ciphertext) -> np.ndarray:
        """One template row opened, with the same checks as a whole matrix (:meth:`_open_templates`)."""
        return self._open_templates([(template_id, person_id, name, model, dim, nonce, ciphertext)])[0]


def file_id(path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _set_meta(connection, key: str, value: str) -> None:
    connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _set_head(connection, record: dict, mac_key: bytes, gallery_id: str, generation: int) -> None:
    _set_meta(connection, "audit_seq", str(record["seq"]))
    _set_meta(connection, "audit_hash", record["hash"])
    _set_meta(connection, "audit_head_mac", head_mac(mac_key, gallery_id, generation, record["seq"], record["hash"]))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
