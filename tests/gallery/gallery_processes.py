"""Worker processes for test_gallery_processes.py: one gallery file used by several processes at once,
as the fleet agent (writing), the daemon and the commands (reading) use it on a kiosk.

    python gallery_processes.py write GALLERY KEY CHANGES   enroll/remove people, one change at a time
    python gallery_processes.py poll GALLERY KEY STOPFILE   open, read the generation, close, again and again
    python gallery_processes.py hold GALLERY KEY            open, read, print "open", wait for stdin to close

``poll`` prints one JSON line: how many opens, the errors seen and whether the generation it read
ever went backwards.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from edge.exc import EdgeVerifyError
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1+l2"


def write(path: Path, key: bytes, changes: int) -> None:
    with Gallery.open(path, key) as gallery:
        for number in range(changes):
            if number % 3 == 2:
                gallery.remove_person(f"Person {number - 1}", actor="writer")  # a removal also checkpoints
            else:
                vectors = np.random.default_rng(number).normal(size=(2, 128)).astype(np.float32) / np.sqrt(128)
                gallery.add_person_templates(f"Person {number}", vectors, MODEL, actor="writer")


def poll(path: Path, key: bytes, stop: Path) -> None:
    opens, errors, last, backwards = 0, [], -1, False
    while not stop.exists():
        try:
            with Gallery.open(path, key) as gallery:
                generation = gallery.version()
                gallery.list_people()
        except EdgeVerifyError as error:
            errors.append(str(error))
        else:
            opens += 1
            backwards = backwards or generation < last
            last = generation
        time.sleep(0.005)
    print(json.dumps({"opens": opens, "errors": errors[:5], "backwards": backwards}))


def hold(path: Path, key: bytes) -> None:
    with Gallery.open(path, key) as gallery:
        gallery.version()
        print("open", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    command, gallery_path, key_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    gallery_key = key_path.read_bytes()
    if command == "write":
        write(gallery_path, gallery_key, int(sys.argv[4]))
    elif command == "poll":
        poll(gallery_path, gallery_key, Path(sys.argv[4]))
    else:
        hold(gallery_path, gallery_key)
