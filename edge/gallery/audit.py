"""The audit trail: who changed the gallery, what, and when.

One JSON object per line, appended and fsynced before the change it describes is
committed, so no change lands without its record. Each record carries

    seq      1, 2, 3, ... with no gaps
    time     ISO-8601 UTC
    actor    who (OS user, uid)
    action   what: create, add, remove, rename, import, export, backup, set-token
    subject  the person or file acted on
    details  counts and model ids; never templates, images or anything biometric
    prev     the hash of the record before (64 zeros for the first)
    hash     sha256 of the canonical JSON of all fields above

so editing, deleting or reordering a record breaks the chain at that record.
Cutting records off the end leaves a valid shorter chain; the gallery therefore
remembers the seq and hash of the record of its own last change, and
`edge-verify gallery verify` checks that record is still in the log.

A crash after a record is written but before its change commits leaves a record of
a change that never landed (never the reverse); records after the gallery's head
are reported by `gallery verify` so they can be told apart.
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterator, NamedTuple

from edge.exc import GalleryError
from edge.gallery.files import fsync_folder

GENESIS = "0" * 64
FIELDS = ("seq", "time", "actor", "action", "subject", "details", "prev", "hash")
_TAIL_CHUNK = 4096


class ChainReport(NamedTuple):
    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str | None


def audit_path(gallery_path: str | os.PathLike) -> Path:
    """The log lives beside the gallery: gallery.sqlite -> gallery.audit.jsonl."""
    return Path(gallery_path).with_suffix(".audit.jsonl")


def default_actor() -> str:
    uid = os.geteuid()
    try:
        return f"{getpass.getuser()} (uid {uid})"
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return f"uid {uid}"


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict) -> str:
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


class AuditLog:
    """Append-only writer for one log file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, actor: str, action: str, subject: str, details: dict | None = None) -> dict:
        """Write one chained record, fsynced, and return it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Gallery changes are already serialised by SQLite's write lock; the token
            # command is not, so the log takes its own lock.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            last = self._last_record(descriptor)
            record = {
                "seq": last["seq"] + 1 if last else 1,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "actor": str(actor),
                "action": str(action),
                "subject": str(subject),
                "details": details or {},
                "prev": last["hash"] if last else GENESIS,
            }
            record["hash"] = record_hash(record)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            if os.write(descriptor, line) != len(line):
                raise GalleryError(f"could not write a whole record to the audit log {self.path} (disk full?)")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if not existed:
            fsync_folder(self.path.parent)
        return record

    def _last_record(self, descriptor: int) -> dict | None:
        size = os.fstat(descriptor).st_size
        if size == 0:
            return None
        tail = _read_tail(descriptor, size)
        if not tail.endswith(b"\n"):
            # A record torn by a crash was never complete, and the change it would
            # have described never committed (records are written first): drop it.
            cut = tail.rfind(b"\n")
            os.ftruncate(descriptor, size - len(tail) + cut + 1 if cut >= 0 else size - len(tail))
            return self._last_record(descriptor)
        last_line = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            record = json.loads(last_line)
            intact = isinstance(record, dict) and record.get("hash") == record_hash(record)
        except ValueError:
            intact = False
        if not intact:
            raise GalleryError(
                f"the last record of the audit log {self.path} is damaged; nothing was changed. "
                "Run `edge-verify gallery verify`, keep the damaged log as evidence (move it aside) and retry"
            )
        return record


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for every line of the log."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line


def verify_chain(path: str | os.PathLike) -> ChainReport:
    """Check every record's hash and link. Returns (ok, n_records, first_bad_seq, reason)."""
    path = Path(path)
    if not path.exists():
        return ChainReport(False, 0, None, f"no audit log at {path}")
    previous_hash, count = GENESIS, 0
    for number, line in read_records(path):
        expected_seq = count + 1
        problem = _record_problem(line, expected_seq, previous_hash)
        if problem:
            return ChainReport(False, count, expected_seq, f"line {number}: {problem}")
        previous_hash = json.loads(line)["hash"]
        count += 1
    return ChainReport(True, count, None, None)


def find_record(path: str | os.PathLike, seq: int) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    for _, line in read_records(path):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("seq") == seq:
            return record
    return None


def _record_problem(line: bytes, expected_seq: int, previous_hash: str) -> str | None:
    if not line.endswith(b"\n"):
        return "incomplete record (the log was cut or a write was interrupted)"
    try:
        record = json.loads(line)
    except ValueError:
        return "not a JSON record"
    if not isinstance(record, dict) or sorted(record) != sorted(FIELDS):
        return "record does not have the audit fields"
    if record["seq"] != expected_seq:
        return f"seq {record['seq']} where {expected_seq} was expected (a record was deleted, inserted or moved)"
    if record["prev"] != previous_hash:
        return "does not link to the record before it (a record was deleted, inserted or moved)"
    if record["hash"] != record_hash(record):
        return "hash does not match its content (the record was edited)"
    return None


def _read_tail(descriptor: int, size: int) -> bytes:
    """Enough bytes from the end to hold the last line and the newline before it."""
    start = size
    while True:
        start = max(0, start - _TAIL_CHUNK)
        tail = os.pread(descriptor, size - start, start)
        if start == 0 or b"\n" in tail[:-1]:
            return tail
