"""Shared pieces for the daemon tests: real photos into real clips, a real gallery,
and a MockPin that also writes its states to a file (so a killed process leaves
its pin history behind)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
from gpiozero.pins.mock import MockPin

FACES = Path(__file__).resolve().parent.parent / "fixtures" / "faces"
ENROLLED = ("Colin_Powell", "Serena_Williams", "Jennifer_Aniston")
STRANGERS = ("Gloria_Macapagal_Arroyo", "Hugo_Chavez", "Tony_Blair", "Arnold_Schwarzenegger", "George_W_Bush")
ENROLL_PHOTOS = (1, 2)  # enrolled with these; the clips show photos 3 and 4
SIZE = (320, 240)  # width, height: small clips keep the suite fast
FACE_SIDE = 240  # the photo fills the frame height: faces of ~95 px, above the 80 px minimum
PIN = "BOARD11"
PIN_LOG_ENV = "EDGE_TEST_PIN_LOG"


def photo(name: str, number: int) -> Path:
    return FACES / f"{name}_{number:04d}.jpg"


def background() -> np.ndarray:
    return np.full((SIZE[1], SIZE[0], 3), 96, dtype=np.uint8)


def face_frame(name: str, number: int, shift: int = 0) -> np.ndarray:
    frame = background()
    face = cv2.resize(cv2.imread(str(photo(name, number))), (FACE_SIDE, FACE_SIDE))
    left, top = (SIZE[0] - FACE_SIDE) // 2 + shift, (SIZE[1] - FACE_SIDE) // 2
    frame[top:top + FACE_SIDE, left:left + FACE_SIDE] = face
    return frame


def person_frames(name: str, count: int, number: int = 3) -> list:
    return [face_frame(name, number, shift=(index % 3) * 2 - 2) for index in range(count)]


def side_by_side(names: list) -> np.ndarray:
    """A frame with each named person's face (photo 3, 100 px across) side by side from the left edge;
    the second place is the frame's centre."""
    frame = background()
    for place, name in enumerate(names):
        face = cv2.resize(cv2.imread(str(photo(name, 3)))[50:200, 50:200], (100, 100))
        frame[70:170, 5 + 105 * place:105 + 105 * place] = face
    return frame


def blanks(count: int) -> list:
    return [background() for _ in range(count)]


def write_clip(path: Path, frames: list, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def make_gallery(folder: Path, pipeline, people=ENROLLED, model: str | None = None) -> tuple[Path, Path]:
    """A real encrypted gallery with ``people`` enrolled from photos 1 and 2; returns (gallery, key)."""
    from edge.verify.api import embedding_space
    from edge.gallery import open_gallery
    from edge.vision.image import load_image

    gallery_path, key_path = folder / "gallery.sqlite", folder / "gallery.key"
    with open_gallery(gallery_path, key_path, create=True, actor="test") as gallery:
        for name in people:
            vectors = np.stack([pipeline.embed_primary(load_image(photo(name, n))) for n in ENROLL_PHOTOS])
            gallery.add_person_templates(name, vectors, model=model or embedding_space(pipeline.manifest),
                                         actor="test")
    return gallery_path, key_path


def settings(gallery: Path, key: Path, source: str, **values):
    """Daemon settings as a config file would give them ("section.key": value)."""
    from edge.daemon import config

    base = {"source.uri": source, "door.pin": PIN, "door.pulse_s": 1.0, "gallery.path": str(gallery),
            "gallery.key": str(key), "events.stdout": False}
    base.update(values)
    return config.resolve(base, {}, origin="the test")


def read_events(path: Path) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def levels(pin) -> list:
    return [bool(state.state) for state in pin.states]


def openings(states: list) -> int:
    """Rising edges (locked -> open) in a list of relay levels (active-high)."""
    return sum(1 for before, after in zip(states, states[1:]) if after and not before)


class RecordingPin(MockPin):
    """A MockPin that also appends each function and level change to the file named in
    $EDGE_TEST_PIN_LOG (one JSON object per line, flushed at once), tagged with the pid.

    The in-memory history dies with a killed process; the file does not, which is what
    lets a test look at the pin of a daemon it killed with SIGKILL."""

    def _record(self, what: str) -> None:
        path = os.environ.get(PIN_LOG_ENV)
        if not path:
            return
        line = json.dumps({"pid": os.getpid(), "t": time.monotonic(), "pin": self.info.name, "what": what,
                           "function": self._function, "state": bool(self._state)})
        with open(path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()

    def _set_function(self, value):
        super()._set_function(value)
        self._record("function")

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            self._record("state")
        return changed


def read_pin_log(path: Path) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []
