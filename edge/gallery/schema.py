"""The gallery's SQLite layout, and opening a file safely.

Tables (schema version in PRAGMA user_version):
    meta       key -> value: gallery_id, key_check, created_at, model, dim,
               generation (bumped by every change), audit_seq/audit_hash (the
               audit record of the last change)
    people     id, name (unique), created_at
    templates  id, person_id, model, dim, nonce, ciphertext, quality (JSON), created_at

The file is opened in WAL mode with synchronous=FULL, so a commit is durable and a
process killed at any point leaves the last committed state. Opening checks the
header, the schema and PRAGMA quick_check, and refuses a damaged file outright:
a partly readable gallery could silently drop people or keep erased ones.
"""
from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from edge.disk import low_on_space, space_advice
from edge.exc import GalleryCorrupt, GalleryError
from edge.gallery.files import no_permission

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLITE_CORRUPT, SQLITE_TOOBIG (a damaged record length: a gallery never stores anything near
# SQLite's size limit), SQLITE_NOTADB
_CORRUPT_CODES = {11, 18, 26}
_IOERR, _FULL = 10, 13

TABLES = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE people (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE templates (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id  INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    dim        INTEGER NOT NULL CHECK (dim > 0),
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    quality    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX templates_by_person ON templates(person_id);
"""


def recovery_hint(path: Path) -> str:
    return (f"recovery: move {path} aside, then restore the last backup with "
            f"`edge-verify gallery import BACKUP --gallery {path}` (BACKUP is a file made by "
            "`edge-verify gallery backup` or `gallery export`), or enroll everyone again")


def corrupt(path: Path, what: str) -> GalleryCorrupt:
    return GalleryCorrupt(f"gallery {path} {what}; {recovery_hint(path)}")


def database_error(path: Path, error: sqlite3.Error) -> GalleryError:
    """Turn an SQLite error into a one-line gallery error."""
    code = getattr(error, "sqlite_errorcode", None)
    text = str(error)
    if (code is not None and code & 0xFF == _FULL) or "disk is full" in text or (
            ("disk I/O error" in text or (code is not None and code & 0xFF == _IOERR)) and low_on_space(path)):
        return GalleryError(f"gallery {path}: {space_advice(path)}; nothing was changed")
    if (code is not None and code & 0xFF in _CORRUPT_CODES) or "malformed" in text or "not a database" in text:
        return corrupt(path, f"is damaged ({text})")
    if ("unable to open" in text or "readonly" in text) and not _writable(path):
        return no_permission(path, "write the gallery")
    if "locked" in text or "busy" in text:
        return GalleryError(f"gallery {path} is busy (another enrollment or import is running); try again")
    return GalleryError(f"gallery {path}: {text}")


def _writable(path: Path) -> bool:
    """SQLite needs the file and its folder (for the -wal and -shm files) writable."""
    path = Path(path)
    return os.access(path.parent, os.W_OK | os.X_OK) and (not path.exists() or os.access(path, os.R_OK | os.W_OK))


def connect(path: Path, create: bool = False) -> sqlite3.Connection:
    """A connection with our pragmas, or GalleryError; never creates a file unless asked."""
    if not create:
        check_header(path)
    mode = "rwc" if create else "rw"
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, isolation_level=None,
                                     timeout=10.0, check_same_thread=False)
    except sqlite3.Error as error:
        raise database_error(path, error) from error
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = FULL")
        # Erased templates are overwritten on disk, not left in free pages (erasure on request).
        connection.execute("PRAGMA secure_delete = ON")
        if create:
            connection.execute("PRAGMA journal_mode = WAL")
        elif connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as error:
        connection.close()
        raise database_error(path, error) from error
    return connection


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a backup (or any gallery file) that changes nothing on disk.

    A backup with no -wal file beside it holds everything in itself: it is read as
    immutable, so SQLite makes no -shm or -wal file beside it and needs no write access
    there (read-only media). A file with a -wal beside it (a copy of a live gallery) is
    opened read-only the ordinary way, so the pages in that -wal are read too.
    """
    check_header(path)
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as error:
        raise database_error(path, error) from error
    return connection


def check_header(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        raise GalleryError(f"no gallery at {path}; enroll someone first (`edge-verify enroll NAME ...`) "
                           "or pass --gallery PATH") from None
    except PermissionError:
        raise no_permission(path, "read the gallery") from None
    except OSError as error:
        raise GalleryError(f"gallery {path} cannot be read ({error.strerror})") from error
    if len(header) < 100:
        raise corrupt(path, "is empty or truncated")
    if not header.startswith(SQLITE_MAGIC):
        raise corrupt(path, "is not an SQLite file (overwritten or garbage)")


def initialise(connection: sqlite3.Connection) -> None:
    """Create the tables of a new, empty file (inside the caller's transaction)."""
    for statement in TABLES.split(";"):
        if statement.strip():
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def validate(connection: sqlite3.Connection, path: Path) -> dict:
    """Check the schema and integrity of an opened file; returns the meta table."""
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise GalleryError(f"gallery {path} has schema {version}; this edge-verify reads up to {SCHEMA_VERSION} "
                               "(it was written by a newer version: upgrade edge-verify)")
        if version != SCHEMA_VERSION or not {"meta", "people", "templates"} <= tables:
            raise corrupt(path, "is an SQLite file but not an edge-verify gallery")
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise corrupt(path, f"fails its integrity check ({problems[0].splitlines()[-1][:120]})")
        meta = dict(connection.execute("SELECT key, value FROM meta"))
    except sqlite3.Error as error:
        raise database_error(path, error) from error
    missing = [key for key in ("gallery_id", "key_check", "generation") if key not in meta]
    if missing:
        raise corrupt(path, f"lacks its {', '.join(missing)}")
    return meta


def integrity_check(connection: sqlite3.Connection, path: Path) -> list[str]:
    """PRAGMA integrity_check (the thorough one): ['ok'] or the problems found."""
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.Error as error:
        raise database_error(path, error) from error


def sqlite_errors(method):
    """Method decorator: SQLite errors become one-line GalleryErrors naming ``self.path``."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise database_error(self.path, error) from error
    return wrapper
