"""`edge-verify gallery` and `edge-verify admin` as installers and acceptance scripts run them."""
from __future__ import annotations

import io
import json
import os
import sys
import time

import pytest

from edge.cli import main

MODEL = "dlib_resnet_v1"
TOKEN = "correct-horse-battery"


@pytest.fixture
def home(tmp_path, admin_home):
    """$EDGE_VERIFY_HOME with a gallery of two people and an admin token."""
    return admin_home(tmp_path, {"Alice": (1, 5), "Bob": (2, 3)}, MODEL, TOKEN)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(home, capsys):
    code, out, _ = run(capsys, "gallery", "list", "--json")
    assert code == 0
    assert [(person["name"], person["templates"]) for person in json.loads(out)] == [("Alice", 5), ("Bob", 3)]


def test_list_without_a_gallery_is_empty(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    code, out, err = run(capsys, "gallery", "list", "--json")
    assert code == 0 and json.loads(out) == [] and "nobody is enrolled" in err


def test_remove_needs_the_token(home, capsys, monkeypatch):
    code, _, err = run(capsys, "gallery", "remove", "Alice")
    assert code == 3 and "--token" in err and "EDGE_VERIFY_ADMIN_TOKEN" in err and err.count("\n") == 1
    code, _, err = run(capsys, "gallery", "remove", "Alice", "--token", "not-the-token")
    assert code == 3 and "wrong" in err
    from edge.gallery import auth

    monkeypatch.setattr(auth, "now", lambda: time.time() + 2)  # after the wait a wrong token brings (1 s)
    monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", TOKEN)
    code, out, _ = run(capsys, "gallery", "remove", "Alice")
    assert code == 0 and out.strip() == "removed Alice: erased 5 templates"
    code, out, _ = run(capsys, "gallery", "list", "--json")
    assert [person["name"] for person in json.loads(out)] == ["Bob"]


def test_remove_json_and_unknown_name(home, capsys):
    code, out, _ = run(capsys, "gallery", "remove", "Bob", "--token", TOKEN, "--json")
    assert code == 0 and json.loads(out) == {"name": "Bob", "person": "person #2", "templates_erased": 3,
                                             "events_rewritten": 0, "face_crops_deleted": 0}
    code, _, err = run(capsys, "gallery", "remove", "Bob", "--token", TOKEN)
    assert code == 1 and "nobody named 'Bob'" in err


def test_verify_passes_then_fails_on_an_edited_audit_record(home, capsys):
    code, out, _ = run(capsys, "gallery", "verify")
    assert code == 0 and "FAIL" not in out
    log = home / "gallery.audit.jsonl"
    log.write_text(log.read_text().replace('"templates":5', '"templates":1'))
    code, out, _ = run(capsys, "gallery", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [check["name"] for check in report["checks"] if not check["ok"]] == ["audit chain"]


def test_verify_fails_on_a_damaged_file_and_backup_import_restores_it(home, capsys, tmp_path):
    backup = tmp_path / "backups" / "gallery.sqlite"
    assert run(capsys, "gallery", "backup", str(backup), "--token", TOKEN)[0] == 0
    gallery = home / "gallery.sqlite"
    os.truncate(gallery, gallery.stat().st_size // 2)
    code, out, _ = run(capsys, "gallery", "verify")
    assert code == 1 and "restore the last backup" in out
    code, _, err = run(capsys, "gallery", "list")
    assert code == 1 and "restore the last backup" in err and err.count("\n") == 1
    # the documented recovery
    os.rename(gallery, tmp_path / "damaged.sqlite")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{gallery}{suffix}"):
            os.rename(f"{gallery}{suffix}", tmp_path / f"damaged.sqlite{suffix}")
    code, out, _ = run(capsys, "gallery", "import", str(backup), "--token", TOKEN)
    assert code == 0 and "imported 2 people (8 templates)" in out
    assert run(capsys, "gallery", "verify")[0] == 0


def test_wrong_key_file(home, capsys, tmp_path):
    from edge.gallery.crypto import create_key

    create_key(tmp_path / "other.key")
    code, _, err = run(capsys, "gallery", "list", "--key", str(tmp_path / "other.key"))
    assert code == 1 and "key does not match this gallery" in err


def test_export_import_between_kiosks(home, capsys, tmp_path):
    bundle = tmp_path / "out.bundle"
    assert run(capsys, "gallery", "export", str(bundle), "--token", TOKEN)[0] == 0
    other = tmp_path / "kiosk2"
    code, _, err = run(capsys, "gallery", "import", str(bundle), "--token", TOKEN,
                       "--gallery", str(other / "gallery.sqlite"), "--key", str(other / "gallery.key"))
    assert code == 3 and "no admin token" in err  # the other kiosk's gallery has its own token
    (other).mkdir()
    (other / "gallery.admin-token").write_bytes((home / "gallery.admin-token").read_bytes())
    os.chmod(other / "gallery.admin-token", 0o600)
    code, out, err = run(capsys, "gallery", "import", str(bundle), "--token", TOKEN,
                         "--gallery", str(other / "gallery.sqlite"), "--key", str(other / "gallery.key"),
                         "--bundle-key", str(home / "gallery.key"))
    assert code == 0, err
    code, out, _ = run(capsys, "gallery", "list", "--json", "--gallery", str(other / "gallery.sqlite"),
                       "--key", str(other / "gallery.key"))
    assert [(person["name"], person["templates"]) for person in json.loads(out)] == [("Alice", 5), ("Bob", 3)]


def test_rename_and_show(home, capsys):
    assert run(capsys, "gallery", "rename", "Bob", "Robert", "--token", TOKEN)[0] == 0
    code, out, _ = run(capsys, "gallery", "show", "Robert", "--json")
    assert code == 0 and len(json.loads(out)["templates"]) == 3
    code, out, _ = run(capsys, "gallery", "show", "--json")
    summary = json.loads(out)
    assert (summary["people"], summary["templates"], summary["model"], summary["dim"]) == (2, 8, MODEL, 128)


def test_set_token_is_never_echoed_and_needs_the_current_one(home, capsys, monkeypatch):
    from edge.gallery import auth

    monkeypatch.setattr(auth.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sys, "stdin", io.StringIO("brand-new-token\n"))
    code, out, err = run(capsys, "admin", "set-token")
    assert code == 3 and "current" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("brand-new-token\n"))
    code, out, err = run(capsys, "admin", "set-token", "--token", TOKEN)
    assert code == 0 and "brand-new-token" not in out + err and TOKEN not in out + err
    assert run(capsys, "gallery", "remove", "Bob", "--token", "brand-new-token")[0] == 0


def test_help_texts_explain(capsys):
    with pytest.raises(SystemExit):
        main(["gallery", "--help"])
    out = capsys.readouterr().out
    assert "EDGE_VERIFY_ADMIN_TOKEN" in out and "gallery.key" in out and "import BACKUP" in out
    with pytest.raises(SystemExit):
        main(["admin", "set-token", "--help"])
    assert "root" in capsys.readouterr().out
