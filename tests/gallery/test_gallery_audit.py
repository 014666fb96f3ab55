"""The audit log: every change recorded, and edits, deletions and reordering detected.

The chain is keyed (HMAC with a key derived from the gallery key); KEY stands in for one."""
from __future__ import annotations

import json
import os

import pytest

from edge.exc import GalleryError
from edge.gallery.audit import AuditLog, verify_chain
from edge.gallery.check import verify_gallery

MODEL = "dlib_resnet_v1"
KEY = bytes(range(32))


@pytest.fixture
def log(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    for number in range(1, 6):
        log.append("alice (uid 1000)", "add", f"person {number}", {"templates": number})
    return log.path


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def test_intact_chain(log):
    assert verify_chain(log, KEY)[:4] == (True, 5, None, None)
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_edited_record_is_detected(log):
    records = lines(log)
    records[2] = records[2].replace(b'"templates":3', b'"templates":4')
    log.write_bytes(b"".join(records))
    ok, count, bad, reason = verify_chain(log, KEY)[:4]
    assert (ok, count, bad) == (False, 2, 3) and "edited" in reason


def test_edited_record_with_its_hash_recomputed_breaks_the_next_link(log):
    from edge.gallery.audit import record_hash
    from edge.gallery.crypto import audit_key

    records = lines(log)
    record = json.loads(records[1])
    record["actor"] = "mallory"
    record["hash"] = record_hash(record, audit_key(KEY))
    records[1] = json.dumps(record).encode() + b"\n"
    log.write_bytes(b"".join(records))
    ok, _, bad, reason = verify_chain(log, KEY)[:4]
    assert not ok and bad == 3 and "does not link" in reason


def test_deleted_record_is_detected(log):
    records = lines(log)
    del records[1]
    log.write_bytes(b"".join(records))
    ok, count, bad, _ = verify_chain(log, KEY)[:4]
    assert (ok, count, bad) == (False, 1, 2)


def test_reordered_records_are_detected(log):
    records = lines(log)
    records[1], records[2] = records[2], records[1]
    log.write_bytes(b"".join(records))
    ok, _, bad, reason = verify_chain(log, KEY)[:4]
    assert not ok and bad == 2 and "seq 3" in reason


def test_torn_last_record_is_dropped_before_the_next_append(log):
    with open(log, "ab") as handle:
        handle.write(b'{"seq":6,"time":"2')  # a crash in the middle of a write
    assert not verify_chain(log, KEY).ok
    record = AuditLog(log, KEY).append("alice", "remove", "person 1", {"templates_erased": 1})[-1]
    assert record["seq"] == 6
    assert verify_chain(log, KEY)[:4] == (True, 6, None, None)


def test_append_onto_a_tampered_last_record_records_a_break_and_keeps_the_log(log):
    records = lines(log)
    records[-1] = records[-1].replace(b"person 5", b"person 9")
    tampered = b"".join(records)
    log.write_bytes(tampered)
    written = AuditLog(log, KEY).append("alice", "add", "x")
    assert [record["action"] for record in written] == ["audit-break", "add"]
    kept = log.with_name(written[0]["details"]["kept_as"])
    assert kept.read_bytes() == tampered and "edited or forged" in written[0]["details"]["reason"]
    report = verify_chain(log, KEY)
    assert report.ok and [record["seq"] for record in report.breaks] == [1]


def test_a_chain_computed_without_the_key_does_not_pass(log, tmp_path):
    from edge.gallery.audit import record_hash

    # the old plain SHA-256 chain, recomputed by hand: every record must carry the keyed hash instead
    forged, previous = [], "0" * 64
    for line in lines(log):
        record = json.loads(line)
        record["prev"] = previous
        record["hash"] = record_hash(record, b"not the gallery key, guessed")
        previous = record["hash"]
        forged.append(json.dumps(record).encode() + b"\n")
    log.write_bytes(b"".join(forged))
    report = verify_chain(log, KEY)
    assert not report.ok and report.first_bad_seq == 1 and "keyed hash" in report.reason


def test_every_gallery_change_is_recorded_without_biometric_data(gallery, tmp_path, make_vectors):
    vectors = make_vectors(1, 3)
    gallery.add_person_templates("Alice", vectors, MODEL, "installer", quality={"sharpness": 1.5})
    gallery.rename("Alice", "Alicia", "installer")
    gallery.export(tmp_path / "out.bundle", "installer")
    gallery.remove_person("Alicia", "dpo")
    records = [json.loads(line) for line in gallery.audit.path.read_text().splitlines()]
    assert [record["action"] for record in records] == ["create", "add", "rename", "export", "remove"]
    assert [record["actor"] for record in records[1:]] == ["installer"] * 3 + ["dpo"]
    # people are named by number, never by name (a removal must not leave the name behind)
    assert records[1]["subject"] == "person #1" and records[1]["details"]["templates"] == 3
    assert records[2]["subject"] == "person #1" and "Alicia" not in json.dumps(records)
    assert records[4]["subject"] == "person #1" and records[4]["details"] == {"templates_erased": 3}
    # details hold counts, names and model ids: no number that could be part of a template
    assert not [value for record in records for value in _leaves(record["details"]) if isinstance(value, float)]
    assert all(set(record) == {"seq", "time", "actor", "action", "subject", "details", "prev", "hash"}
               for record in records)


def test_a_failed_change_writes_no_record(gallery, make_vectors):
    before = verify_chain(gallery.audit.path, gallery.key).records
    with pytest.raises(GalleryError):
        gallery.remove_person("nobody", "test")
    assert verify_chain(gallery.audit.path, gallery.key).records == before


def test_records_cut_from_the_end_are_caught_by_the_gallery_head(gallery, key_path, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 1), MODEL, "test")
    gallery.add_person_templates("Bob", make_vectors(2, 1), MODEL, "test")
    assert all(check.ok for check in verify_gallery(gallery.path, key_path))
    records = lines(gallery.audit.path)
    gallery.audit.path.write_bytes(b"".join(records[:-1]))  # hides that Bob was added
    assert verify_chain(gallery.audit.path, gallery.key).ok  # the chain alone cannot see it
    failed = [check for check in verify_gallery(gallery.path, key_path) if not check.ok]
    assert [check.name for check in failed] == ["audit head"]


def test_deleted_log_fails_verification(gallery, key_path):
    os.remove(gallery.audit.path)
    failed = [check.name for check in verify_gallery(gallery.path, key_path) if not check.ok]
    assert failed == ["audit chain"]


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value
