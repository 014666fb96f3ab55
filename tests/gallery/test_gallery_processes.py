"""One gallery file, several processes: on a kiosk the fleet agent writes while the daemon and the
commands open and read the same file. SQLite's WAL mode allows that only while every process keeps
the POSIX locks SQLite holds on the -shm file; closing any other descriptor of that file in the same
process silently drops them (POSIX locks belong to the process, not the descriptor). The next process
to open the gallery then believes it is the only one, truncates the shared WAL index under the others
and rebuilds it: a process using its mapping dies of SIGBUS, or reads "locking protocol" errors.
"""
from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

from edge.gallery.store import Gallery

WORKER = Path(__file__).resolve().parent / "gallery_processes.py"
ROOT = Path(__file__).resolve().parents[2]
# SQLite's unix VFS: the -shm locks start at byte 120 (UNIX_SHM_BASE); the byte after the 8 WAL locks is
# the "dead man switch" every process with the WAL index mapped holds shared, and the first opener takes
# exclusive to start the index afresh.
SHM_DMS_BYTE = 120 + 8


def worker(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], cwd=ROOT, **options)


def exclusive_lock_holder(path: Path) -> int | None:
    """The process holding a lock that keeps others from locking ``path``'s byte SHM_DMS_BYTE
    exclusively, as another process would see it (F_GETLK); None when nobody does."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, SHM_DMS_BYTE, 1, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(descriptor, fcntl.F_GETLK, request))
    finally:
        os.close(descriptor)  # this test process has no SQLite connection to the file: nothing to drop
    return None if kind == fcntl.F_UNLCK else pid


def test_an_open_gallery_keeps_sqlites_hold_on_the_shared_wal_index(gallery_path, key, key_path):
    Gallery.create(gallery_path, key, actor="test").close()
    holder = worker("hold", gallery_path, key_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert exclusive_lock_holder(Path(f"{gallery_path}-shm")) == holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0


def test_a_writer_and_readers_in_other_processes_share_the_gallery_safely(gallery_path, key, key_path, tmp_path):
    Gallery.create(gallery_path, key, actor="test").close()
    stop = tmp_path / "stop"
    pollers = [worker("poll", gallery_path, key_path, stop, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # the readers are opening the file over and over before the writer starts
    writer = worker("write", gallery_path, key_path, 45, stderr=subprocess.PIPE, text=True)
    try:
        _, error = writer.communicate(timeout=240)
    finally:
        stop.touch()
    reports = [json.loads(poller.communicate(timeout=60)[0]) for poller in pollers]
    assert writer.returncode == 0, (writer.returncode, error[-2000:])  # -7 was SIGBUS
    for report in reports:
        assert report["opens"] > 0 and report["errors"] == [] and not report["backwards"], report
    with Gallery.open(gallery_path, key) as gallery:
        assert len(gallery.list_people()) == 15 and gallery.integrity_check() == ["ok"]
