"""Issue 12 item 4: the audit chain cannot be laundered.

Cutting the log, deleting it, forging a chain (even with its SHA-256 hashes
recomputed and the gallery's head set to match with the sqlite3 shell), then making
a change, must not bring `gallery verify` back to "all ok": the break stays visible
until an admin acknowledges it, and the selftest and the daemon's start report it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3

import pytest

from edge.cli import main
from edge.gallery import open_gallery

MODEL = "dlib_resnet_v1+l2"  # the real engine's embedding space: the daemon loads this gallery
TOKEN = "correct-horse-battery"


@pytest.fixture
def home(tmp_path, admin_home):
    """A gallery with four changes in its log (create, two people, a token change)."""
    return admin_home(tmp_path, {"Alice": (1, 3), "Bob": (2, 3)}, MODEL, TOKEN)


def verify(capsys) -> tuple[int, list[str]]:
    code = main(["gallery", "verify", "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, [check["name"] for check in report["checks"] if not check["ok"]]


def enroll_someone(make_vectors, name="Mallory"):
    with open_gallery() as gallery:
        gallery.add_person_templates(name, make_vectors(len(name), 3), MODEL, "mallory")


def sha256_chain(records: list[dict]) -> list[dict]:
    """What anyone could compute without the key: the old unkeyed chain."""
    previous = "0" * 64
    for seq, record in enumerate(records, start=1):
        record.update(seq=seq, prev=previous)
        body = {key: value for key, value in record.items() if key != "hash"}
        record["hash"] = previous = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    return records


def write_records(path, records):
    path.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))


def cut_to_two(home):
    log = home / "gallery.audit.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:2]))


def delete(home):
    os.remove(home / "gallery.audit.jsonl")


def forge_two(home):
    forged = [{"time": "2020-01-01T00:00:00Z", "actor": "root", "action": action, "subject": "x", "details": {}}
              for action in ("create", "add")]
    write_records(home / "gallery.audit.jsonl", sha256_chain(forged))


def recompute_and_set_the_head(home):
    log = home / "gallery.audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    records[1]["actor"] = "someone else"  # the edit to hide
    records = sha256_chain(records)
    write_records(log, records)
    connection = sqlite3.connect(home / "gallery.sqlite")
    connection.execute("UPDATE meta SET value = ? WHERE key = 'audit_hash'", (records[-1]["hash"],))
    connection.execute("UPDATE meta SET value = ? WHERE key = 'audit_seq'", (str(records[-1]["seq"]),))
    connection.commit()
    connection.close()


@pytest.mark.parametrize("launder", [cut_to_two, delete, forge_two, recompute_and_set_the_head])
def test_a_change_after_tampering_does_not_make_verify_pass_again(home, capsys, make_vectors, launder):
    assert verify(capsys)[0] == 0
    launder(home)
    assert verify(capsys)[0] == 1
    enroll_someone(make_vectors)
    code, failed = verify(capsys)
    assert code == 1 and failed, failed
    enroll_someone(make_vectors, "Trudy")  # and still after more changes
    assert verify(capsys)[0] == 1


def test_the_break_stays_until_an_admin_acknowledges_it(home, capsys, make_vectors):
    cut_to_two(home)
    enroll_someone(make_vectors)
    code, failed = verify(capsys)
    assert code == 1 and failed == ["audit breaks"]
    kept = [path for path in home.iterdir() if path.name.startswith("gallery.audit.jsonl.broken-")]
    assert len(kept) == 1 and len(kept[0].read_text().splitlines()) == 2  # the log as it was found
    assert main(["gallery", "acknowledge-break"]) == 3  # needs the admin token
    capsys.readouterr()
    assert main(["gallery", "acknowledge-break", "--token", TOKEN]) == 0
    assert "acknowledged 1 break" in capsys.readouterr().out
    assert verify(capsys) == (0, [])
    cut_to_two(home)  # a second break is a new break
    enroll_someone(make_vectors, "Trudy")
    assert verify(capsys)[0] == 1


def test_selftest_and_the_daemon_start_report_a_break(home, capsys, make_vectors, caplog, models_ready, pipeline):
    from edge.daemon import config, parts

    delete(home)
    enroll_someone(make_vectors)
    code = main(["selftest", "--only", "gallery", "--no-config", "--json"])
    report = json.loads(capsys.readouterr().out)
    audit = [check for check in report["checks"] if check["name"] == "gallery.audit"][0]
    assert code == 1 and audit["status"] == "FAIL" and "acknowledge-break" in audit["detail"]
    caplog.set_level(logging.WARNING)
    settings = config.resolve({"gallery.path": str(home / "gallery.sqlite"), "gallery.key": str(home / "gallery.key")},
                              {}, origin="the test")
    live = parts.open_live_gallery(settings, pipeline.manifest)
    live.gallery.close()
    assert any("audit" in record.getMessage() and "acknowledge-break" in record.getMessage()
               for record in caplog.records)
