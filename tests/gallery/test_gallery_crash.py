"""kill -9 during an enrollment leaves the gallery as before or fully updated.

A child process enrolls a person with many templates and is SIGKILLed: at chosen
points inside the transaction (the child wraps the cipher or the audit log to stop
there and say so; nothing in the product knows about it), and after random short
delays. After each kill the gallery must open, pass integrity_check, decrypt every
template, and hold the person either not at all or with every template.
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

from edge.gallery.audit import verify_chain
from edge.gallery.check import verify_gallery
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1"
TEMPLATES = 40

CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from edge.gallery import audit, crypto
    from edge.gallery.crypto import load_key
    from edge.gallery.store import Gallery

    gallery_path, key_path, name, stop = sys.argv[1:5]
    kind, _, number = stop.partition(":")

    def stop_here():
        print("stopped", flush=True)
        time.sleep(120)

    if kind == "seal":  # inside the transaction, before template `number` is sealed
        original_seal, calls = crypto.TemplateCipher.seal, [0]
        def seal(self, *args):
            calls[0] += 1
            if calls[0] == int(number):
                stop_here()
            return original_seal(self, *args)
        crypto.TemplateCipher.seal = seal
    elif kind == "audited":  # the audit record is on disk, COMMIT has not run
        original_append = audit.AuditLog.append
        def append(self, *args, **kwargs):
            record = original_append(self, *args, **kwargs)
            stop_here()
            return record
        audit.AuditLog.append = append

    vectors = np.random.default_rng(len(name)).normal(size=(int(os.environ["TEMPLATES"]), 128))
    with Gallery.open(gallery_path, load_key(key_path)) as gallery:
        print("ready", flush=True)
        gallery.add_person_templates(name, vectors, "MODEL_ID", "child")
    print("done", flush=True)
""").replace("MODEL_ID", MODEL)


@pytest.fixture
def enrolled(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 5), MODEL, "test")
    gallery.close()
    return gallery.path


def start_child(gallery_path, key_path, name, stop="none"):
    environment = {**os.environ, "TEMPLATES": str(TEMPLATES)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(gallery_path), str(key_path), name, stop],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def wait_for(child, word):
    line = child.stdout.readline().strip()
    if line != word:
        child.kill()
        raise AssertionError(f"child said {line!r} instead of {word!r}: {child.stderr.read()[-2000:]}")


def kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    child.stderr.close()


def assert_consistent(gallery_path, key_path, key, name) -> int:
    """The gallery is whole; returns how many templates `name` has (0 or all)."""
    with Gallery.open(gallery_path, key) as gallery:
        assert gallery.integrity_check() == ["ok"]
        people = {person["name"]: person["templates"] for person in gallery.list_people()}
        names, index, matrix = gallery.load_matrix(MODEL)  # every template decrypts
        assert people["Alice"] == 5
        assert len(matrix) == sum(people.values())
    assert people.get(name, 0) in (0, TEMPLATES), people
    checks = verify_gallery(gallery_path, key_path)
    assert all(check.ok for check in checks), checks
    return people.get(name, 0)


@pytest.mark.parametrize("stop", ["seal:1", f"seal:{TEMPLATES // 2}", f"seal:{TEMPLATES}", "audited"])
def test_kill_inside_the_transaction_leaves_the_old_gallery(enrolled, key_path, key, stop):
    version = Gallery.open(enrolled, key).version()
    child = start_child(enrolled, key_path, "Carol", stop)
    wait_for(child, "ready")
    wait_for(child, "stopped")
    kill(child)
    assert assert_consistent(enrolled, key_path, key, "Carol") == 0
    with Gallery.open(enrolled, key) as gallery:
        assert gallery.version() == version
        # the gallery takes the next enrollment normally, and the audit chain stays whole
        gallery.add_person_templates("Carol", [[0.0] * 128], MODEL, "test")
    assert verify_chain(gallery.audit.path, key).ok
    assert all(check.ok for check in verify_gallery(enrolled, key_path))


def test_unstopped_child_enrolls_fully(enrolled, key_path, key):
    child = start_child(enrolled, key_path, "Carol")
    wait_for(child, "ready")
    wait_for(child, "done")
    assert child.wait(timeout=30) == 0
    kill(child)
    assert assert_consistent(enrolled, key_path, key, "Carol") == TEMPLATES


def test_kill_after_random_delays(enrolled, key_path, key):
    rng = random.Random(1234)
    outcomes = []
    for attempt in range(12):
        name = f"Carol {attempt}"
        child = start_child(enrolled, key_path, name)
        wait_for(child, "ready")
        # the enrollment itself takes some milliseconds; kill anywhere in and around it
        time.sleep(rng.uniform(0.0, 0.015))
        kill(child)
        outcomes.append(assert_consistent(enrolled, key_path, key, name))
    assert set(outcomes) <= {0, TEMPLATES}
