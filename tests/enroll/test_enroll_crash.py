"""kill -9 of a running `edge-verify enroll` leaves the gallery as before or fully updated.

The child is the real command (edge.cli.main with real models, photos and
gallery). To kill it at chosen points, the child first wraps a product function
to print "stopped" and wait there (nothing in the product knows about it):
while capturing, before the first and the last template is sealed inside the
transaction, after the audit record is written but before COMMIT, and after the
commit. Then the plain command is killed after random delays. After every kill
the gallery must open, pass integrity_check, decrypt every template, hold its
earlier person untouched and the new person with no templates or all of them,
and pass `gallery verify` (audit chain included).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edge.enroll.capture import Shot, enroll
from edge.gallery import open_gallery
from edge.gallery.check import verify_gallery

PHOTOS = 4

CHILD = textwrap.dedent("""
    import sys, time
    from edge.cli import main
    from edge.enroll import capture
    from edge.gallery import audit, crypto, store

    stop, argv = sys.argv[1], sys.argv[2:]
    kind, _, number = stop.partition(":")

    def stop_here():
        print("stopped", flush=True)
        time.sleep(120)

    def stop_at_call(owner, attribute, call, after=False):
        original, calls = getattr(owner, attribute), [0]
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == call and not after:
                stop_here()
            result = original(*args, **kwargs)
            if calls[0] == call and after:
                stop_here()
            return result
        setattr(owner, attribute, wrapper)

    if kind == "capture":  # while taking frames: after `number` frames were judged
        stop_at_call(capture, "assess", int(number), after=True)
    elif kind == "seal":  # inside the transaction, before template `number` is sealed
        stop_at_call(crypto.TemplateCipher, "seal", int(number))
    elif kind == "audited":  # the audit record is on disk, COMMIT has not run
        stop_at_call(audit.AuditLog, "append", 1, after=True)
    elif kind == "committed":  # add_person_templates has committed
        stop_at_call(store.Gallery, "add_person_templates", 1, after=True)
    print("ready", flush=True)
    sys.exit(main(argv))
""")


@pytest.fixture
def before(pipeline, gallery_files, token, photo):
    """A gallery holding Alice (3 templates) and an admin token; the child enrolls Carol."""
    with open_gallery(*gallery_files, create=True, actor="test") as gallery:
        frames = [Shot(str(n), photo("Gloria_Macapagal_Arroyo", n)) for n in (1, 2, 3)]
        enroll("Alice", pipeline, gallery, frames, count=3, actor="test")
    return gallery_files


def command(gallery_files, face_images, token):
    path, key = gallery_files
    return ["enroll", "Carol", "--images", *map(str, face_images["Colin_Powell"]), "--count", str(PHOTOS),
            "--gallery", str(path), "--key", str(key), "--token", token, "--threads", "1"]


def start(argv, stop=None):
    if stop is None:
        args = [sys.executable, "-m", "edge", *argv]
    else:
        args = [sys.executable, "-c", CHILD, stop, *argv]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def wait_for(child, word):
    while True:
        line = child.stdout.readline()
        if not line:
            child.kill()
            raise AssertionError(f"child ended before saying {word!r}: {child.stderr.read()[-2000:]}")
        if line.strip() == word:
            return


def kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    child.stderr.close()


def carol_templates(gallery_files) -> int:
    """Check the gallery is whole; returns Carol's template count (0 or all)."""
    with open_gallery(*gallery_files) as gallery:
        assert gallery.integrity_check() == ["ok"]
        people = {person["name"]: person["templates"] for person in gallery.list_people()}
        names, _, matrix = gallery.load_matrix()  # every template decrypts and authenticates
    assert people["Alice"] == 3 and len(matrix) == sum(people.values())
    assert people.get("Carol", 0) in (0, PHOTOS), people
    checks = verify_gallery(*gallery_files)
    assert all(check.ok for check in checks), checks
    return people.get("Carol", 0)


@pytest.mark.parametrize("stop, expected", [
    ("capture:2", 0), ("seal:1", 0), (f"seal:{PHOTOS}", 0), ("audited", 0), ("committed", PHOTOS),
])
def test_kill_at_chosen_points(before, face_images, token, stop, expected):
    with open_gallery(*before) as gallery:
        version = gallery.version()
    child = start(command(before, face_images, token), stop)
    wait_for(child, "ready")
    wait_for(child, "stopped")
    kill(child)
    assert carol_templates(before) == expected
    with open_gallery(*before) as gallery:
        assert gallery.version() == version + (1 if expected else 0)


def test_the_gallery_takes_the_next_enrollment_after_a_kill(before, face_images, token):
    child = start(command(before, face_images, token), "audited")
    wait_for(child, "ready")
    wait_for(child, "stopped")
    kill(child)
    finished = subprocess.run([sys.executable, "-m", "edge", *command(before, face_images, token)],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert carol_templates(before) == PHOTOS


def test_kill_the_plain_command_after_random_delays(before, face_images, token):
    started = time.monotonic()
    full = subprocess.run([sys.executable, "-m", "edge", *command(before, face_images, token)],
                          capture_output=True, text=True, timeout=120)
    duration = time.monotonic() - started
    assert full.returncode == 0, full.stderr
    with open_gallery(*before) as gallery:
        gallery.remove_person("Carol", "test")
    rng = random.Random(5)
    outcomes = []
    for _ in range(6):
        child = start(command(before, face_images, token))
        time.sleep(rng.uniform(0.3, 1.0) * duration)
        kill(child)
        outcomes.append(carol_templates(before))
        if outcomes[-1]:
            with open_gallery(*before) as gallery:
                gallery.remove_person("Carol", "test")
    assert set(outcomes) <= {0, PHOTOS}
