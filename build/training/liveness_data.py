"""Liveness training and test folders: labelled frames, their groups and sequences, faces found once.

A folder holds ``real/`` and ``fake/`` (sub-folders allowed). Two file-name
forms are understood, and anything else still works frame by frame:

* NUAA-style ``ID_glasses_pos_session_frame.jpg``: group = subject ID; a
  sequence is (subject, glasses, pos, session), in frame-number order;
* replay-style ``<source>_<timestamp>.jpg``: group = source (the live subject of
  every real frame of that source); a sequence is a burst (frames less than
  2 s apart), in time order;
* otherwise: group = the name up to its first underscore, one sequence per group.

Groups, never frames, separate training from validation: neighbouring frames
are near-duplicates. The attack type of a folder's fakes (print, screen, ...)
is not in the files; the caller names it.

The main face of every frame is found once by the product's pipeline
(FacePipeline.detect + choose_main_face, what the daemon and the CLI use) and
cached as box, landmarks and score.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from edge.exc import DatasetError
from edge.pipeline import FacePipeline, Follower, choose_main_face
from edge.vision.image import load_image

BURST_GAP_S = 2.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Frame:
    path: Path
    dataset: str  # folder name, e.g. "nuaa_train"
    group: str  # subject or source: what a split holds out
    live: bool
    attack: str  # "none" for real frames, else the folder's attack type
    sequence: str  # frames of one capture, for clips
    order: float  # position in its sequence


def replay_time(stem: str) -> float | None:
    """Seconds from a replay-style name's timestamp (10 digits of seconds, then a fraction whose
    trailing zeros the original names drop), or None when the name has no such timestamp."""
    digits = stem.rsplit("_", 1)[-1]
    if not digits.isdigit() or len(digits) < 11:
        return None
    return float(f"{digits[:10]}.{digits[10:]}")


def _describe(path: Path, folder: str) -> tuple[str, str, float]:
    """(group, sequence key, order) of one file."""
    stem = path.stem
    parts = stem.split("_")
    if len(parts) == 5 and all(part.isdigit() for part in parts):
        return parts[0], f"{folder}/{'_'.join(parts[:4])}", float(parts[4])
    moment = replay_time(stem)
    if moment is not None:
        return stem.rsplit("_", 1)[0], f"{folder}/{stem.rsplit('_', 1)[0]}", moment
    return parts[0], f"{folder}/{parts[0]}", 0.0


def load_frames(root: Path, attack: str = "attack") -> list[Frame]:
    """Every image under ``root``/real and ``root``/fake, with group, sequence and order;
    replay-style sequences are cut into bursts at gaps over BURST_GAP_S."""
    root = Path(root)
    if not (root / "real").is_dir() or not (root / "fake").is_dir():
        raise DatasetError(f"{root}: a liveness folder needs real/ and fake/ sub-folders")
    frames = []
    for folder, live in (("real", True), ("fake", False)):
        found = sorted(p for p in (root / folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        described = sorted(((*_describe(p, folder), p) for p in found), key=lambda item: (item[1], item[2], item[3]))
        burst, previous = 0, None
        for group, sequence, order, path in described:
            if previous is not None and (previous[0] != sequence or order - previous[1] > BURST_GAP_S):
                burst += 1
            previous = (sequence, order)
            key = f"{sequence}/{burst:04d}" if replay_time(path.stem) is not None else sequence
            frames.append(Frame(path, root.name, group, live, "none" if live else attack, key, order))
    if not any(f.live for f in frames) or all(f.live for f in frames):
        raise DatasetError(f"{root}: real/ and fake/ must both hold images")
    return frames


@dataclass
class Faces:
    """The main face per frame: ``found`` (N,), ``boxes`` (N, 4), ``landmarks`` (N, 5, 2), ``scores`` (N,)."""

    found: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray

    def take(self, rows) -> "Faces":
        return Faces(self.found[rows], self.boxes[rows], self.landmarks[rows], self.scores[rows])


def file_key(paths, extra: str = "") -> str:
    """A short digest of the files (path, size, time) and ``extra``: cache names change when any file does."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def detect_all(frames: list[Frame], cache_dir: Path, pipeline=None, progress: bool = True) -> Faces:
    """The main face of every frame by the product pipeline, cached by the file list."""
    cache = cache_dir / f"faces-{file_key([f.path for f in frames])}.npz"
    faces = _stored(cache)
    if faces is not None:
        return faces
    pipeline = pipeline or FacePipeline.load(flip=False, threads=1)
    faces = _none_found(len(frames))
    for index, frame in enumerate(tqdm(frames, desc="faces", unit="frame", file=sys.stderr, disable=not progress)):
        image = load_image(frame.path)
        _record(faces, index, choose_main_face(pipeline.detect(image), image.shape))
    _save(faces, cache)
    return faces


def follow_all(frames: list[Frame], cache_dir: Path, search_every: int, pipeline=None, progress: bool = True) -> Faces:
    """The main face of every frame as the daemon finds it: each sequence's frames in time order through
    edge.pipeline.Follower (the whole frame searched at its first frame, after a lost face and every
    ``search_every`` frames; the face of the frame before followed in between), cached."""
    cache = cache_dir / f"faces-followed-v2-{search_every}-{file_key([f.path for f in frames])}.npz"
    faces = _stored(cache)
    if faces is not None:
        return faces
    pipeline = pipeline or FacePipeline.load(flip=False, threads=1)
    n = len(frames)
    faces = _none_found(n)
    by_sequence = {}
    for index, frame in enumerate(frames):
        by_sequence.setdefault(frame.sequence, []).append(index)
    with tqdm(total=n, desc=f"faces, followed (search every {search_every})", unit="frame", file=sys.stderr,
              disable=not progress) as bar:
        for rows in by_sequence.values():
            follower = Follower(pipeline, search_every=search_every)
            for index in sorted(rows, key=lambda i: frames[i].order):
                _record(faces, index, follower.look(load_image(frames[index].path)).main)
                follower.search_if_due()  # as the daemon does after judging the frame
                bar.update()
    _save(faces, cache)
    return faces


def _stored(cache: Path) -> Optional[Faces]:
    """The faces cached in ``cache``, or None when there are none yet (its folder is made)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    if not cache.exists():
        return None
    with np.load(cache) as stored:
        return Faces(stored["found"], stored["boxes"], stored["landmarks"], stored["scores"])


def _none_found(n: int) -> Faces:
    return Faces(np.zeros(n, bool), np.zeros((n, 4)), np.zeros((n, 5, 2)), np.zeros(n))


def _record(faces: Faces, index: int, main) -> None:
    """Row ``index`` holds ``main`` (a Face or MainFace), or stays "not found" for None."""
    if main is not None:
        faces.found[index] = True
        faces.boxes[index] = main.box
        faces.landmarks[index] = main.landmarks
        faces.scores[index] = main.score


def _save(faces: Faces, cache: Path) -> None:
    scratch = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(scratch, found=faces.found, boxes=faces.boxes, landmarks=faces.landmarks, scores=faces.scores)
    scratch.replace(cache)
