"""Issue 12 item 3: backups and exports never destroy the key, the gallery, the token or the audit log.

`gallery backup` and `gallery export` refuse, with or without --force, every file the
product owns beside the gallery, and overwrite (with --force) only an earlier backup or
bundle. Backups copy personal data: they need the admin token, like export. Temporary
files are made with O_EXCL and O_NOFOLLOW, so a planted symbolic link is never followed.
"""
from __future__ import annotations

import os

import pytest

from edge.cli import main
from edge.gallery.files import write_private

MODEL = "dlib_resnet_v1"
TOKEN = "correct-horse-battery"


@pytest.fixture
def home(tmp_path, admin_home):
    return admin_home(tmp_path / "home", {"Alice": (1, 5)}, MODEL, TOKEN)


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(home):
    """Every file's bytes, but SQLite's own -wal/-shm (which opening the gallery may remove or make)."""
    return {path.name: path.read_bytes() for path in sorted(home.iterdir())
            if path.is_file() and not path.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("command", ["backup", "export"])
@pytest.mark.parametrize("target", ["gallery.key", "gallery.sqlite", "gallery.admin-token", "gallery.audit.jsonl",
                                    "gallery.sqlite-wal"])
def test_the_products_own_files_are_refused_even_with_force(home, capsys, command, target):
    before = snapshot(home)
    code, _, err = run(capsys, "gallery", command, home / target, "--force", "--token", TOKEN)
    assert code != 0 and "refus" in err and err.count("\n") == 1
    assert snapshot(home) == before
    assert run(capsys, "gallery", "verify")[0] == 0


@pytest.mark.parametrize("command", ["backup", "export"])
def test_a_file_that_is_not_ours_is_never_overwritten(home, capsys, tmp_path, command):
    other = tmp_path / "notes.txt"
    other.write_text("someone's notes\n")
    code, _, err = run(capsys, "gallery", command, other, "--force", "--token", TOKEN)
    assert code == 1 and "not an edge-verify backup or bundle" in err
    assert other.read_text() == "someone's notes\n"


def test_earlier_backups_and_bundles_may_be_replaced_with_force(home, capsys, tmp_path):
    backup, bundle = tmp_path / "b.sqlite", tmp_path / "g.bundle"
    assert run(capsys, "gallery", "backup", backup, "--token", TOKEN)[0] == 0
    assert run(capsys, "gallery", "export", bundle, "--token", TOKEN)[0] == 0
    code, _, err = run(capsys, "gallery", "backup", backup, "--token", TOKEN)
    assert code == 1 and "--force" in err
    assert run(capsys, "gallery", "backup", backup, "--force", "--token", TOKEN)[0] == 0
    assert run(capsys, "gallery", "export", bundle, "--force", "--token", TOKEN)[0] == 0
    assert run(capsys, "gallery", "backup", bundle, "--force", "--token", TOKEN)[0] == 0  # a bundle of ours


def test_backup_needs_the_admin_token(home, capsys, tmp_path):
    code, _, err = run(capsys, "gallery", "backup", tmp_path / "b.sqlite")
    assert code == 3 and "admin token" in err
    assert not (tmp_path / "b.sqlite").exists()


def test_a_symbolic_link_as_destination_is_refused(home, capsys, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "link.sqlite")
    code, _, err = run(capsys, "gallery", "backup", tmp_path / "link.sqlite", "--force", "--token", TOKEN)
    assert code == 1 and "symbolic link" in err
    assert victim.read_text() == "precious\n"


def test_write_private_never_follows_a_planted_temporary_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "out.bundle"
    # the temporary name the old code used; a random name cannot be guessed
    os.symlink(victim, tmp_path / f".{target.name}.{os.getpid()}.partial")
    write_private(target, b"sealed data")
    assert victim.read_text() == "precious\n" and target.read_bytes() == b"sealed data"
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial") and not path.is_symlink()] == []
