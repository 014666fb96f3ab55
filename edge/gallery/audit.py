"""The audit trail: who changed the gallery, what, and when, in a chain only the key holder can extend.

One JSON object per line, appended and fsynced before the change it describes is
committed, so no change lands without its record. Each record carries

    seq      1, 2, 3, ... with no gaps
    time     ISO-8601 UTC
    actor    who (OS user, uid)
    action   what: create, add, remove, rename, import, export, backup, set-token,
             token-refused, audit-break, audit-acknowledge
    subject  the person (by id, see store.py) or file acted on
    details  counts and model ids; never templates, images or anything biometric
    prev     the hash of the record before (64 zeros for the first)
    hash     HMAC-SHA256 of the canonical JSON of all fields above, keyed with a key
             derived from the gallery key (crypto.audit_key)

so editing, deleting, reordering or forging a record breaks the chain, and nobody
without the gallery key can compute a chain that passes. Cutting records off the
end, or deleting the log, leaves a shorter chain that would pass; so the gallery
remembers the seq and hash of the record of its own last change (its *head*, with
an HMAC over the head and the gallery's change counter), and every append first
checks that the log still holds that record, intact.

When it does not (records cut, the log deleted, replaced, edited, or the head in
the gallery altered), the break is made permanent instead of being papered over:
the log as found is kept beside it as ``gallery.audit.jsonl.broken-TIME`` and a new
log begins with an ``audit-break`` record that links to the last record the gallery
knew and says what was wrong. `gallery verify`, the selftest and the daemon's start
report every break until an admin acknowledges it (`edge-verify gallery
acknowledge-break`, which appends an ``audit-acknowledge`` record).

A crash after a record is written but before its change commits leaves a record of
a change that never landed (never the reverse); such records after the head are
allowed, and reported by `gallery verify`.
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from edge.disk import is_no_space, space_advice
from edge.exc import GalleryError
from edge.gallery.crypto import audit_key
from edge.gallery.files import adopt_owner, fsync_folder, no_permission, write_all

GENESIS = "0" * 64
FIELDS = ("seq", "time", "actor", "action", "subject", "details", "prev", "hash")
BREAK = "audit-break"
ACKNOWLEDGE = "audit-acknowledge"


class Head(NamedTuple):
    """The gallery's record of its last audited change; ``trusted`` when its HMAC checks out."""

    seq: int
    hash: str
    trusted: bool


class ChainReport(NamedTuple):
    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str | None
    hashes: dict = {}  # seq -> hash of every intact record
    breaks: tuple = ()  # break records not acknowledged since (dicts)
    last: dict | None = None


def audit_path(gallery_path: str | os.PathLike) -> Path:
    """The log lives beside the gallery: gallery.sqlite -> gallery.audit.jsonl."""
    return Path(gallery_path).with_suffix(".audit.jsonl")


def default_actor() -> str:
    uid = os.geteuid()
    try:
        return f"{getpass.getuser()} (uid {uid})"
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return f"uid {uid}"


def person_ref(person_id: int) -> str:
    """A person as the audit log names them: by their row number, never by name. Row numbers are never
    reused, and the number's name is erased with the person, so a removal leaves no name behind."""
    return f"person #{int(person_id)}"


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict, mac_key: bytes) -> str:
    body = {key: value for key, value in record.items() if key != "hash"}
    return hmac.new(mac_key, canonical(body), hashlib.sha256).hexdigest()


def head_mac(mac_key: bytes, gallery_id: str, generation, seq: int, digest: str) -> str:
    """What the gallery stores beside its head, so the head cannot be set back by hand."""
    return hmac.new(mac_key, canonical(["head", gallery_id, str(generation), int(seq), digest]),
                    hashlib.sha256).hexdigest()


class AuditLog:
    """Appends to one log file, keyed with the gallery key."""

    def __init__(self, path: str | os.PathLike, key: bytes):
        self.path = Path(path)
        self.mac_key = audit_key(key)

    def append(self, actor: str, action: str, subject: str, details: dict | None = None,
               head: Head | None = None) -> list[dict]:
        """Write one chained record, fsynced; returns the records written (a break record first when
        the log is not what ``head`` says it should be). ``head``: the gallery's, None without one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, created = self._open_locked()
        try:
            data = _drop_torn_tail(descriptor)
            report = read_chain(data, self.mac_key)
            problem = report.reason if not report.ok else head_problem(report, head)
            written = []
            last = report.last
            if problem is not None:
                kept = self._keep_as_evidence(descriptor, data) if data else None
                details_of_break = {"reason": problem, "kept_as": kept, "expected_seq": head.seq if head else None}
                last = self._write(descriptor, self._record(
                    head.seq + 1 if head else 1, head.hash if head else GENESIS, "edge-verify", BREAK,
                    "audit log", details_of_break))
                written.append(last)
            written.append(self._write(descriptor, self._record(
                last["seq"] + 1 if last else 1, last["hash"] if last else GENESIS, actor, action, subject,
                details or {})))
        finally:
            os.close(descriptor)
        if created:
            fsync_folder(self.path.parent)
        return written

    def audited(self, actor: str, action: str, subject: str, details: dict, apply: Callable[[], None]) -> None:
        """Record a change made outside any gallery (a token set before the first enrollment), then make it."""
        self.append(actor, action, subject, details)
        apply()

    def _open_locked(self) -> tuple[int, bool]:
        """The log, open and locked; the same file as at its path (a break may have replaced it meanwhile)."""
        while True:
            created = not self.path.exists()
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                                     0o600)
            except PermissionError:
                raise no_permission(self.path, "write the audit log") from None
            if created:
                adopt_owner(descriptor, self.path.parent)
            # Gallery changes are already serialised by SQLite's write lock; token changes and
            # refusals are not, so the log takes its own lock.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            info = os.fstat(descriptor)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
                return descriptor, created
            os.close(descriptor)

    def _record(self, seq: int, prev: str, actor: str, action: str, subject: str, details: dict) -> dict:
        record = {"seq": seq, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "actor": str(actor),
                  "action": str(action), "subject": str(subject), "details": details, "prev": prev}
        record["hash"] = record_hash(record, self.mac_key)
        return record

    def _write(self, descriptor: int, record: dict) -> dict:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        size = os.fstat(descriptor).st_size
        try:
            if os.write(descriptor, line) != len(line):
                raise OSError(28, "short write")
            os.fsync(descriptor)
        except OSError as error:
            os.ftruncate(descriptor, size)  # no torn record left behind
            why = space_advice(self.path) if is_no_space(error) else error.strerror or str(error)
            raise GalleryError(f"could not write a record to the audit log {self.path}: {why}; nothing was "
                               "changed") from error
        return record

    def _keep_as_evidence(self, descriptor: int, data: bytes) -> str:
        """Copy the log as found beside it (never overwriting anything), then empty it."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for number in range(1000):
            evidence = self.path.with_name(f"{self.path.name}.broken-{stamp}" + (f"-{number}" if number else ""))
            try:
                kept = os.open(evidence, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise GalleryError(f"cannot keep the broken audit log beside {self.path}: too many copies")
        try:
            adopt_owner(kept, self.path.parent)
            write_all(kept, data)
        finally:
            os.close(kept)
        os.ftruncate(descriptor, 0)
        fsync_folder(self.path.parent)
        return evidence.name


def head_problem(report: ChainReport, head: Head | None) -> str | None:
    """Why an intact chain is still not the one the gallery wrote, or None."""
    if head is None:
        return None
    if not head.trusted:
        return (f"the gallery's record of its last audited change (record {head.seq}) fails its check: the gallery "
                "was edited by hand, or made before audit logs were keyed")
    if report.hashes.get(head.seq) != head.hash:
        if report.records == 0:
            return f"the audit log is missing or empty, but the gallery's last audited change is record {head.seq}"
        return (f"the audit log no longer holds record {head.seq}, the gallery's last audited change (records were "
                "cut from its end, or the log was replaced)")
    return None


def read_chain(data: bytes, mac_key: bytes) -> ChainReport:
    """Check every record's keyed hash and link in the bytes of a log."""
    hashes, breaks = {}, []
    last = None
    count = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        problem, record = _record_problem(line, last, mac_key)
        if problem:
            expected = last["seq"] + 1 if last else 1
            return ChainReport(False, count, expected, f"line {number}: {problem}", hashes, tuple(breaks), last)
        if record["action"] == BREAK:
            breaks.append(record)
        elif record["action"] == ACKNOWLEDGE:
            breaks = []
        hashes[record["seq"]] = record["hash"]
        last = record
        count += 1
    return ChainReport(True, count, None, None, hashes, tuple(breaks), last)


def verify_chain(path: str | os.PathLike, key: bytes) -> ChainReport:
    """Check a log file with the gallery ``key``."""
    path = Path(path)
    if not path.exists():
        return ChainReport(False, 0, None, f"no audit log at {path}")
    return read_chain(path.read_bytes(), audit_key(key))


def breaks_acknowledged_last(path: str | os.PathLike) -> list[dict]:
    """The break records the log's last record (an acknowledgement) covers."""
    records = [json.loads(line) for _, line in read_records(path)]
    covered = []
    for record in records[:-1]:
        if record.get("action") == BREAK:
            covered.append(record)
        elif record.get("action") == ACKNOWLEDGE:
            covered = []
    return covered


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for every line of the log."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line


def _record_problem(line: bytes, last: dict | None, mac_key: bytes) -> tuple[str | None, dict | None]:
    if not line.endswith(b"\n"):
        return "incomplete record (the log was cut or a write was interrupted)", None
    try:
        record = json.loads(line)
    except ValueError:
        return "not a JSON record", None
    if not isinstance(record, dict) or sorted(record) != sorted(FIELDS):
        return "record does not have the audit fields", None
    if not isinstance(record["seq"], int) or not isinstance(record["details"], dict):
        return "record has a malformed seq or details", None
    if not hmac.compare_digest(str(record["hash"]), record_hash(record, mac_key)):
        return ("its keyed hash does not match (the record was edited or forged, or it was written with another "
                "gallery key)"), None
    if last is None:
        # A log starts at record 1, or with the break record of a log that was found broken.
        if record["seq"] != 1 and record["action"] != BREAK:
            return f"the log starts at seq {record['seq']} (records were deleted from its start)", None
        if record["seq"] == 1 and record["prev"] != GENESIS and record["action"] != BREAK:
            return "the first record does not start the chain", None
        return None, record
    if record["seq"] != last["seq"] + 1:
        return f"seq {record['seq']} where {last['seq'] + 1} was expected (a record was deleted, inserted or moved)", None
    if record["prev"] != last["hash"]:
        return "does not link to the record before it (a record was deleted, inserted or moved)", None
    return None, record


def _drop_torn_tail(descriptor: int) -> bytes:
    """The log's bytes; a last line torn by a crash is cut off first (its change never committed:
    records are written first)."""
    size = os.fstat(descriptor).st_size
    data = os.pread(descriptor, size, 0) if size else b""
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        os.ftruncate(descriptor, cut)
        data = data[:cut]
    return data
