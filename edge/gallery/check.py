"""`gallery verify`: is the gallery file whole, does the key fit, is the audit trail intact?

Each check is reported on its own, so a wrong key does not hide a broken audit log.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from edge.exc import EdgeVerifyError
from edge.gallery.audit import audit_path, find_record, verify_chain
from edge.gallery.crypto import load_key
from edge.gallery.store import Gallery


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str


def verify_gallery(path: str | os.PathLike, key_path: str | os.PathLike) -> list[Check]:
    path = Path(path)
    checks: list[Check] = []
    head = None
    try:
        with Gallery.open(path, load_key(key_path)) as gallery:
            checks.append(Check("open", True, "header, schema, quick check and key check passed"))
            problems = gallery.integrity_check()
            checks.append(Check("integrity", problems == ["ok"],
                                "PRAGMA integrity_check: ok" if problems == ["ok"] else "; ".join(problems[:3])))
            names, _, matrix = gallery.load_matrix()
            checks.append(Check("templates", True, f"{len(matrix)} templates of {len(names)} people decrypt and "
                                                   "authenticate"))
            head = gallery.audit_head()
    except EdgeVerifyError as error:
        checks.append(Check("open", False, str(error)))
    checks.extend(_audit_checks(audit_path(path), head))
    return checks


def _audit_checks(log: Path, head: tuple[int, str | None] | None) -> list[Check]:
    report = verify_chain(log)
    if not report.ok:
        where = f" at record {report.first_bad_seq}" if report.first_bad_seq else ""
        return [Check("audit chain", False, f"{log}: broken{where}: {report.reason}")]
    checks = [Check("audit chain", True, f"{log}: {report.records} records, hash chain intact")]
    if head is None:
        return checks  # the gallery did not open; nothing to compare with
    seq, digest = head
    if seq == 0:
        return checks
    record = find_record(log, seq)
    if record is None or record["hash"] != digest:
        checks.append(Check("audit head", False, f"the gallery's last audited action is record {seq}, which the log "
                                                 "no longer holds (records were cut from its end, or the log was "
                                                 "replaced)"))
        return checks
    extra = report.records - seq
    note = f"; {extra} later record(s) without a gallery change (token changes, or a crash before commit)" if extra else ""
    checks.append(Check("audit head", True, f"the gallery's last audited action is record {seq}{note}"))
    return checks
