"""The documented restore, played against the real daemon: does a removed person stay out?

A gallery with two fixture people (Colin_Powell, Serena_Williams) and its backup; the
daemon runs on a clip of Colin_Powell:

    GPIOZERO_PIN_FACTORY=mock edge-verify run --no-config --source file://x.avi --rate 10 \\
        --cooldown 1 --events ev.jsonl

Once Colin has been let in, the restore: move gallery.sqlite aside, `edge-verify gallery
import BACKUP`, `edge-verify gallery remove Colin_Powell`. Prints the unlocks of the removed
person before and after the removal (after = later than the removal plus the 1 s reload
interval), and the decisions made after it.

    EDGE_VERIFY_HOME=... python benchmarks/restore_scenario.py [--wait 9]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

FACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces"
REMOVED, KEPT = "Colin_Powell", "Serena_Williams"
TOKEN = "restore-scenario-token"


def make_clip(path: Path, name: str, seconds: float, fps: float = 10.0) -> Path:
    """The fixture photos of ``name`` in turn, each for a second, on a grey 320x240 frame."""
    import cv2
    import numpy as np

    photos = [cv2.resize(cv2.imread(str(photo)), (240, 240)) for photo in sorted(FACES.glob(f"{name}_*.jpg"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for index in range(int(seconds * fps)):
        frame = np.full((240, 320, 3), 96, np.uint8)
        frame[:, 40:280] = photos[(index // int(fps)) % len(photos)]
        writer.write(frame)
    writer.release()
    return path


EDGE = [sys.executable, "-m", "edge"]


def cli(*argv, env, stdin=None):
    done = subprocess.run([*EDGE, *map(str, argv)], env=env, input=stdin, text=True,
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"edge-verify {' '.join(map(str, argv))} failed: {done.stderr.strip()}")
    return done.stdout


def seconds_of(event) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait", type=float, default=9.0, help="seconds to watch after the removal (default 9)")
    parser.add_argument("--edge", metavar="COMMAND",
                        help="the command that runs edge-verify, e.g. another checkout's (default: python -m edge)")
    args = parser.parse_args()
    if args.edge:
        EDGE[:] = args.edge.split()
    models = Path(os.environ.get("EDGE_VERIFY_HOME", ".edge-verify")).resolve() / "models"
    work = Path(tempfile.mkdtemp(prefix="restore-scenario-"))
    home = work / "home"
    home.mkdir()
    (home / "models").symlink_to(models)
    env = {**os.environ, "EDGE_VERIFY_HOME": str(home), "GPIOZERO_PIN_FACTORY": "mock",
           "EDGE_VERIFY_ADMIN_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    cli("admin", "set-token", env=env, stdin=TOKEN + "\n")
    for name in (REMOVED, KEPT):
        cli("enroll", name, "--images", *sorted(FACES.glob(f"{name}_000[12].jpg")), "--count", "2", env=env)
    cli("gallery", "backup", work / "backup.sqlite", env=env)
    clip = make_clip(work / "x.avi", REMOVED, seconds=args.wait + 40)
    events = work / "ev.jsonl"
    daemon = subprocess.Popen([*EDGE, "run", "--no-config", "--source", f"file://{clip}",
                               "--rate", "10", "--cooldown", "1", "--events", str(events), "--no-events-stdout"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (events.exists() and '"unlock": true' in events.read_text()):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon never let {REMOVED} in: {daemon.stderr.read()[-2000:]}")
            time.sleep(0.2)
        for suffix in ("", "-wal", "-shm"):
            if (home / f"gallery.sqlite{suffix}").exists():
                os.rename(home / f"gallery.sqlite{suffix}", work / f"aside.sqlite{suffix}")
        print(cli("gallery", "import", work / "backup.sqlite", env=env).strip())
        print(cli("gallery", "remove", REMOVED, env=env).strip())
        removed_at = time.time()
        time.sleep(args.wait)
        still_running = daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    decisions = [json.loads(line) for line in events.read_text().splitlines()]
    before = [event for event in decisions if seconds_of(event) <= removed_at]
    after = [event for event in decisions if seconds_of(event) > removed_at + 1.0]
    figures = {
        "unlocks_before_removal": sum(event["unlock"] for event in before),
        "unlocks_after_removal": sum(event["unlock"] for event in after),
        "decisions_after_removal": len(after),
        "recognised_as_someone_after_removal": sum(event["person"] is not None for event in after),
        "daemon_still_running": still_running, "daemon_exit": daemon.returncode,
        "daemon_said": [line for line in stderr.splitlines() if "gallery" in line and "WARNING" in line][-3:],
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["unlocks_after_removal"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
