"""Issue 12 item 9: restoring from a backup works from read-only media, says the right thing
about a damaged source, and a failed restore leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from edge.cli import main

MODEL = "dlib_resnet_v1"
TOKEN = "correct-horse-battery"


@pytest.fixture
def home(tmp_path, admin_home):
    return admin_home(tmp_path / "home", {"Alice": (1, 3), "Bob": (2, 3)}, MODEL, TOKEN, token_in_env=True)


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def move_gallery_aside(home, folder):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{home}/gallery.sqlite{suffix}"):
            os.rename(f"{home}/gallery.sqlite{suffix}", folder / f"old.sqlite{suffix}")


def test_importing_a_backup_changes_nothing_in_its_folder(home, capsys, tmp_path):
    media = tmp_path / "usb"
    assert run(capsys, "gallery", "backup", media / "backup.sqlite")[0] == 0
    before = (sorted(os.listdir(media)), os.stat(media).st_mtime_ns, (media / "backup.sqlite").read_bytes())
    move_gallery_aside(home, tmp_path)
    code, out, err = run(capsys, "gallery", "import", media / "backup.sqlite")
    assert code == 0 and "imported 2 people" in out, err
    assert (sorted(os.listdir(media)), os.stat(media).st_mtime_ns, (media / "backup.sqlite").read_bytes()) == before


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a read-only mount")
def test_importing_a_backup_from_a_read_only_mount(home, capsys, tmp_path):
    media = tmp_path / "usb"
    assert run(capsys, "gallery", "backup", media / "backup.sqlite")[0] == 0
    move_gallery_aside(home, tmp_path)
    script = (f"mount --bind -o ro {media} {media} && {sys.executable} -m edge gallery import {media}/backup.sqlite")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0 and "imported 2 people" in done.stdout, done.stderr


def test_a_damaged_bundle_gets_advice_about_the_bundle(home, capsys, tmp_path):
    bundle = tmp_path / "b.bundle"
    assert run(capsys, "gallery", "export", bundle)[0] == 0
    data = bytearray(bundle.read_bytes())
    data[:8] = b"garbage!"
    bundle.write_bytes(bytes(data))
    move_gallery_aside(home, tmp_path)
    code, _, err = run(capsys, "gallery", "import", bundle)
    assert code == 1 and err.count("\n") == 1
    assert f"--gallery {bundle}" not in err and f"move {bundle} aside" not in err
    assert "nothing was imported" in err and "another backup" in err


def test_a_failed_import_leaves_no_gallery_and_no_key(home, capsys, tmp_path):
    bundle = tmp_path / "b.bundle"
    assert run(capsys, "gallery", "export", bundle)[0] == 0
    bundle.write_bytes(bundle.read_bytes()[:-40])  # cut short: fails authentication
    other = tmp_path / "kiosk2"  # a new kiosk: its token is set, it has no gallery and no key yet
    other.mkdir()
    shutil.copy(home / "gallery.admin-token", other / "gallery.admin-token")
    code, _, err = run(capsys, "gallery", "import", bundle, "--gallery", other / "gallery.sqlite",
                       "--key", other / "gallery.key", "--bundle-key", home / "gallery.key")
    assert code != 0 and "nothing was imported" in err
    assert sorted(path.name for path in other.iterdir()) == ["gallery.admin-token"]
