"""A gallery and an events file on a full 2 MB tmpfs, in a private mount namespace.

Run by test_disk_full.py as ``unshare --mount --propagation private python events_disk_full_kit.py DIR``.
Prints one JSON object with what each step said and left behind.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

TOKEN = "full-disk-token-1"


def fill(folder: Path) -> None:
    """Take every free byte (again: SQLite may have freed some pages meanwhile)."""
    with open(folder / "filler", "ab", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue


def cli(*argv, stdin: str = "") -> dict:
    from edge.cli import main

    err = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = main(list(argv))
    finally:
        sys.stdin = old_stdin
    return {"rc": code, "err": err.getvalue()}


def main(folder: Path) -> dict:
    import os

    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    os.environ["EDGE_VERIFY_HOME"] = str(folder)
    os.environ["EDGE_VERIFY_ADMIN_TOKEN"] = TOKEN
    from edge.events import EventLog
    from edge.gallery import open_gallery

    with open_gallery(create=True, actor="test") as gallery:
        gallery.add_person_templates("Alice", np.full((3, 128), 0.05, np.float32), "m", "test")
    out = {"set-token": cli("admin", "set-token", stdin=TOKEN + "\n")}
    events = EventLog(folder / "events.jsonl", stdout=False)
    event = {"time": "t", "person": None, "distance": None, "margin": None, "frames_agreed": 0, "unlock": False,
             "latency_ms": 1.0}
    events.write(event)
    fill(folder)
    before = {name: (folder / name).read_bytes() for name in ("gallery.admin-token", "gallery.audit.jsonl")}
    out["enroll"] = {"err": ""}
    try:
        with open_gallery() as gallery:
            for number in range(200):
                gallery.add_person_templates(f"P{number}", np.full((20, 128), 0.05 + number, np.float32), "m", "t")
    except Exception as error:  # what the installer would see, one line
        out["enroll"] = {"err": f"{type(error).__name__}: {error}"}
    fill(folder)
    out["change token"] = cli("admin", "set-token", "--token", TOKEN, stdin="another-token-2\n")
    out["token unchanged"] = (folder / "gallery.admin-token").read_bytes() == before["gallery.admin-token"]
    out["audit unchanged"] = (folder / "gallery.audit.jsonl").read_bytes() == before["gallery.audit.jsonl"]
    out["partial files"] = sorted(path.name for path in folder.iterdir() if "partial" in path.name)
    for _ in range(50):
        events.write({**event, "person": "x" * 2000})
    out["events dropped"] = events.dropped
    lines = (folder / "events.jsonl").read_bytes().split(b"\n")
    out["events whole lines"] = all(json.loads(line) for line in lines if line) and lines[-1] == b""
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
