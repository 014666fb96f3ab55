"""`gallery verify`: is the gallery file whole, does the key fit, is the audit trail intact?

Each check is reported on its own, so a damaged gallery file does not hide a broken
audit log (which needs only the key to be checked).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from edge.exc import EdgeVerifyError
from edge.gallery.audit import Head, audit_path, head_problem, verify_chain
from edge.gallery.crypto import load_key
from edge.gallery.store import Gallery


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str


def verify_gallery(path: str | os.PathLike, key_path: str | os.PathLike) -> list[Check]:
    path = Path(path)
    checks: list[Check] = []
    head = key = None
    try:
        key = load_key(key_path)
        with Gallery.open(path, key) as gallery:
            checks.append(Check("open", True, "header, schema, quick check and key check passed"))
            problems = gallery.integrity_check()
            checks.append(Check("integrity", problems == ["ok"],
                                "PRAGMA integrity_check: ok" if problems == ["ok"] else "; ".join(problems[:3])))
            names, _, matrix = gallery.load_matrix()
            checks.append(Check("templates", True, f"{len(matrix)} templates of {len(names)} people decrypt and "
                                                   "authenticate"))
            head = gallery.checked_head()
    except EdgeVerifyError as error:
        checks.append(Check("open", False, str(error)))
    checks.extend(audit_checks(audit_path(path), key, head))
    return checks


def audit_problems(gallery) -> list[str]:
    """One line per problem of the gallery's audit trail (empty when it is whole): for the daemon's
    start and the selftest."""
    return [check.detail for check in audit_checks(gallery.audit.path, gallery.key, gallery.checked_head())
            if not check.ok]


def audit_checks(log: Path, key: bytes | None, head: Head | None) -> list[Check]:
    """The chain (keyed hashes and links), the gallery's head in it, and breaks not yet acknowledged."""
    if key is None:
        return [Check("audit chain", False, f"{log}: cannot be checked without the gallery's key")]
    report = verify_chain(log, key)
    if not report.ok:
        where = f" at record {report.first_bad_seq}" if report.first_bad_seq else ""
        return [Check("audit chain", False, f"{log}: broken{where}: {report.reason}; the next change records the "
                                            "break and keeps this log beside it")]
    checks = [Check("audit chain", True, f"{log}: {report.records} records, keyed hash chain intact")]
    if head is not None:
        problem = head_problem(report, head)
        if problem is not None:
            checks.append(Check("audit head", False, f"{problem}; the next change records the break"))
        else:
            extra = report.last["seq"] - head.seq
            note = (f"; {extra} later record(s) without a gallery change (token refusals, or a crash before "
                    "commit)") if extra else ""
            checks.append(Check("audit head", True, f"the gallery's last audited action is record {head.seq}{note}"))
    if report.breaks:
        described = "; ".join(f"record {record['seq']}: {record['details'].get('reason')} (the log as found was kept "
                              f"as {record['details'].get('kept_as')})" for record in report.breaks)
        checks.append(Check("audit breaks", False, f"{len(report.breaks)} break(s) of the audit trail not yet "
                                                   f"acknowledged: {described}; look into it, keep the copy, then run "
                                                   "`edge-verify gallery acknowledge-break`"))
    return checks
