"""`edge-verify demo`: the whole kiosk on this computer, with no camera and no GPIO.

1. Makes sure the starter models exist (fetching and converting them once).
2. Enrolls three people from photos shipped in edge/demo_data into a new gallery
   in a demo home folder (temporary unless --home is given).
3. Writes a 640x480 MJPG clip: each person holds still for a moment in front of
   the "camera", enrolled people and strangers taking turns, empty frames between
   them. Enrolled people appear in the clip with a *different* photo from the ones
   they were enrolled with, so the demo verifies faces, not files.
4. Plays the clip through file:// into the real daemon, with the relay on a
   gpiozero MockFactory pin, printing each decision and the lock state, then a
   summary checked against what the clip holds: every enrolled person unlocked,
   no stranger did, and the pin's recorded history.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
from gpiozero.pins.mock import MockFactory

from edge import paths
from edge.daemon import config
from edge.daemon.decision import ADJUSTED, door_threshold, uses_cohort
from edge.daemon.loop import Daemon
from edge.exc import ConfigError, ModelError
from edge.extras import build_feature
from edge.gallery import open_gallery
from edge.gallery.threshold import gallery_threshold, impostor_tail
from edge.models import registry
from edge.pipeline import FacePipeline
from edge.verify.api import embedding_space
from edge.vision.image import load_image

ENROLLED = ("Colin_Powell", "Serena_Williams", "Jennifer_Aniston")
STRANGERS = ("Gloria_Macapagal_Arroyo", "Hugo_Chavez")
ENROLL_PHOTOS = (1, 2)  # photo numbers used for enrollment ...
CLIP_PHOTO = 3  # ... and the different photo shown to the camera
FRAME_SIZE = (640, 480)  # width, height
FACE_SIDE = 360  # pixels the 250x250 photo is scaled to in the frame: a person close to the kiosk
FPS = 8.0
HOLD_FRAMES = 6  # frames each person stands in front of the camera
GAP_FRAMES = 5  # empty frames between people
PULSE_S = 1.0  # the shortest pulse the lock allows: keeps the demo short
PIN = "BOARD11"
MARKER = ".edge-verify-demo"
DEMO_FILES = ("gallery.sqlite", "gallery.sqlite-wal", "gallery.sqlite-shm", "gallery.audit.jsonl", "gallery.key",
              "clip.avi", "events.jsonl")


@dataclass(frozen=True)
class Segment:
    """One visitor in the clip: frames [first, last] show ``name``."""

    name: str
    enrolled: bool
    first: int
    last: int


@dataclass
class DemoResult:
    ok: bool
    unlocked: list  # (person, frame) per unlock
    stranger_frames: int
    stranger_unlocks: int
    pin_history: list  # (seconds since the pin was set up, energised?)
    problems: list


def demo_photo(name: str, number: int) -> Path:
    path = Path(str(resources.files("edge") / "demo_data" / f"{name}_{number:04d}.jpg"))
    if not path.is_file():
        raise ModelError(f"the demo photo {path} is missing: reinstall edge-verify (package data edge/demo_data)")
    return path


# -- models -------------------------------------------------------------------------------------

def models_present() -> bool:
    return all(registry.engine_path(name).exists() for name in (registry.EMBEDDING, *registry.DETECTOR_NETS))


def ensure_models(log: Callable[[str], None]) -> None:
    """Fetch and convert the starter models unless their FP32 engines are already there
    (the build package does that: its ``starter-models`` entry point, see edge.extras)."""
    if models_present():
        return
    log("the starter models are not here yet: fetching them (once)")
    fetch_and_convert = build_feature("starter-models", "converting the starter models",
                                      then="run `edge-verify demo` again (or `edge-verify models fetch`)")
    fetch_and_convert(log=log)


# -- the demo home ------------------------------------------------------------------------------

def prepare_home(home: Optional[Path]) -> tuple[Path, bool]:
    """(folder, temporary?). A given folder must be new, empty, or an earlier demo home (cleared)."""
    if home is None:
        return Path(tempfile.mkdtemp(prefix="edge-verify-demo-")), True
    home = Path(home)
    if home.exists() and not home.is_dir():
        raise ConfigError(f"--home {home} is a file; give a folder")
    if home.is_dir() and any(home.iterdir()) and not (home / MARKER).exists():
        raise ConfigError(f"--home {home} is not empty and not an earlier demo home; give a new or empty folder")
    home.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        (home / name).unlink(missing_ok=True)
    (home / MARKER).write_text("made by `edge-verify demo`; its files are replaced by the next demo run\n")
    return home, False


# -- enrollment and the clip --------------------------------------------------------------------

def enroll(pipeline, home: Path, log: Callable[[str], None]) -> dict:
    enrolled = {}
    with open_gallery(home / "gallery.sqlite", home / "gallery.key", create=True, actor="demo") as gallery:
        for name in ENROLLED:
            photos = [demo_photo(name, number) for number in ENROLL_PHOTOS]
            vectors = np.stack([pipeline.embed_primary(load_image(photo), str(photo)) for photo in photos])
            gallery.add_person_templates(name, vectors, model=embedding_space(pipeline.manifest), actor="demo")
            enrolled[name] = [photo.name for photo in photos]
            log(f"enrolled {name} from {', '.join(photo.name for photo in photos)}")
    return enrolled


def visiting_order() -> list:
    """Enrolled people and strangers taking turns: A, stranger, B, stranger, C."""
    order = []
    strangers = list(STRANGERS)
    for index, name in enumerate(ENROLLED):
        order.append((name, True))
        if index < len(strangers):
            order.append((strangers[index], False))
    return order


def make_clip(path: Path, seed: int = 0) -> list:
    """Write the clip; returns its Segments. The first frames are empty: the camera warms up."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, FRAME_SIZE)
    if not writer.isOpened():
        raise ModelError(f"OpenCV cannot write an MJPG clip to {path}")
    segments, frame = [], 0
    try:
        for _ in range(GAP_FRAMES):
            writer.write(_background())
            frame += 1
        for name, enrolled in visiting_order():
            photo = cv2.imread(str(demo_photo(name, CLIP_PHOTO)))
            for _ in range(HOLD_FRAMES):
                # A person is never perfectly still: a few pixels of sway per frame.
                writer.write(_place(photo, *rng.integers(-6, 7, size=2)))
            segments.append(Segment(name, enrolled, frame, frame + HOLD_FRAMES - 1))
            frame += HOLD_FRAMES
            for _ in range(GAP_FRAMES):
                writer.write(_background())
                frame += 1
        # Empty frames for longer than a pulse, so the last pulse ends on its own timer.
        for _ in range(int(PULSE_S * FPS) + 2):
            writer.write(_background())
            frame += 1
    finally:
        writer.release()
    return segments


def _background() -> np.ndarray:
    return np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 96, dtype=np.uint8)


def _place(photo: np.ndarray, dx: int, dy: int) -> np.ndarray:
    frame = _background()
    face = cv2.resize(photo, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_LINEAR)
    left = (FRAME_SIZE[0] - FACE_SIDE) // 2 + int(dx)
    top = (FRAME_SIZE[1] - FACE_SIDE) // 2 + int(dy)
    frame[top:top + FACE_SIDE, left:left + FACE_SIDE] = face
    return frame


# -- playing ------------------------------------------------------------------------------------

def demo_settings(home: Path, clip: Path):
    return config.resolve({
        "source.uri": f"file://{clip}", "source.rate": FPS, "door.pin": PIN, "door.pulse_s": PULSE_S,
        "gallery.path": str(home / "gallery.sqlite"), "gallery.key": str(home / "gallery.key"),
        "events.file": str(home / "events.jsonl"), "events.stdout": False,
    }, {}, origin="the demo")


def threshold_line(manifest: dict, templates: int, stranger_rate: float) -> str:
    """The threshold the door decides the demo's faces with: the one for combined frames."""
    if impostor_tail(manifest) is None:
        value = gallery_threshold(manifest, templates, stranger_rate)  # warns: the 1:1 fallback
        return f"match threshold {value:.3f} (the engine's 1:1 threshold; its manifest has no impostor tail)"
    value = door_threshold(manifest, templates, stranger_rate=stranger_rate, combined=True).threshold
    adjusted = ADJUSTED if uses_cohort(manifest) else ""
    return (f"match threshold {value:.3f} for a face's combined frames{adjusted}: the 1:N rule for {templates} "
            f"templates, at "
            f"most 1 stranger in {1 / stranger_rate:,.0f} approaches let in (1:1 threshold "
            f"{float(manifest['threshold']):.3f})")


def describe_event(event: dict, door, k: int, min_frames: int = 1) -> str:
    state = "locked" if door.is_locked else "OPEN"
    distance = "-" if event["distance"] is None else f"{event['distance']:.3f}"
    if event["person"] is None:
        who, outcome = "unknown face", "refused"
    else:
        who = event["person"]
        outcome = {"unlock": "UNLOCK", "agreeing": f"{event['frames_agreed']} of {k} decisions",
                   "combining": f"{event.get('frames_combined', 0)} of {min_frames} frames",
                   "cooldown": "already let in"}.get(event["reason"], event["reason"])
    return f"  frame {event['frame']:>3}  {who:<18} distance {distance:>6}  {outcome:<16} door: {state}"


def pin_history(pin) -> list:
    """[(seconds since the pin was set up, level)] from a MockPin's recorded states."""
    history, elapsed = [], 0.0
    for state in pin.states:
        elapsed += state.timestamp  # MockPin records the time since the previous change
        history.append((round(elapsed, 3), bool(state.state)))
    return history


def check(segments: list, events: list, history: list, active_high: bool = True) -> DemoResult:
    """Compare what happened with what the clip holds."""
    by_frame = {frame: segment for segment in segments for frame in range(segment.first, segment.last + 1)}
    unlocks = [(event["person"], event["frame"]) for event in events if event["unlock"]]
    problems = []
    for person, frame in unlocks:
        segment = by_frame.get(frame)
        if segment is None or not segment.enrolled or segment.name != person:
            problems.append(f"frame {frame} unlocked for {person}, but it shows "
                            f"{segment.name if segment else 'nobody'}")
    missing = sorted(set(ENROLLED) - {person for person, _ in unlocks})
    if missing:
        problems.append(f"not let in: {', '.join(missing)}")
    stranger = [event for event in events if event["frame"] in by_frame and not by_frame[event["frame"]].enrolled]
    energised = [level == active_high for _, level in history]
    openings = sum(1 for before, after in zip(energised, energised[1:]) if after and not before)
    if openings != len(unlocks):
        problems.append(f"the relay opened {openings} times for {len(unlocks)} unlock decisions")
    if energised and energised[-1]:
        problems.append("the relay was left energised")
    return DemoResult(not problems, unlocks, len(stranger), sum(1 for event in stranger if event["unlock"]),
                      history, problems)


def run_demo(home: Optional[Path] = None, keep: bool = False, out: Callable[[str], None] = print) -> DemoResult:
    ensure_models(out)
    folder, temporary = prepare_home(home)
    factory = MockFactory()
    try:
        out(f"demo home: {folder}  (models from {paths.models_dir()})")
        pipeline = FacePipeline.load()
        enroll(pipeline, folder, out)
        segments = make_clip(folder / "clip.avi")
        out(f"clip: {folder / 'clip.avi'}, {FPS:g} fps, "
            f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}: " + ", ".join(
                f"{s.name} ({'enrolled' if s.enrolled else 'stranger'})" for s in segments))
        settings = demo_settings(folder, folder / "clip.avi")
        out(threshold_line(pipeline.manifest, len(ENROLLED) * len(ENROLL_PHOTOS), settings["decision.stranger_rate"]))
        out(f"playing it through file:// with the door relay on mock pin {PIN} (pulse {PULSE_S:g} s):")
        Daemon(settings, until_end=True, pin_factory=factory, pipeline=pipeline,
               on_event=lambda event, door: out(describe_event(event, door, settings["decision.k"],
                                                               settings["decision.min_frames"]))).run()
        events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        result = check(segments, events, pin_history(factory.pin(PIN)))
        for line in summary_lines(result, folder, keep or not temporary):
            out(line)
        return result
    finally:
        factory.close()
        if temporary and not keep:
            shutil.rmtree(folder, ignore_errors=True)


def summary_lines(result: DemoResult, folder: Path, kept: bool) -> list:
    lines = ["", "summary:"]
    for person, frame in result.unlocked:
        lines.append(f"  unlocked for {person} (frame {frame})")
    lines.append(f"  strangers: {len(STRANGERS)} people over {result.stranger_frames} judged frames, "
                 f"{result.stranger_unlocks} unlocks")
    lines.append(f"  relay pin {PIN} (high = energised = open):")
    for seconds, level in result.pin_history:
        lines.append(f"    t={seconds:7.3f} s  {'HIGH (open)' if level else 'low  (locked)'}")
    lines.append("  result: " + ("as expected" if result.ok else "UNEXPECTED: " + "; ".join(result.problems)))
    if kept:
        lines.append(f"  files kept in {folder} (gallery, clip.avi, events.jsonl)")
    return lines

